"""What `bmcrypt inspect` reports about model files: plain data, no terminal code.

One :class:`FileReport` per file, whatever state it is in:

- **plain**: everything `model_tool --info` prints (same numbers), plus every coeff region with
  its SHA-256 (the file's ``check_code``) and the nets that share it, and a byte-level layout
  whose parts tile the file.
- **bmcrypt** without a key: only the clear bytes and the envelopes' public headers are
  readable (version, algorithm, key id and source, file id, the three part sizes); nets,
  weights and memory figures are inside the encrypted FlatBuffer and are reported as ``None``.
- **bmcrypt** with a key: the header and FlatBuffer envelopes are authenticated and the model
  is reported as if plain (memory figures as for the decrypted file), each coeff marked
  encrypted, the layout showing the envelopes. The weights themselves are not decrypted:
  that is `bmcrypt verify`.
- **foreign** (the vendor's encrypted layout written by another tool): what the clear 8 bytes say.

Several files are also compared by their weights (:class:`Comparison`). The dataclass field
names are the JSON names (docs/inspect.md); :func:`to_json` turns a report into JSON values.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bmcrypt.bmodel import _walk, reader
from bmcrypt.bmodel.header import EncryptionState, Header
from bmcrypt.bmodel.memory import memory_info
from bmcrypt.bmodel.model import BModel, DeviceMem, HostMem, Module, Stage, Tensor
from bmcrypt.crypto import HEADER_LEN, Kind, KeySource, Secret, parse_header, parse_key_block
from bmcrypt.crypto import Header as EnvelopeHeader
from bmcrypt.errors import BmcryptError, Corrupt, KeyProblem, Truncated, WrongKey
from bmcrypt.protect.opened import ENVELOPE_MAGIC, Opened, open_encrypted, probe

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


# ---------------------------------------------------------------- keys


class KeyChoice:
    """The key inspect may use: loaded (or prompted for) once, on the first bmcrypt file.

    An ``explicit`` key (--key/--passphrase) must open every bmcrypt file: a wrong key is an
    error, and so is a key that cannot be loaded. A key from $BMCRYPT_KEY_FILE is only a
    default: when it cannot be loaded or does not open a file, that file is shown as without
    a key, with a note saying why.
    """

    def __init__(self, load: Callable[[], Secret], *, explicit: bool) -> None:
        self._load = load
        self._secret: Secret | None = None
        self.explicit = explicit
        self.problem: str | None = None  # why a default key could not be loaded

    def secret(self) -> Secret | None:
        if self._secret is None and self.problem is None:
            try:
                self._secret = self._load()
            except KeyProblem as exc:
                if self.explicit:
                    raise
                self.problem = exc.message
        return self._secret


# ---------------------------------------------------------------- entry points


def inspect_files(paths: Sequence[str | os.PathLike[str]], key: KeyChoice | None = None) -> Batch:
    """Inspect every path; a file that fails becomes a FileFailure and the others go on.

    Key problems (a missing or unreadable key file, an empty passphrase) are not about one file:
    they propagate and stop the batch.
    """
    results: list[FileReport | FileFailure] = []
    for p in paths:
        try:
            results.append(inspect_file(p, key))
        except BmcryptError as exc:
            if _is_key_problem(exc):
                raise
            results.append(FileFailure(os.fspath(p), exc))
    return Batch(results, compare(results) if len(results) > 1 else None)


def inspect_file(path: str | os.PathLike[str], key: KeyChoice | None = None) -> FileReport:
    """The report of one file. Bad files raise the reader's BmcryptError, naming the path."""
    try:
        report = _inspect(Path(path), key)
    except BmcryptError as exc:
        if not _is_key_problem(exc) and str(path) not in exc.message:
            exc.message = f"{path}: {exc.message}"
            exc.args = (exc.message,)
        raise
    report.path = os.fspath(path)  # as given, not normalised by Path
    return report


def _is_key_problem(exc: BmcryptError) -> bool:
    return isinstance(exc, KeyProblem)


def _inspect(path: Path, key: KeyChoice | None) -> FileReport:
    head = reader.probe_file(path)  # InputFileError / NotABmodel / Truncated
    if head.state is EncryptionState.PLAIN:
        raw = reader.read_raw(path)
        root = _walk.decode(raw.flatbuffer)
        return _plain_report(model_from_flatbuffer(raw.path, raw.file_size, raw.header, root),
                             root)
    size = path.stat().st_size
    if head.tag != ENVELOPE_MAGIC:
        return _foreign_report(path, size, head.header_size)
    secret = key.secret() if key is not None else None
    if key is None or secret is None:
        report = _sealed_report(path)
        if key is not None and key.problem:
            report.notes.append(f"$BMCRYPT_KEY_FILE was not used: {key.problem}")
        return report
    try:
        with open_encrypted(path, secret) as opened:
            return _opened_report(opened)
    except WrongKey as exc:
        if key.explicit:
            raise
        report = _sealed_report(path)
        report.notes.append(f"the key in $BMCRYPT_KEY_FILE does not open this file ({exc})")
        return report


# ---------------------------------------------------------------- plain


def _plain_report(m: BModel, root: dict[str, Any], *,
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


# ---------------------------------------------------------------- foreign


def _foreign_report(path: Path, size: int, header_size: int) -> FileReport:
    if header_size < CLEAR_PREFIX:  # no encrypting tool can have written that
        raise Corrupt(f"header_size {header_size} is smaller than the 8 bytes before it")
    why = (f"header_size is {header_size}, not 64," if header_size != 64
           else "header_size is 64 but the reserved header bytes are not zero, and")
    layout = [LayoutEntry("clear_header", 0, CLEAR_PREFIX, "magic, header_size")]
    notes = [f"encrypted by another tool: {why} bytes 8..12 are not bmcrypt's BMCE; "
             "only the clear 8 bytes can be read (decrypt it with that tool's library first)"]
    if header_size <= size:
        layout += [LayoutEntry("encrypted_header", CLEAR_PREFIX, header_size - CLEAR_PREFIX,
                               "header tail, encrypted"),
                   LayoutEntry("opaque", header_size, size - header_size,
                               "FlatBuffer and binary region (boundary unknown)")]
    else:
        layout.append(LayoutEntry("opaque", CLEAR_PREFIX, size - CLEAR_PREFIX,
                                  "encrypted header and the rest"))
        notes.append(f"header_size {header_size} is beyond the end of the {size}-byte file: "
                     "it may be truncated")
    return FileReport(str(path), size, {"state": "foreign", "header_size": header_size},
                      [p for p in layout if p.size], notes=notes)


# ---------------------------------------------------------------- bmcrypt


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def _sealed_report(path: Path) -> FileReport:
    """A bmcrypt file seen without its key (FORMAT.md §2-§4: the public headers only)."""
    mm = _map(path)
    try:
        visible = probe(mm, path)
        size = len(mm)
    finally:
        mm.close()
    hs = visible.header_size
    e2 = visible.flatbuffer_envelope
    if e2 is None or hs + e2.envelope_len > size:
        raise Truncated(f"{path}: the file ends inside its FlatBuffer envelope")
    fb_len = e2.envelope_len
    layout = [LayoutEntry("clear_header", 0, CLEAR_PREFIX, "magic, header_size"),
              LayoutEntry("header_envelope", CLEAR_PREFIX, hs - CLEAR_PREFIX, "header tail"),
              LayoutEntry("flatbuffer_envelope", hs, fb_len, _fb_label(e2.kind)),
              LayoutEntry("binary_region", hs + fb_len, size - hs - fb_len,
                          "binary region: weight envelopes and clear parts")]
    return FileReport(str(path), size, _bmcrypt_info(visible.envelope, e2, hs, fb_len,
                                                     size - hs - fb_len, opened=False),
                      [p for p in layout if p.size], notes=[HIDDEN_NOTE])


def _fb_label(kind: int) -> str:
    return "FlatBuffer + manifest" if kind == Kind.FLATBUFFER else "FlatBuffer"


def _bmcrypt_info(e1: EnvelopeHeader, e2: EnvelopeHeader, header_size: int, fb_len: int,
                  binary_size: int, *, opened: bool) -> dict[str, Any]:
    block = parse_key_block(e1.key_block)
    scrypt = None
    if block.scrypt is not None:
        scrypt = {"log2_n": block.scrypt.log2n, "r": block.scrypt.r, "p": block.scrypt.p}
    algorithm = e1.public[5]
    return {
        "state": "bmcrypt",
        "format_version": e1.public[4],
        "algorithm": algorithm,
        "algorithm_name": ALGORITHMS.get(algorithm, f"unknown({algorithm})"),
        "segment_size": e1.segment_size,
        "key_source": KEY_SOURCES[block.source],
        "scrypt": scrypt,
        "key_id": block.key_id.hex(),
        "file_id": e1.file_id.hex(),
        "header_size": header_size,
        "header_envelope_size": header_size - CLEAR_PREFIX,
        "flatbuffer_envelope_size": fb_len,
        "binary_region_size": binary_size,
        # Kind 2 carries the manifest with the clear-region digest; the model_tool plugin
        # writes kind 0 envelopes without one (FORMAT.md §5).
        "clear_digest": e2.kind == Kind.FLATBUFFER,
        "opened": opened,
    }


def _opened_report(o: Opened) -> FileReport:
    """An authenticated bmcrypt file, reported like the plain model it holds."""
    root = _walk.decode(o.flatbuffer)
    m = model_from_flatbuffer(o.path, o.file_size,
                              Header(o.header_size, o.flatbuffers_size, o.binary_size), root)
    # Memory as for the decrypted file (what model_tool says of it, and what the runtime
    # uploads): weights count by their plaintext size, not by their envelope's.
    device, host = memory_info(_plaintext_sizes(root))
    m = replace(m, device_mem=device, host_mem=host)
    e2 = _envelope_header(o)
    info = _bmcrypt_info(o.envelope, e2, o.header_size, o.flatbuffers_size, o.binary_size,
                         opened=True)
    report = _plain_report(m, root, encryption=info,
                           layout=_sealed_layout(m, _fb_label(e2.kind)))
    report.notes.append("header and FlatBuffer authenticated with key "
                        f"{info['key_id']}; the weights were not decrypted "
                        "(`bmcrypt verify` checks every byte)")
    if not info["clear_digest"]:
        report.notes.append("no clear-region digest: written by model_tool --encrypt with "
                            "libbmcrypt.so; commands and other clear parts are not covered")
    return report


def model_from_flatbuffer(path: Path, file_size: int, header: Header,
                          root: dict[str, Any]) -> BModel:
    """A BModel from an already decrypted and verified FlatBuffer (decoded by ``_walk``).

    Uses the reader's builder as is: every Binary is checked against ``header.binary_size``
    and the layout tiles the file with ``header``'s sizes (here: the envelopes' sizes).
    """
    return reader._build(path, file_size, header, root)


def _plaintext_sizes(root: dict[str, Any]) -> dict[str, Any]:
    """A copy of a decoded Model whose encrypted coeffs have their plaintext size.

    Copies rather than edits: the walker shares tables referenced from several places.
    """
    def param(p: dict[str, Any]) -> dict[str, Any]:
        c = p["coeff_mem"]
        if c is None or not c["encrypt_mode"] or c["binary_coeff"] is None:
            return p
        coeff = {**c, "binary_coeff": (c["binary_coeff"][0], c["decrypt_size"])}
        return {**p, "coeff_mem": coeff}

    nets = [{**n, "parameter": [param(p) for p in n["parameter"] or ()]} for n in root["net"]]
    return {**root, "net": nets}


def _envelope_header(o: Opened) -> EnvelopeHeader:
    return parse_header(o.mm[o.header_size:o.header_size + HEADER_LEN], whole=False)


def _sealed_layout(m: BModel, fb_label: str) -> list[LayoutEntry]:
    """The reader's layout with the envelopes named: the clear 8 bytes, the header envelope,
    the FlatBuffer envelope, and ``coeff_envelope`` for encrypted weights."""
    encrypted = {(c.offset, c.size) for c in m.coeff_regions if c.encrypt_mode}
    out = []
    for p in m.layout:
        if p.kind == "header":
            out += [LayoutEntry("clear_header", 0, CLEAR_PREFIX, "magic, header_size"),
                    LayoutEntry("header_envelope", CLEAR_PREFIX, p.size - CLEAR_PREFIX,
                                "header tail")]
        elif p.kind == "flatbuffer":
            out.append(LayoutEntry("flatbuffer_envelope", p.offset, p.size, fb_label))
        elif p.kind == "coeff" and (p.offset, p.size) in encrypted:
            out.append(LayoutEntry("coeff_envelope", p.offset, p.size, p.label))
        else:
            out.append(LayoutEntry(p.kind, p.offset, p.size, p.label))
    return out


# ---------------------------------------------------------------- comparing files


def compare(results: Sequence[FileReport | FileFailure]) -> Comparison:
    """Which weight regions (by SHA-256 and plaintext size) the files have in common."""
    compared: list[FileReport] = []
    not_compared: list[dict[str, str]] = []
    for r in results:
        if isinstance(r, FileFailure):
            not_compared.append({"path": r.path, "reason": "could not be inspected"})
        elif not r.weights_visible:
            reason = ("encrypted by another tool" if r.encryption["state"] == "foreign"
                      else "encrypted by bmcrypt; no key given")
            not_compared.append({"path": r.path, "reason": reason})
        else:
            compared.append(r)
    where: dict[tuple[Any, ...], list[int]] = {}  # by position: a path may be given twice
    for i, r in enumerate(compared):
        for c in r.coeff_regions or ():
            # A region without a check_code can only be told apart by where it is.
            ident = (c.sha256, c.size) if c.sha256 else (None, c.size, i, c.offset)
            found = where.setdefault(ident, [])
            if i not in found:
                found.append(i)
    regions = [SharedRegion(k[0], k[1], [compared[i].path for i in v]) for k, v in where.items()]
    visible = _verdict(len(compared), regions) if len(compared) > 1 else None
    overall = visible if not not_compared and visible is not None else "unknown"
    return Comparison(overall, visible, [r.path for r in compared], not_compared, regions)


def _verdict(n_files: int, regions: list[SharedRegion]) -> str:
    if all(len(r.files) == n_files for r in regions):
        return "identical"
    if all(len(r.files) == 1 for r in regions):
        return "different"
    return "partly_shared"


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
