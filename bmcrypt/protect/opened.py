"""Open a bmcrypt file: authenticate its header and FlatBuffer envelopes, map the rest.

Follows docs/FORMAT.md §6 steps 1–4 in order, so the first failing step names the error. The
weights (step 5) and the clear digest (step 6) are streamed by `unseal.py`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bmcrypt.bmodel import decode_flatbuffer, unpack_flatbuffer
from bmcrypt.bmodel.header import MAGIC_BYTES
from bmcrypt.bmodel.reader import MAX_FLATBUFFER_SIZE
from bmcrypt.crypto import (
    MAX_HEADER_LEN,
    FileKeys,
    Header,
    Keyring,
    Kind,
    open_file_keys,
    parse_header,
    unseal,
)
from bmcrypt.errors import (
    Corrupt,
    ForeignEncrypted,
    NotABmodel,
    NotEncrypted,
    Tampered,
    Truncated,
)
from bmcrypt.files.opening import open_input_file
from bmcrypt.protect.container import ENVELOPE_MAGIC, MIN_HEADER_SIZE, TAIL_LEN
from bmcrypt.protect.manifest import Manifest, parse_manifest
from bmcrypt.protect.restore import RestoreRecord, parse_restore_record

if TYPE_CHECKING:  # the generated classes (and numpy) load only when a command rewrites
    from bmcrypt.bmodel import ModelT


@dataclass(frozen=True)
class Visible:
    """What anyone can see of a bmcrypt file without a key (for `inspect`)."""

    header_size: int
    envelope: Header  # E₁'s header: version, algorithm, file id, key block or key area
    flatbuffer_envelope: Header | None  # E₂'s, when the file is long enough to hold it


@dataclass
class Opened:
    """An authenticated bmcrypt file: keys, header tail, FlatBuffer, manifest, mapped bytes."""

    path: Path
    mm: mmap.mmap
    file_size: int
    header_size: int
    envelope: Header  # E₁'s header (public header + key block)
    keys: FileKeys
    key_block: bytes
    flatbuffers_size: int  # E₂'s length
    binary_size: int
    flatbuffer: bytes  # the plain FlatBuffer (verified)
    manifest: Manifest | None  # None for files made by `model_tool --encrypt -lib libbmcrypt.so`
    tree: dict[str, Any]  # the FlatBuffer as the verifying walk decoded it (no generated code)
    restore: RestoreRecord | None = None  # version 2: how to rebuild the original exactly

    @property
    def binary_offset(self) -> int:
        return self.header_size + self.flatbuffers_size

    def binary(self, start: int, size: int) -> memoryview:
        """Bytes of the binary region, bounds-checked, without copying."""
        if start < 0 or size < 0 or start + size > self.binary_size:
            raise Corrupt(f"binary range {start}+{size} points outside the file")
        base = self.binary_offset
        return memoryview(self.mm)[base + start:base + start + size]

    def unpack(self) -> ModelT:
        return unpack_flatbuffer(self.flatbuffer)


def _map(path: str | os.PathLike[str]) -> tuple[Path, mmap.mmap]:
    p = Path(path)
    with open_input_file(p) as f:  # never blocks on a FIFO or a device
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise NotABmodel(f"{p}: empty file is not a bmodel")
        return p, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def probe(mm: mmap.mmap | bytes, path: Path) -> Visible:
    """Check the clear bytes say "bmcrypt file" and parse what is visible; no key needed."""
    if len(mm) < 8 or bytes(mm[:4]) != MAGIC_BYTES:
        raise NotABmodel(f"{path}: not a bmodel (bad magic)")
    (header_size,) = struct.unpack("<I", mm[4:8])
    if bytes(mm[8:12]) != ENVELOPE_MAGIC:
        if header_size == 64 and not any(mm[20:64]):
            raise NotEncrypted(f"{path} is a plain bmodel, not encrypted")
        raise ForeignEncrypted(f"{path} is encrypted, but not by bmcrypt")
    if header_size < MIN_HEADER_SIZE:  # FORMAT.md §6 step 1, as the C verifier
        raise Corrupt(f"{path}: header size {header_size} is too small")
    if header_size > len(mm):
        raise Truncated(f"{path}: the file ends inside its header")
    e1 = parse_header(mm[8:header_size])  # checks the envelope's length too
    e2 = None
    if len(mm) > header_size:
        e2_head = mm[header_size:header_size + MAX_HEADER_LEN]
        with contextlib.suppress(Truncated):  # too short to show its header: said on opening
            e2 = parse_header(e2_head, whole=False)
    return Visible(header_size, e1, e2)


def probe_path(path: Path) -> Visible:
    """`probe` of the file at `path`: what anyone can see of it, without a key."""
    p, mm = _map(path)
    try:
        return probe(mm, p)
    finally:
        _close(mm)


@contextmanager
def open_encrypted(path: str | os.PathLike[str], keyring: Keyring) -> Iterator[Opened]:
    """Authenticate header and FlatBuffer of a bmcrypt file and yield it, memory-mapped."""
    p, mm = _map(path)
    try:
        yield _open(p, mm, keyring)
    finally:
        _close(mm)


def _close(mm: mmap.mmap) -> None:
    try:
        mm.close()
    except BufferError:  # a view is still alive (e.g. in a traceback): the GC unmaps it later
        pass


def _open(p: Path, mm: mmap.mmap, keyring: Keyring) -> Opened:
    visible = probe(mm, p)
    e1 = visible.envelope
    if e1.kind not in (Kind.HEADER_TAIL, Kind.GENERIC):
        raise Corrupt(f"{p}: the header envelope has kind {e1.kind}")
    if e1.plaintext_len != TAIL_LEN:  # before any key, as the C verifier (FORMAT.md §6 step 1)
        raise Corrupt(f"{p}: the header envelope does not hold {TAIL_LEN} bytes")
    keys = open_file_keys(e1, keyring)  # WrongKey / Tampered (and the licence, §8.5)
    header_size = visible.header_size
    tail = _unseal(mm[8:header_size], keys, "header")
    if len(tail) != TAIL_LEN or any(tail[12:]):
        raise Corrupt(f"{p}: the decrypted header is malformed")
    fb_size, binary_size = struct.unpack("<IQ", tail[:12])
    end = header_size + fb_size + binary_size
    if end > len(mm):
        raise Truncated(f"{p}: the file is {len(mm)} bytes, its header says {end}")
    if end < len(mm):
        raise Corrupt(f"{p}: {len(mm) - end} unexpected bytes after the end of the model")

    raw_e2 = mm[header_size:header_size + fb_size]
    e2 = parse_header(raw_e2)
    e2.check_length(fb_size)
    _same_file(keys, e2, p, "the FlatBuffer")
    plain = _unseal(raw_e2, keys, "FlatBuffer")
    manifest = None
    record = None
    if e2.kind == Kind.FLATBUFFER:
        manifest = parse_manifest(plain)
        fb = bytes(plain[:manifest.flatbuffer_len])
        if manifest.restore_len:
            record = parse_restore_record(
                plain[manifest.flatbuffer_len:manifest.flatbuffer_len + manifest.restore_len])
    elif e2.kind == Kind.GENERIC:
        fb = bytes(plain)
    else:
        raise Corrupt(f"{p}: the FlatBuffer envelope has kind {e2.kind}")
    if len(fb) > MAX_FLATBUFFER_SIZE:  # the plain reader's limit (FORMAT.md §6.1)
        raise Corrupt(f"{p}: the FlatBuffer is over the 1 GiB limit")
    tree = decode_flatbuffer(fb)  # verify before anyone trusts an offset in it
    return Opened(p, mm, len(mm), header_size, e1, keys, bytes(e1.key_block), fb_size, binary_size,
                  fb, manifest, tree, record)


def _same_file(keys: FileKeys, other: Header, p: Path, what: str) -> None:
    if other.version != keys.version:  # FORMAT.md §8: one version per file (as the C verifier)
        raise Corrupt(f"{p}: {what}: the file mixes envelopes of format versions 1 and 2")
    if not keys.owns(other):
        raise Tampered(f"{p}: {what} belongs to another encrypted file")


def _unseal(envelope: bytes, keys: FileKeys, what: str) -> bytearray:
    try:
        return unseal(envelope, keys)
    except Tampered:
        raise Tampered(f"the {what} was changed after encryption") from None
