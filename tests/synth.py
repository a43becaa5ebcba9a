"""Synthetic bmodels for tests: small builders over the generated object API and the writer.

Nothing here runs on a device: commands and weights are filler bytes. The files are valid for
the format (and for ``model_tool --info``), which is all the format tests need.

    region = BinaryRegion(align=4096)
    m = model([net("a", [stage(region, coeff=b"w" * 100)])])
    data = build_bmodel(m, region)
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmcrypt.bmodel._fbs.bmodel.Binary import BinaryT
from bmcrypt.bmodel._fbs.bmodel.CmdGroup import CmdGroupT
from bmcrypt.bmodel._fbs.bmodel.CoeffMem import CoeffMemT
from bmcrypt.bmodel._fbs.bmodel.CoreCommands import CoreCommandsT
from bmcrypt.bmodel._fbs.bmodel.CpuConst import CpuConstT
from bmcrypt.bmodel._fbs.bmodel.CpuopModule import CpuopModuleT
from bmcrypt.bmodel._fbs.bmodel.CpuParam import CpuParamT
from bmcrypt.bmodel._fbs.bmodel.KernelModule import KernelModuleT
from bmcrypt.bmodel._fbs.bmodel.Model import ModelT
from bmcrypt.bmodel._fbs.bmodel.Net import NetT
from bmcrypt.bmodel._fbs.bmodel.NetDynamic import NetDynamicT
from bmcrypt.bmodel._fbs.bmodel.NetParameter import NetParameterT
from bmcrypt.bmodel._fbs.bmodel.NetStatic import NetStaticT
from bmcrypt.bmodel._fbs.bmodel.Shape import ShapeT
from bmcrypt.bmodel._fbs.bmodel.SubNet import SubNetT
from bmcrypt.bmodel._fbs.bmodel.Tensor import TensorT
from bmcrypt.bmodel.reader import read_bmodel
from bmcrypt.bmodel.writer import BinaryRegion, build_bmodel, make_binary

MiB = 1 << 20
#: bytes per element by data_type code, for the Tensor.size field
_ELEM = {0: 4, 1: 2, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 4, 8: 2, 9: 1, 10: 1}


def tensor(name: str, shape: Sequence[int], dtype: int = 0, *, hidden: int = 0,
           index: int = 0, scale: float = 1.0, zero_point: int = 0) -> TensorT:
    t = TensorT()
    t.name = name
    t.dataType = dtype
    s = ShapeT()
    s.dim = list(shape)
    t.shape = [s]
    n = 1
    for d in shape:
        n *= d
    t.size = n * _ELEM.get(dtype, 4)
    t.memType = 1
    t.hidden, t.index = hidden, index
    t.scale, t.zeroPoint = scale, zero_point
    return t


def coeff_mem(binary: BinaryT, data: bytes, *, address: int = 1 << 32,
              check_code: bytes | None = None) -> CoeffMemT:
    c = CoeffMemT()
    c.address = address
    c.checkCode = list(check_code if check_code is not None else hashlib.sha256(data).digest())
    c.binaryCoeff = binary
    return c


def cmd_group(region: BinaryRegion, bdc: int, gdma: int) -> CmdGroupT:
    """A command group whose bdc/gdma blobs are ``bdc``/``gdma`` filler bytes."""
    g = CmdGroupT()
    g.bdcNum, g.gdmaNum = max(1, bdc // 64), max(1, gdma // 64)
    g.binaryBdc = region.add(b"\xbd" * bdc)
    g.binaryGdma = region.add(b"\x9d" * gdma)
    g.bdcCmdByte, g.gdmaCmdByte = bdc, gdma
    return g


def subnet(*, groups: Sequence[CmdGroupT] = (), mode: int = 0, is_dynamic: int = 0,
           ir_len: int = 0, sid: int = 0, next_ids: Sequence[int] = (-1,),
           cpu_param: Sequence[CpuParamT] = (),
           core_commands: Sequence[CoreCommandsT] = ()) -> SubNetT:
    s = SubNetT()
    s.subnetMode, s.isDynamic, s.irLen = mode, is_dynamic, ir_len
    s.cmdGroup = list(groups) or None
    s.cpuParam = list(cpu_param) or None
    s.coreCommands = list(core_commands) or None
    s.id = sid
    s.nextSubnetIds = list(next_ids)
    s.inputTensor, s.outputTensor = [], []
    return s


def cpu_param(region: BinaryRegion, param: bytes, consts: Sequence[bytes] = ()) -> CpuParamT:
    p = CpuParamT()
    p.opType = 1
    p.binaryParam = region.add(param)
    p.cpuConst = []
    for i, c in enumerate(consts):
        cc = CpuConstT()
        cc.name = f"const{i}"
        cc.constData = region.add(c)
        cc.checkCode = list(hashlib.sha256(c).digest())
        p.cpuConst.append(cc)
    return p


def stage(region: BinaryRegion, *, coeff: bytes | CoeffMemT | None = b"\x01" * 1000,
          inputs: Sequence[TensorT] | None = None, outputs: Sequence[TensorT] | None = None,
          ctx_size: int = 8192, bdc: int = 256, gdma: int = 512,
          subnets: Sequence[SubNetT] | None = None, is_dynamic: int = 0, io_size: int = 0,
          cpu_mem_size: int = 0, ir: bytes = b"") -> NetParameterT:
    """One NetParameter. ``coeff`` bytes are added to the region; a CoeffMemT is shared as is."""
    p = NetParameterT()
    p.inputTensor = list(inputs) if inputs is not None else [tensor("x", [1, 16], hidden=1)]
    p.outputTensor = list(outputs) if outputs is not None else [tensor("y", [1, 8], hidden=2)]
    p.ctxAddr = (1 << 32) + (1 << 24)
    p.ctxSize = ctx_size
    if isinstance(coeff, CoeffMemT):
        p.coeffMem = coeff
    elif coeff is not None:
        p.coeffMem = coeff_mem(region.add(coeff), coeff)
    p.isDynamic = is_dynamic
    group = cmd_group(region, bdc, gdma) if bdc or gdma else None
    p.cmdGroup = [group] if group else None
    p.subNet = list(subnets) if subnets is not None else [
        subnet(groups=[group] if group else ())]
    p.binaryIr = region.add(ir) if ir else make_binary(0, 0)
    p.cpuMemSize = cpu_mem_size
    p.ctxSizes = [ctx_size]
    p.coreNum = 1
    p.ioSize = io_size
    return p


def net(name: str, stages: Sequence[NetParameterT], *, addr_mode: int = 0,
        legacy_static: bool = False, legacy_dynamic: bool = False) -> NetT:
    n = NetT()
    n.name = name
    n.parameter = list(stages)
    n.addrMode = addr_mode
    if legacy_static:
        n.netStatic = [NetStaticT()]
    if legacy_dynamic:
        n.netDynamic = [NetDynamicT()]
    return n


def model(nets: Sequence[NetT], *, chip: str = "BM1684X", neuron_size: int = 0,
          kernel: tuple[str, BinaryT] | None = ("", make_binary(0, 0)),
          cpuop: tuple[str, BinaryT] | None = None, lib_backend: BinaryT | None = None) -> ModelT:
    m = ModelT()
    m.type, m.version, m.time, m.chip = "B", "2.2+synth", "Thu Jan  1 00:00:00 2026\n", chip
    m.net = list(nets)
    m.neuronSize = neuron_size or max(p.ctxSize for n in nets for p in n.parameter)
    if kernel is not None:
        k = KernelModuleT()
        k.fileName, k.binary = kernel
        m.kernelModule = k
    if cpuop is not None:
        c = CpuopModuleT()
        c.fileName, c.binary = cpuop
        m.cpuopModule = c
    m.deviceNum = 1
    m.libBackend = lib_backend
    return m


# ------------------------------------------------------------------ ready-made edge cases


def simple(align: int = 4096, **stage_kw: Any) -> bytes:
    region = BinaryRegion(align=align)
    return build_bmodel(model([net("net0", [stage(region, **stage_kw)])]), region, align=align)


def many_nets(n: int = 40, align: int = 4096) -> bytes:
    region = BinaryRegion(align=align)
    nets = [net(f"net{i}", [stage(region, coeff=bytes([i % 256]) * (100 + i),
                                  ctx_size=4096 * (1 + i % 5))]) for i in range(n)]
    return build_bmodel(model(nets), region, align=align)


def multi_stage(align: int = 4096) -> bytes:
    """One net, three stages (batch 1/2/4) sharing one coeff region, as combined models do."""
    region = BinaryRegion(align=align)
    data = b"\x07" * 3000
    shared = coeff_mem(region.add(data), data)
    stages = [stage(region, coeff=shared, ctx_size=8192 * b,
                    inputs=[tensor("x", [b, 16], hidden=1)],
                    outputs=[tensor("y", [b, 8], hidden=2)]) for b in (1, 2, 4)]
    return build_bmodel(model([net("multi", stages)]), region, align=align)


def shared_coeff(align: int = 4096) -> bytes:
    """Two nets pointing at the very same coeff bytes (same Binary, same check_code)."""
    region = BinaryRegion(align=align)
    data = b"\x33" * 5000
    binary = region.add(data)
    nets = [net(name, [stage(region, coeff=coeff_mem(binary, data))]) for name in ("a", "b")]
    return build_bmodel(model(nets), region, align=align)


def duplicated_coeff(align: int = 4096) -> bytes:
    """Two nets with identical coeff bytes stored twice (two regions, same check_code)."""
    region = BinaryRegion(align=align)
    data = b"\x44" * 5000
    nets = [net(name, [stage(region, coeff=data)]) for name in ("a", "b")]
    return build_bmodel(model(nets), region, align=align)


def large_coeff(size: int = 64 * MiB, align: int = 4096) -> bytes:
    region = BinaryRegion(align=align)
    data = bytes(size)
    return build_bmodel(model([net("big", [stage(region, coeff=data)])]), region, align=align)


def empty_coeff(align: int = 4096) -> bytes:
    return simple(align, coeff=b"")


def no_coeff(align: int = 4096) -> bytes:
    return simple(align, coeff=None)


def dynamic_net(align: int = 4096) -> bytes:
    """A dynamic net: one dynamic TPU subnet running 123 words of IR, no command groups."""
    region = BinaryRegion(align=align)
    ir = b"\x11" * (123 * 4)
    p = stage(region, is_dynamic=1, bdc=0, gdma=0, ir=ir,
              subnets=[subnet(is_dynamic=1, ir_len=123)])
    return build_bmodel(model([net("dyn", [p])]), region, align=align)


def addr_mode(mode: int, align: int = 4096) -> bytes:
    region = BinaryRegion(align=align)
    p = stage(region, io_size=16384)
    return build_bmodel(model([net(f"mode{mode}", [p], addr_mode=mode)]), region, align=align)


# ------------------------------------------------------------------ model_tool --info, parsed


@dataclass
class ToolNet:
    name: str
    kind: str  # "static" / "dynamic"
    addr_mode: int = 0
    #: per stage: list of (direction, name, shape, dtype, scale, zero_point)
    stages: list[list[tuple[str, str, tuple[int, ...], str, float, int]]] = field(
        default_factory=list)


@dataclass
class ToolInfo:
    version: str = ""
    chip: str = ""
    kernel_name: str = ""
    kernel_size: int = 0
    nets: list[ToolNet] = field(default_factory=list)
    device_mem: tuple[int, int, int, int] = (0, 0, 0, 0)
    host_mem: tuple[int, int, int] = (0, 0, 0)


_IO = re.compile(r"^(input|output): (.*), \[([0-9, ]*)\], (\S+), scale: (\S+), zero_point: (-?\d+)$")


def parse_info(text: str) -> ToolInfo:
    """Parse ``model_tool --info`` output (tpu_mlir 1.30.2 format)."""
    info = ToolInfo()
    for line in text.splitlines():
        if m := re.match(r"bmodel version: (.*)$", line):
            info.version = m[1]
        elif m := re.match(r"chip: (.*)$", line):
            info.chip = m[1]
        elif m := re.match(r"kernel_module name: (.*)$", line):
            info.kernel_name = m[1]
        elif m := re.match(r"kernel_module size: (\d+)$", line):
            info.kernel_size = int(m[1])
        elif m := re.match(r"net \d+: \[(.*)\]  (\w+)$", line):
            info.nets.append(ToolNet(m[1], m[2]))
        elif m := re.match(r"addr mode: (\d+)$", line):
            info.nets[-1].addr_mode = int(m[1])
        elif re.match(r"stage \d+", line):
            info.nets[-1].stages.append([])
        elif m := _IO.match(line):
            shape = tuple(int(d) for d in m[3].split(",") if d.strip())
            info.nets[-1].stages[-1].append(
                (m[1], m[2], shape, m[4], float(m[5]), int(m[6])))
        elif m := re.match(r"device mem size: (\d+) \(weight: (\d+), instruct: (\d+), "
                           r"runtime: (\d+)\)$", line):
            info.device_mem = (int(m[1]), int(m[2]), int(m[3]), int(m[4]))
        elif m := re.match(r"host mem size: (\d+) \(weight: (\d+), runtime: (\d+)\)$", line):
            info.host_mem = (int(m[1]), int(m[2]), int(m[3]))
    return info


def model_tool_info(vendor_dir: Path, path: Path) -> ToolInfo:
    """Run the vendor's ``model_tool --info`` and parse it (AssertionError if it fails)."""
    r = subprocess.run([str(vendor_dir / "bin" / "model_tool"), "--info", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"model_tool rejected {path}: {r.stdout[-300:]}{r.stderr[-300:]}"
    return parse_info(r.stdout)


def our_info(path: Path) -> ToolInfo:
    """What bmcrypt's reader says, in the same shape as parse_info()."""
    m = read_bmodel(path)
    info = ToolInfo(m.version_string, m.chip)
    if m.kernel_module is not None:
        info.kernel_name, info.kernel_size = m.kernel_module.name, m.kernel_module.span.size
    for n in m.nets:
        tn = ToolNet(n.name, "dynamic" if n.dynamic else "static", n.addr_mode)
        for s in n.stages:
            tn.stages.append(
                [("input", t.name, t.shape, t.dtype, t.scale, t.zero_point) for t in s.inputs]
                + [("output", t.name, t.shape, t.dtype, t.scale, t.zero_point) for t in s.outputs])
        info.nets.append(tn)
    d, h = m.device_mem, m.host_mem
    info.device_mem = (d.total, d.weight, d.instruct, d.runtime)
    info.host_mem = (h.total, h.weight, h.runtime)
    return info


# ------------------------------------------------------------------ random models


CHIPS = ("BM1684X", "BM1684", "BM1682", "BM1688", "BM1690", "CV184X", "SG2380")


def _random_subnet(rng: random.Random, region: BinaryRegion, chip: str, sid: int) -> SubNetT:
    kind = rng.choice(["static", "static", "dynamic", "cpu"])
    if kind == "dynamic":
        return subnet(is_dynamic=1, ir_len=rng.randint(0, 500), sid=sid)
    if kind == "cpu":
        consts = [bytes([rng.randint(0, 3)]) * rng.randint(1, 50) for _ in range(rng.randint(0, 3))]
        return subnet(mode=1, sid=sid, cpu_param=[cpu_param(region, b"p" * 5, consts)])
    groups = [cmd_group(region, rng.randint(1, 2000), rng.randint(1, 2000))
              for _ in range(rng.randint(1, 2))]
    s = subnet(groups=groups, sid=sid)
    # model_tool dereferences core_commands unconditionally on BM1690: always give it some
    if chip.startswith("BM1690") or rng.random() < 0.3:
        s.coreCommands = []
        for _ in range(rng.randint(0, 2)):
            c = CoreCommandsT()
            c.gdmaTiuCommands = [cmd_group(region, rng.randint(1, 300), rng.randint(1, 300))]
            c.sdmaCommands = [region.add(b"s" * rng.randint(1, 100))]
            c.hauCommands = [region.add(b"h" * rng.randint(1, 100))]
            c.cdmaCommands = [region.add(b"c" * rng.randint(1, 100)) for _ in range(rng.randint(0, 2))]
            s.coreCommands.append(c)
    return s


def random_model(rng: random.Random) -> bytes:
    """A random but valid model: 1-4 nets x 1-3 stages, shared coeffs, every subnet kind."""
    chip = rng.choice(CHIPS)
    region = BinaryRegion(align=rng.choice([1, 4096]))
    coeffs: list[CoeffMemT] = []
    nets = []
    for ni in range(rng.randint(1, 4)):
        stages = []
        for _ in range(rng.randint(1, 3)):
            if coeffs and rng.random() < 0.4:
                coeff = rng.choice(coeffs)
            else:
                data = bytes([rng.randint(0, 5)]) * rng.randint(0, 5000)
                coeff = coeff_mem(region.add(data), data)
                coeffs.append(coeff)
            subs = [_random_subnet(rng, region, chip, j) for j in range(rng.randint(1, 3))]
            ins = [tensor("x", [rng.randint(1, 50) for _ in range(rng.randint(0, 3))],
                          rng.randint(0, 10))]
            outs = [tensor("y", [rng.randint(1, 50) for _ in range(rng.randint(1, 3))],
                           rng.randint(0, 10))]
            stages.append(stage(region, coeff=coeff, subnets=subs, inputs=ins, outputs=outs,
                                ctx_size=rng.randint(0, 100000), is_dynamic=rng.choice([0, 0, 1]),
                                cpu_mem_size=rng.randint(0, 100)))
        nets.append(net(f"n{ni}", stages, addr_mode=rng.randint(0, 4)))
    return build_bmodel(model(nets, chip=chip), region, align=region.align)


#: The edge cases every test of whole files runs over (format, encryption, inspect); a test
#: module adds its own to a copy of this table.
EDGE_CASES: dict[str, Callable[[], bytes]] = {
    "simple": simple,
    "simple_compact": lambda: simple(align=1),
    "many_nets": lambda: many_nets(12),
    "multi_stage": multi_stage,
    "shared_coeff": shared_coeff,
    "duplicated_coeff": duplicated_coeff,
    "empty_coeff": empty_coeff,
    "no_coeff": no_coeff,
    "dynamic_net": dynamic_net,
}
