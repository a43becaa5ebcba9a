"""The report `bmcrypt inspect` builds: dataclasses whose field names are the JSON names
(docs/inspect.md), and their conversion to JSON values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bmcrypt.bmodel.model import DeviceMem, HostMem
from bmcrypt.crypto import (
    KeySource,
)
from bmcrypt.errors import BmcryptError

CLEAR_PREFIX = 8  # magic + header_size: the bytes every encrypted layout leaves in clear
ALGORITHMS = {1: "AES-256-GCM, HKDF-SHA256, STREAM segments"}
KEY_SOURCES = {KeySource.RAW: "key file", KeySource.PASSPHRASE: "passphrase"}
HIDDEN_NOTE = ("nets, weights and memory figures are hidden: the FlatBuffer is encrypted "
               "(pass --key KEYFILE or --passphrase to see them)")


# ---------------------------------------------------------------- the report


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: list[int]
    dtype: str  # as model_tool prints it
    scale: float
    zero_point: int


@dataclass(frozen=True)
class StageCoeff:
    """A stage's weights; ``region`` indexes FileReport.coeff_regions."""

    region: int
    size: int
    sha256: str | None
    encrypted: bool


@dataclass(frozen=True)
class StageInfo:
    index: int
    core_num: int
    subnets: int
    #: the input shapes are maxima (n_dynamic or h_w_dynamic set; model_tool prints "max:")
    max_input_shapes: bool
    inputs: list[TensorInfo]
    outputs: list[TensorInfo]
    coeff: StageCoeff | None


@dataclass(frozen=True)
class NetInfo:
    name: str
    dynamic: bool
    addr_mode: int
    addr_mode_name: str
    stages: list[StageInfo]


@dataclass(frozen=True)
class CoeffRegionInfo:
    """One stored weight region; ``size`` is the plaintext size, ``stored_size`` its bytes in
    the file (an envelope when encrypted)."""

    index: int
    offset: int
    stored_size: int
    size: int
    sha256: str | None  # the file's check_code (SHA-256 of the plaintext), None if absent
    encrypted: bool
    encrypt_mode: int
    used_by: list[str]  # "net[stage]"


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    offset: int
    size: int


@dataclass(frozen=True)
class LayoutEntry:
    kind: str
    offset: int
    size: int
    label: str = ""


@dataclass
class FileReport:
    path: str
    size: int
    encryption: dict[str, Any]
    layout: list[LayoutEntry]
    chip: str | None = None
    version: str | None = None
    time: str | None = None
    kernel_module: ModuleInfo | None = None
    cpuop_module: ModuleInfo | None = None
    device_mem: DeviceMem | None = None
    host_mem: HostMem | None = None
    nets: list[NetInfo] | None = None
    coeff_regions: list[CoeffRegionInfo] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def layout_sum(self) -> int:
        return sum(p.size for p in self.layout)

    @property
    def weights_visible(self) -> bool:
        return self.coeff_regions is not None


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be inspected; ``error`` is what the CLI printed on stderr."""

    path: str
    error: BmcryptError


@dataclass(frozen=True)
class SharedRegion:
    sha256: str | None
    size: int
    files: list[str]


@dataclass(frozen=True)
class Comparison:
    """Whether several files carry the same weights, by (SHA-256, size) of their coeff regions.

    ``weights`` covers every file given: identical / partly_shared / different, or unknown
    when some file's weights cannot be seen (``not_compared`` says why); ``visible_weights``
    is the same verdict over the files that could be compared (None for fewer than two).
    """

    weights: str
    visible_weights: str | None
    compared: list[str]
    not_compared: list[dict[str, str]]
    regions: list[SharedRegion]


@dataclass(frozen=True)
class Batch:
    results: list[FileReport | FileFailure]
    comparison: Comparison | None  # None for a single file

    @property
    def failures(self) -> list[FileFailure]:
        return [r for r in self.results if isinstance(r, FileFailure)]


class SomeFilesFailed(BmcryptError):
    """Raised after a batch has been reported, when some files could not be inspected."""

    def __init__(self, failed: int, total: int, exit_code: int) -> None:
        if failed == total:
            super().__init__(f"none of the {total} files could be inspected (see above)")
        else:
            super().__init__(f"{failed} of {total} files could not be inspected (see above)",
                             hint="the others were inspected; fix or leave out the failing ones")
        self.exit_code = exit_code



# ---------------------------------------------------------------- JSON


def to_json(item: FileReport | FileFailure) -> dict[str, Any]:
    """JSON values of one file's result (docs/inspect.md)."""
    if isinstance(item, FileFailure):
        e = item.error
        return {"path": item.path, "error": {"type": type(e).__name__, "message": e.message,
                                             "hint": e.hint, "exit_code": e.exit_code}}
    d = asdict(item)
    d["layout_sum"] = item.layout_sum
    return {k: d[k] for k in _JSON_ORDER}


_JSON_ORDER = ("path", "size", "encryption", "chip", "version", "time", "kernel_module",
               "cpuop_module", "device_mem", "host_mem", "nets", "coeff_regions", "layout",
               "layout_sum", "notes")


def batch_json(batch: Batch) -> Any:
    """One file: its object. Several: ``{"files": [...], "comparison": {...}}``."""
    if batch.comparison is None:
        return to_json(batch.results[0])
    return {"files": [to_json(r) for r in batch.results], "comparison": asdict(batch.comparison)}
