"""The 64-byte header in front of every plain bmodel, and a key-free look at encrypted ones.

    offset size field
    0      4    magic 0xFF55AAEE (little-endian bytes ee aa 55 ff)
    4      4    header_size       u32, 64 in a plain file
    8      4    flatbuffers_size  u32
    12     8    binary_size       u64 (older tools: u32 + zero, the same bytes below 4 GiB)
    20     44   reserved, zero

The FlatBuffer follows at ``header_size``, the binary region at
``header_size + flatbuffers_size``. Encrypting tools keep the magic and ``header_size`` in
the clear and replace bytes 8.. with ciphertext, so the first 8 bytes alone tell a plain file
from an encrypted one (see :func:`probe_header`).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from bmcrypt.errors import Corrupt, NotABmodel, Truncated

MAGIC = 0xFF55AAEE
MAGIC_BYTES = struct.pack("<I", MAGIC)
HEADER_SIZE = 64
RESERVED_OFFSET = 20

_HEADER = struct.Struct("<IIIQ44s")
assert _HEADER.size == HEADER_SIZE


class EncryptionState(enum.Enum):
    """What the first bytes say about a file, without any key."""

    PLAIN = "plain"
    #: header_size != 64, or reserved bytes set: bytes 8.. were rewritten by an encrypting tool
    #: (the vendor's sample bitwise-NOT cipher keeps header_size 64 but sets the reserved bytes).
    ENCRYPTED_LAYOUT = "encrypted-layout"


@dataclass(frozen=True)
class Header:
    """A validated plain header."""

    header_size: int
    flatbuffers_size: int
    binary_size: int

    @property
    def flatbuffer_offset(self) -> int:
        return self.header_size

    @property
    def binary_offset(self) -> int:
        """File offset that every ``Binary.start`` is relative to."""
        return self.header_size + self.flatbuffers_size

    @property
    def end(self) -> int:
        """File offset just past the binary region; the file must be at least this long."""
        return self.binary_offset + self.binary_size


@dataclass(frozen=True)
class HeaderProbe:
    """The clear fields of a header, plain or encrypted. Needs no key.

    ``flatbuffers_size``/``binary_size``/``reserved_zero`` are only meaningful for
    ``EncryptionState.PLAIN``; in the encrypted layout those bytes are ciphertext.
    """

    state: EncryptionState
    header_size: int
    #: file bytes 8..12: plain flatbuffers_size, or the first ciphertext bytes (bmcrypt's own
    #: envelope puts a 4-byte tag there; the caller decides what it means).
    tag: bytes
    flatbuffers_size: int | None
    binary_size: int | None


def _check_magic(data: bytes) -> None:
    if not data:
        raise NotABmodel("empty file is not a bmodel")
    if len(data) < 4:
        if MAGIC_BYTES.startswith(bytes(data)):
            raise Truncated(f"file ends after {len(data)} bytes, inside the bmodel magic")
        raise NotABmodel("file is too short to be a bmodel")
    if bytes(data[:4]) != MAGIC_BYTES:
        raise NotABmodel(f"not a bmodel: magic is {bytes(data[:4]).hex(' ')}, expected ee aa 55 ff")


def probe_header(data: bytes) -> HeaderProbe:
    """Classify a file from its first bytes (pass at least 64 if the file has them).

    Raises NotABmodel for a wrong magic, Truncated when the bytes end before the fields
    the state needs (12 bytes for the encrypted layout, 64 for a plain header).
    """
    _check_magic(data)
    if len(data) < 12:
        raise Truncated(f"file ends after {len(data)} bytes, inside the bmodel header")
    header_size, = struct.unpack_from("<I", data, 4)
    tag = bytes(data[8:12])
    if header_size != HEADER_SIZE:
        return HeaderProbe(EncryptionState.ENCRYPTED_LAYOUT, header_size, tag, None, None)
    if len(data) < HEADER_SIZE:
        raise Truncated(f"file ends after {len(data)} bytes, inside the 64-byte bmodel header")
    _, _, fb_size, bin_size, reserved = _HEADER.unpack_from(data, 0)
    if any(reserved):
        return HeaderProbe(EncryptionState.ENCRYPTED_LAYOUT, header_size, tag, None, None)
    return HeaderProbe(EncryptionState.PLAIN, header_size, tag, fb_size, bin_size)


def parse_header(data: bytes) -> Header:
    """Parse and validate a plain header from the first 64 bytes of a file.

    Only the header's own consistency is checked here; whether the file is long enough for
    the sizes it declares is the reader's job (it knows the file size).
    """
    probe = probe_header(data)
    if probe.state is not EncryptionState.PLAIN:
        # Callers that care about encrypted files check probe_header first; for a plain
        # parser this is simply not a header it can read.
        raise Corrupt("bmodel header is not a plain header (encrypted or damaged)")
    assert probe.flatbuffers_size is not None and probe.binary_size is not None
    return Header(HEADER_SIZE, probe.flatbuffers_size, probe.binary_size)


def build_header(flatbuffers_size: int, binary_size: int) -> bytes:
    """The 64 header bytes of a plain bmodel."""
    if not 0 <= flatbuffers_size < 1 << 32:
        raise ValueError(f"flatbuffers_size {flatbuffers_size} does not fit in u32")
    if not 0 <= binary_size < 1 << 64:
        raise ValueError(f"binary_size {binary_size} does not fit in u64")
    return _HEADER.pack(MAGIC, HEADER_SIZE, flatbuffers_size, binary_size, bytes(44))
