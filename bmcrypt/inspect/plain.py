"""Reports of plain bmodels: what `model_tool --info` prints, plus regions and layout."""

from __future__ import annotations

from typing import Any

from bmcrypt.bmodel.model import BModel, Module, Stage, Tensor
from bmcrypt.inspect.report import (
    CoeffRegionInfo,
    FileReport,
    LayoutEntry,
    ModuleInfo,
    NetInfo,
    StageCoeff,
    StageInfo,
    TensorInfo,
)

# ---------------------------------------------------------------- plain


def plain_report(m: BModel, root: dict[str, Any], *,
                  encryption: dict[str, Any] | None = None,
                  layout: list[LayoutEntry] | None = None) -> FileReport:
    """``root`` is the decoded Model ``m`` was built from (for what BModel does not carry)."""
    regions, by_span = _coeff_regions(m)
    nets = []
    for n, raw in zip(m.nets, root["net"], strict=True):
        stages = [_stage(s, by_span, p) for s, p in zip(n.stages, raw["parameter"], strict=True)]
        nets.append(NetInfo(n.name, n.dynamic, n.addr_mode, n.addr_mode_name, stages))
    return FileReport(
        path=str(m.path), size=m.file_size, encryption=encryption or {"state": "plain"},
        layout=layout if layout is not None else [
            LayoutEntry(p.kind, p.offset, p.size, p.label) for p in m.layout],
        chip=m.chip, version=m.version_string, time=m.time,
        kernel_module=_module(m.kernel_module), cpuop_module=_module(m.cpuop_module),
        device_mem=m.device_mem, host_mem=m.host_mem, nets=nets, coeff_regions=regions)


def _coeff_regions(m: BModel) -> tuple[list[CoeffRegionInfo], dict[tuple[int, int], int]]:
    users: dict[tuple[int, int], list[str]] = {}
    for n in m.nets:
        for s in n.stages:
            if s.coeff is not None:
                span = (s.coeff.offset, s.coeff.size)
                users.setdefault(span, []).append(f"{n.name}[{s.index}]")
    regions = []
    for i, c in enumerate(m.coeff_regions):
        regions.append(CoeffRegionInfo(
            index=i, offset=c.offset, stored_size=c.size,
            size=c.decrypt_size if c.encrypt_mode else c.size,
            sha256=c.check_code.hex() or None, encrypted=c.encrypt_mode != 0,
            encrypt_mode=c.encrypt_mode, used_by=users[(c.offset, c.size)]))
    return regions, {(r.offset, r.stored_size): r.index for r in regions}


def _stage(s: Stage, by_span: dict[tuple[int, int], int], param: dict[str, Any]) -> StageInfo:
    coeff = None
    if s.coeff is not None:
        c = s.coeff
        coeff = StageCoeff(by_span[(c.offset, c.size)],
                           c.decrypt_size if c.encrypt_mode else c.size,
                           c.check_code.hex() or None, c.encrypt_mode != 0)
    max_shapes = bool(param["n_dynamic"] or param["h_w_dynamic"])
    return StageInfo(s.index, s.core_num, s.subnet_count, max_shapes,
                     [_tensor(t) for t in s.inputs], [_tensor(t) for t in s.outputs], coeff)


def _tensor(t: Tensor) -> TensorInfo:
    return TensorInfo(t.name, list(t.shape), t.dtype, t.scale, t.zero_point)


def _module(m: Module | None) -> ModuleInfo | None:
    return None if m is None else ModuleInfo(m.name, m.span.offset, m.span.size)


