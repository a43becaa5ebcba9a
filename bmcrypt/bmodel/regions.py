"""Every byte range the FlatBuffer points at, and the byte-level layout they give the file.

All ``Binary{start, size}`` structs are relative to the binary region. :func:`collect_refs`
finds each one with a kind and a label, :func:`check_refs` rejects any that leaves the region,
and :func:`build_layout` turns them into parts that tile the file exactly: header,
flatbuffer, the referenced ranges (overlapping references merged into one part), ``gap`` for
unreferenced bytes of the binary region and ``trailing`` for bytes after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bmcrypt.bmodel.header import Header
from bmcrypt.bmodel.model import LayoutPart
from bmcrypt.errors import Corrupt

_MAX_LABELS = 3  # labels listed on one merged part before "(+N more)"


@dataclass(frozen=True)
class Ref:
    """One Binary of the FlatBuffer: ``start`` is relative to the binary region."""

    kind: str
    start: int
    size: int
    label: str


def _net_refs(prefix: str, stage: dict[str, Any]) -> Iterator[Ref]:
    def ref(kind: str, binary: tuple[int, int] | None, what: str) -> Iterator[Ref]:
        if binary is not None:
            yield Ref(kind, binary[0], binary[1], f"{prefix} {what}")

    def groups(gs: list[dict[str, Any]] | None) -> Iterator[Ref]:
        for g in gs or ():
            yield from ref("commands", g["binary_bdc"], "bdc")
            yield from ref("commands", g["binary_gdma"], "gdma")

    coeff = stage["coeff_mem"]
    if coeff is not None:
        yield from ref("coeff", coeff["binary_coeff"], "coeff")
    yield from groups(stage["cmd_group"])
    yield from ref("profile", stage["net_profile"], "profile")
    yield from ref("ir", stage["binary_ir"], "ir")
    yield from ref("profile", stage["net_stat"], "stat")
    yield from ref("tensor_loc", stage["tensor_loc"], "tensor_loc")
    for subnet in stage["sub_net"] or ():
        yield from groups(subnet["cmd_group"])
        for param in subnet["cpu_param"] or ():
            yield from ref("cpu", param["binary_param"], "cpu param")
            for const in param["cpu_const"] or ():
                yield from ref("cpu", const["const_data"], "cpu const")
        for core in subnet["core_commands"] or ():
            yield from groups(core["gdma_tiu_commands"])
            for what in ("sdma", "hau", "cdma"):
                for b in core[f"{what}_commands"] or ():
                    yield from ref("commands", b, what)


def collect_refs(root: dict[str, Any], net_names: list[str]) -> list[Ref]:
    """Every Binary in a decoded Model table, labelled like ``mlp[0] coeff``."""
    refs: list[Ref] = []
    for name, net in zip(net_names, root["net"], strict=True):
        for i, stage in enumerate(net["parameter"] or ()):
            refs.extend(_net_refs(f"{name}[{i}]", stage))
    for field, kind in (("kernel_module", "kernel_module"), ("cpuop_module", "cpuop_module")):
        module = root[field]
        if module is not None:
            start, size = module["binary"]
            refs.append(Ref(kind, start, size, kind.replace("_", " ")))
    if root["lib_backend"] is not None:
        start, size = root["lib_backend"]
        refs.append(Ref("lib_backend", start, size, "lib backend"))
    return refs


def check_refs(refs: list[Ref], binary_size: int) -> None:
    """Corrupt unless every reference lies inside the binary region (empty ones included)."""
    for r in refs:
        # Python ints do not overflow: start + size is the true end even for u64 garbage.
        if r.start + r.size > binary_size:
            raise Corrupt(f"{r.label} points outside the file "
                          f"(bytes {r.start}..{r.start + r.size} of a {binary_size}-byte "
                          "binary region)")


def _merge(refs: list[Ref]) -> Iterator[tuple[int, int, str, list[str]]]:
    """Clusters of overlapping non-empty references: (start, end, kind, labels)."""
    cluster: list[Ref] = []
    end = 0
    for r in sorted((r for r in refs if r.size), key=lambda r: (r.start, r.start + r.size)):
        if cluster and r.start >= end:  # touching ranges stay separate parts
            yield _close(cluster, end)
            cluster = []
        end = max(end, r.start + r.size) if cluster else r.start + r.size
        cluster.append(r)
    if cluster:
        yield _close(cluster, end)


def _close(cluster: list[Ref], end: int) -> tuple[int, int, str, list[str]]:
    kinds = {r.kind for r in cluster}
    labels = list(dict.fromkeys(r.label for r in cluster))
    return cluster[0].start, end, kinds.pop() if len(kinds) == 1 else "overlap", labels


def _label(labels: list[str]) -> str:
    shown = ", ".join(labels[:_MAX_LABELS])
    more = len(labels) - _MAX_LABELS
    return f"{shown} (+{more} more)" if more > 0 else shown


def build_layout(header: Header, file_size: int, refs: list[Ref]) -> tuple[LayoutPart, ...]:
    """Parts that tile ``[0, file_size)``; refs must have passed :func:`check_refs`."""
    parts = [LayoutPart("header", 0, header.header_size, "header"),
             LayoutPart("flatbuffer", header.header_size, header.flatbuffers_size, "flatbuffer")]
    base = header.binary_offset
    pos = 0
    for start, end, kind, labels in _merge(refs):
        if start > pos:
            parts.append(LayoutPart("gap", base + pos, start - pos))
        parts.append(LayoutPart(kind, base + start, end - start, _label(labels)))
        pos = end
    if header.binary_size > pos:
        parts.append(LayoutPart("gap", base + pos, header.binary_size - pos))
    if file_size > header.end:
        parts.append(LayoutPart("trailing", header.end, file_size - header.end))
    return tuple(p for p in parts if p.size)
