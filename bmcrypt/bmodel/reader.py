"""Read plain bmodels, hostile input first.

Order of checks, each with its own error: the path (InputFileError), the magic (NotABmodel),
the header's sizes against the file size (Truncated) and the FlatBuffer cap (Corrupt), then the
FlatBuffer itself through the verifying walker (Corrupt), then every ``Binary`` against the
binary region (Corrupt). Nothing is allocated from a header number before it has been checked
against the real file size, and the binary region is never read: it stays memory-mapped, so
a 4 GiB model costs its FlatBuffer in RAM, not 4 GiB.

Encrypted files are recognised from their clear bytes and refused with a StateError.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from bmcrypt.bmodel import _walk
from bmcrypt.bmodel.header import (
    HEADER_SIZE,
    EncryptionState,
    Header,
    HeaderProbe,
    parse_header,
    probe_header,
)
from bmcrypt.bmodel.memory import memory_info
from bmcrypt.bmodel.model import BModel, CoeffRegion, Module, Net, Span, Stage, Tensor, dtype_name
from bmcrypt.bmodel.regions import build_layout, check_refs, collect_refs
from bmcrypt.errors import (
    AlreadyEncrypted,
    Corrupt,
    InputFileError,
    NotABmodel,
    NotRegularFile,
    Truncated,
)

if TYPE_CHECKING:  # the generated code imports the flatbuffers runtime, and numpy with it
    from bmcrypt.bmodel._fbs.bmodel.Model import Model, ModelT

#: Real FlatBuffers are KiB to a few MiB; a bigger one is damage (or an attack on our RAM).
MAX_FLATBUFFER_SIZE = 1 << 30
#: bmcrypt's own envelope tags file bytes 8..12 with this (the envelope module owns the format).


@dataclass(frozen=True)
class RawBmodel:
    """Validated header + verified FlatBuffer bytes, for callers that rewrite the metadata."""

    path: Path
    file_size: int
    header: Header
    flatbuffer: bytes  # verified; includes the writer's zero padding

    def root(self) -> Model:
        """The generated accessor over the verified FlatBuffer."""
        from bmcrypt.bmodel._fbs.bmodel.Model import Model

        return Model.GetRootAs(self.flatbuffer, 0)

    def unpack(self) -> ModelT:
        """The whole metadata as the generated object API (``ModelT``), ready to modify and
        re-pack with :func:`bmcrypt.bmodel.writer.pack_flatbuffer`."""
        from bmcrypt.bmodel._fbs.bmodel.Model import ModelT

        try:
            return ModelT.InitFromObj(self.root())
        # Unreachable after the walker; kept so that a bug there is still one clean error.
        except (IndexError, ValueError, TypeError, struct.error) as e:
            raise Corrupt(f"metadata is damaged ({type(e).__name__})") from None


def _check_regular(p: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise NotRegularFile.of(p, mode)


def _open(path: str | os.PathLike[str]) -> tuple[Path, BinaryIO, int]:
    # The same steps as bmcrypt.files.opening.open_input (the format room knows no files room):
    # stat before open, as opening a FIFO or a device could block or have side effects; open
    # non-blocking, in case the name changed since; then check what was opened.
    p = Path(path)
    try:
        _check_regular(p, p.stat().st_mode)
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        f = open(fd, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise InputFileError(f"{p}: no such file") from None
    except OSError as e:
        raise InputFileError(f"{p}: cannot open: {(e.strerror or str(e)).lower()}") from None
    st = os.fstat(f.fileno())  # the file we opened, in case the path changed meanwhile
    try:
        _check_regular(p, st.st_mode)
    except InputFileError:
        f.close()
        raise
    return p, f, st.st_size


def _check_plain(first: bytes) -> Header:
    probe = probe_header(first)
    if probe.state is EncryptionState.ENCRYPTED_LAYOUT:
        # Whose encryption it is, is the container's business (bmcrypt.protect.container).
        raise AlreadyEncrypted("the bmodel header is encrypted (not a plain bmodel)",
                               hint="`bmcrypt inspect` says who encrypted it")
    return parse_header(first)


def _check_sizes(header: Header, file_size: int) -> None:
    if header.end > file_size:
        raise Truncated(f"file is {file_size} bytes but its header declares {header.end} "
                        f"({header.header_size} + {header.flatbuffers_size} + "
                        f"{header.binary_size})")
    if header.flatbuffers_size > MAX_FLATBUFFER_SIZE:
        raise Corrupt(f"flatbuffer size {header.flatbuffers_size} is over the 1 GiB limit")


@contextmanager
def _mapped(path: str | os.PathLike[str]) -> Iterator[tuple[Path, mmap.mmap, Header]]:
    p, f, size = _open(path)
    with f:
        if size == 0:
            raise NotABmodel(f"{p}: empty file is not a bmodel")
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as e:
            raise InputFileError(f"{p}: cannot map the file: {e}") from None
        try:
            header = _check_plain(mm[:HEADER_SIZE])
            _check_sizes(header, size)
            yield p, mm, header
        finally:
            # A view may still be alive (e.g. in a traceback); the GC unmaps the file then.
            with contextlib.suppress(BufferError):
                mm.close()


def probe_file(path: str | os.PathLike[str]) -> HeaderProbe:
    """Plain or encrypted, from the first 64 bytes of a file; needs no key, checks no sizes.

    InputFileError for a path that is not a readable regular file, NotABmodel/Truncated as
    :func:`~bmcrypt.bmodel.header.probe_header`.
    """
    p, f, _ = _open(path)
    with f:
        first = f.read(HEADER_SIZE)
    if not first:
        raise NotABmodel(f"{p}: empty file is not a bmodel")
    return probe_header(first)


def read_raw(path: str | os.PathLike[str]) -> RawBmodel:
    """Header and verified FlatBuffer of a plain bmodel (the binary region is not read)."""
    with _mapped(path) as (p, mm, header):
        fb = mm[header.header_size:header.binary_offset]
        file_size = len(mm)
    _walk.decode(fb)
    return RawBmodel(p, file_size, header, fb)


def read_bmodel(path: str | os.PathLike[str]) -> BModel:
    """Parse and fully validate a plain bmodel. Raises only BmcryptError subclasses on bad input."""
    with _mapped(path) as (p, mm, header):
        fb = mm[header.header_size:header.binary_offset]
        file_size = len(mm)
    return build_model(p, file_size, header, _walk.decode(fb))


class MappedBmodel:
    """A verified plain bmodel with its binary region memory-mapped (see :func:`open_mapped`)."""

    def __init__(self, raw: RawBmodel, mm: mmap.mmap) -> None:
        self.raw = raw
        self._mm = mm

    def binary(self, start: int, size: int) -> memoryview:
        """Bytes ``[start, start + size)`` after ``binary_offset`` (as ``Binary.start``), no copy.

        The range may run past the declared binary region into trailing bytes, but not past
        the end of the file. Release the view (``with``/``del``) before the MappedBmodel closes.
        """
        base = self.raw.header.binary_offset
        if start < 0 or size < 0 or base + start + size > self.raw.file_size:
            raise Corrupt(f"binary range {start}+{size} points outside the file")
        return memoryview(self._mm)[base + start:base + start + size]

    def whole(self) -> memoryview:
        """Every byte of the file, header included, no copy (release it before closing)."""
        return memoryview(self._mm)

    def drop_pages(self, offset: int, length: int) -> None:
        """Done with these bytes: let the mapping forget them (they stay in the page cache)."""
        start = offset - offset % mmap.PAGESIZE
        with contextlib.suppress(OSError, ValueError):  # advice only
            self._mm.madvise(mmap.MADV_DONTNEED, start, offset + length - start)


@contextmanager
def open_mapped(path: str | os.PathLike[str]) -> Iterator[MappedBmodel]:
    """Verified header + FlatBuffer, and zero-copy access to the binary region."""
    with _mapped(path) as (p, mm, header):
        fb = mm[header.header_size:header.binary_offset]
        root = _walk.decode(fb)
        refs = collect_refs(root, [_text(n["name"], "net name") for n in root["net"]])
        check_refs(refs, header.binary_size)
        yield MappedBmodel(RawBmodel(p, len(mm), header, fb), mm)


# ---------------------------------------------------------------- decoded tree -> BModel


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Corrupt(f"metadata is damaged: {what} is not valid UTF-8") from None


def _tensor(t: dict[str, Any]) -> Tensor:
    shapes = t["shape"]
    dims = tuple(shapes[0]["dim"] or ()) if shapes else ()
    return Tensor(_text(t["name"], "tensor name"), dtype_name(t["data_type"]), t["data_type"],
                  dims, t["scale"], t["zero_point"], t["size"], t["device_addr"])


def _command_bytes(stage: dict[str, Any]) -> tuple[int, int]:
    """Distinct bdc / gdma spans of all command groups of a stage (subnets repeat them)."""
    bdc: set[tuple[int, int]] = set()
    gdma: set[tuple[int, int]] = set()
    groups = list(stage["cmd_group"] or ())
    for subnet in stage["sub_net"] or ():
        groups += subnet["cmd_group"] or ()
        for core in subnet["core_commands"] or ():
            groups += core["gdma_tiu_commands"] or ()
    for g in groups:
        if g["binary_bdc"] is not None:
            bdc.add(g["binary_bdc"])
        if g["binary_gdma"] is not None:
            gdma.add(g["binary_gdma"])
    return sum(s for _, s in bdc), sum(s for _, s in gdma)


def _stage(index: int, s: dict[str, Any], header: Header, where: str) -> Stage:
    coeff = None
    c = s["coeff_mem"]
    if c is not None:
        if c["binary_coeff"] is None:
            raise Corrupt(f"metadata is damaged: {where} coeff_mem has no binary_coeff")
        start, size = c["binary_coeff"]
        coeff = CoeffRegion(header.binary_offset + start, size, start, c["check_code"] or b"",
                            c["encrypt_mode"], c["decrypt_size"], c["address"])
    bdc, gdma = _command_bytes(s)
    return Stage(
        index=index,
        inputs=tuple(_tensor(t) for t in s["input_tensor"]),
        outputs=tuple(_tensor(t) for t in s["output_tensor"]),
        coeff=coeff, is_dynamic=bool(s["is_dynamic"]),
        ctx_addr=s["ctx_addr"], ctx_size=s["ctx_size"], io_addr=s["io_addr"], io_size=s["io_size"],
        core_num=s["core_num"], subnet_count=len(s["sub_net"] or ()),
        cpu_mem_size=s["cpu_mem_size"], bdc_bytes=bdc, gdma_bytes=gdma,
        ir_bytes=s["binary_ir"][1] if s["binary_ir"] is not None else 0)


def _module(m: dict[str, Any] | None, header: Header, what: str) -> Module | None:
    if m is None:
        return None
    start, size = m["binary"]
    return Module(_text(m["file_name"], what), Span(header.binary_offset + start, size),
                  m.get("mode", 0))


def build_model(path: Path, file_size: int, header: Header, root: dict[str, Any]) -> BModel:
    """The typed model of a FlatBuffer already decoded and verified by ``_walk.decode``.

    Every Binary is checked against ``header.binary_size``; the layout tiles ``file_size``
    with ``header``'s sizes. Used for plain files and for decrypted ones (inspect --key).
    """
    names = [_text(n["name"], "net name") for n in root["net"]]
    refs = collect_refs(root, names)
    check_refs(refs, header.binary_size)
    nets = []
    for name, n in zip(names, root["net"], strict=True):
        params = n["parameter"] or []
        if not params:
            raise Corrupt(f"metadata is damaged: net {name!r} has no stages")
        stages = tuple(_stage(i, s, header, f"{name}[{i}]") for i, s in enumerate(params))
        nets.append(Net(name, stages[0].is_dynamic, n["addr_mode"], stages))
    device, host = memory_info(root)
    return BModel(
        path=path, file_size=file_size, header=header,
        type=_text(root["type"], "type"), version=_text(root["version"], "version"),
        time=_text(root["time"], "time").strip(), chip=_text(root["chip"], "chip"),
        device_num=root["device_num"], neuron_size=root["neuron_size"],
        bmodel_type=root["bmodel_type"],
        kernel_module=_module(root["kernel_module"], header, "kernel module name"),
        cpuop_module=_module(root["cpuop_module"], header, "cpuop module name"),
        nets=tuple(nets), layout=build_layout(header, file_size, refs),
        device_mem=device, host_mem=host)
