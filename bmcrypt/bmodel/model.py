"""The small, read-only picture of a bmodel that the rest of bmcrypt works with.

Offsets named ``offset`` are absolute file offsets; ``start`` is relative to the binary region
(as ``Binary.start`` is in the file). All values come from a verified file (see reader.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bmcrypt.bmodel.header import Header

#: bm_data_type_t codes -> the names model_tool prints
DTYPE_NAMES = ("float32", "float16", "int8", "uint8", "int16", "uint16", "int32", "uint32",
               "bfloat16", "int4", "uint4")


def dtype_name(code: int) -> str:
    """model_tool's name for a tensor data_type code; ``unknown(N)`` outside 0..10."""
    return DTYPE_NAMES[code] if 0 <= code < len(DTYPE_NAMES) else f"unknown({code})"


#: Net.addr_mode values
ADDR_MODES = ("basic", "io alone", "io tag", "io tag fuse", "io reloc")


@dataclass(frozen=True)
class Span:
    """A byte range of the file."""

    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class LayoutPart:
    """One piece of the file's byte-level layout; the parts tile the file exactly.

    ``kind`` is one of: header, flatbuffer, coeff, commands, ir, kernel_module,
    cpuop_module, lib_backend, cpu, profile, tensor_loc, overlap (references of different
    kinds that overlap), gap (bytes of the binary region nothing points at), trailing
    (bytes after the declared binary region).
    """

    kind: str
    offset: int
    size: int
    label: str = ""

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Tensor:
    """An input or output of a stage, as model_tool --info shows it."""

    name: str
    dtype: str  # as model_tool prints it, see dtype_name()
    dtype_code: int
    shape: tuple[int, ...]  # the first Shape (model_tool prints that one)
    scale: float
    zero_point: int
    size: int  # bytes in device memory, as the file declares
    device_addr: int


@dataclass(frozen=True)
class CoeffRegion:
    """The weights of one stage (``CoeffMem``). Several stages may share one region."""

    offset: int  # absolute file offset
    size: int
    start: int  # relative to the binary region, as Binary.start
    check_code: bytes  # SHA-256 of the plaintext weights (empty if the file has none)
    encrypt_mode: int  # 0 plain; 1 encrypted by the vendor hook
    decrypt_size: int
    address: int  # device address the weights are loaded at

    @property
    def span(self) -> Span:
        return Span(self.offset, self.size)


@dataclass(frozen=True)
class Module:
    """An embedded library (kernel module / cpuop module)."""

    name: str
    span: Span
    mode: int = 0  # kernel module only: 0 normal


@dataclass(frozen=True)
class Stage:
    """One NetParameter: a fixed input shape of a net."""

    index: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    coeff: CoeffRegion | None
    is_dynamic: bool
    ctx_addr: int
    ctx_size: int
    io_addr: int
    io_size: int
    core_num: int
    subnet_count: int
    cpu_mem_size: int
    bdc_bytes: int  # total TIU command bytes of the stage's command groups (subnets included)
    gdma_bytes: int  # total GDMA command bytes
    ir_bytes: int  # size of binary_ir (dynamic subnets)


@dataclass(frozen=True)
class Net:
    """A named network; one Stage per supported input shape."""

    name: str
    #: model_tool's "static"/"dynamic": ``is_dynamic`` of stage 0 (the legacy
    #: net_static/net_dynamic vectors do not matter; checked against model_tool).
    dynamic: bool
    addr_mode: int
    stages: tuple[Stage, ...]

    @property
    def addr_mode_name(self) -> str:
        m = self.addr_mode
        return ADDR_MODES[m] if 0 <= m < len(ADDR_MODES) else f"unknown({m})"


@dataclass(frozen=True)
class DeviceMem:
    """model_tool's "device mem size: total (weight: …, instruct: …, runtime: …)"."""

    total: int
    weight: int
    instruct: int
    runtime: int


@dataclass(frozen=True)
class HostMem:
    """model_tool's "host mem size: total (weight: …, runtime: …)"."""

    total: int
    weight: int
    runtime: int


@dataclass(frozen=True)
class BModel:
    """A parsed, verified plain bmodel."""

    path: Path
    file_size: int
    header: Header
    type: str  # "B"
    version: str  # model_tool prints f"{type}.{version}"
    time: str
    chip: str
    device_num: int
    neuron_size: int
    bmodel_type: int
    kernel_module: Module | None
    cpuop_module: Module | None
    nets: tuple[Net, ...]
    layout: tuple[LayoutPart, ...]
    device_mem: DeviceMem
    host_mem: HostMem

    @property
    def version_string(self) -> str:
        """What model_tool prints as "bmodel version"."""
        return f"{self.type}.{self.version}"

    @property
    def coeff_regions(self) -> tuple[CoeffRegion, ...]:
        """Distinct coeff regions (by position and size), in net/stage order."""
        seen: dict[tuple[int, int], CoeffRegion] = {}
        for net in self.nets:
            for stage in net.stages:
                c = stage.coeff
                if c is not None:
                    seen.setdefault((c.offset, c.size), c)
        return tuple(seen.values())

    def net(self, name: str) -> Net:
        """The net called ``name`` (KeyError if there is none)."""
        for n in self.nets:
            if n.name == name:
                return n
        raise KeyError(name)
