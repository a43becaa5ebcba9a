"""The byte layout of an envelope (FORMAT.md §3) and the limits a reader enforces (§3.1).

No cryptography here: reading a header needs no key, so `inspect` can use this module alone.

    offset  size
         0     4  magic "BMCE"
         4     1  format version (1)
         5     1  algorithm (1: AES-256-GCM, HKDF-SHA256, STREAM segments)
         6     1  kind (Kind)
         7     1  seg_log2 (segment size S = 2^seg_log2)
         8     8  plaintext_len (u64 LE)
        16    16  file_id
        32    16  region_salt          ┘ bytes 0..48: the public header, AAD of every segment
        48   104  key block (keyblock.py)
       152     …  n segments: ciphertext_i || tag_i, n = max(1, ⌈plaintext_len / S⌉)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from bmcrypt.errors import Corrupt, Truncated, UnsupportedVersion

MAGIC = b"BMCE"
VERSION = 1
ALGORITHM = 1
#: Bytes 0..6 (magic, version, algorithm) are the same in every v1 envelope; the key block's
#: wrap binds to them (FORMAT.md §4.4) but not to the per-envelope kind and seg_log2.
FORMAT_PREFIX = MAGIC + bytes([VERSION, ALGORITHM])

PUBLIC_HEADER_LEN = 48
KEY_BLOCK_OFFSET = 48
KEY_BLOCK_LEN = 104
HEADER_LEN = KEY_BLOCK_OFFSET + KEY_BLOCK_LEN  # 152: where the segments start
ID_LEN = 16  # file_id and region_salt
TAG_LEN = 16

MIN_SEG_LOG2 = 12
MAX_SEG_LOG2 = 30
DEFAULT_SEG_LOG2 = 20
MAX_PLAINTEXT_LEN = 1 << 40

_PUBLIC = struct.Struct("<4sBBBBQ16s16s")
assert _PUBLIC.size == PUBLIC_HEADER_LEN

#: Anything with the buffer protocol: bytes, bytearray, memoryview, mmap, a contiguous array.
Buffer = bytes | bytearray | memoryview


def byte_view(data: Buffer) -> memoryview:
    """A flat view of `data` in bytes (a float32 array's length counts bytes, not items)."""
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class Kind(IntEnum):
    """What an envelope holds (FORMAT.md §2)."""

    GENERIC = 0  # written by the model_tool plugin, which has no context
    HEADER_TAIL = 1
    FLATBUFFER = 2  # the FlatBuffer followed by the 64-byte manifest
    WEIGHTS = 3


def segment_count(plaintext_len: int, seg_log2: int) -> int:
    """n = max(1, ⌈plaintext_len / S⌉): an empty plaintext still has one (empty) segment."""
    return max(1, (plaintext_len + (1 << seg_log2) - 1) >> seg_log2)


def envelope_length(plaintext_len: int, seg_log2: int = DEFAULT_SEG_LOG2) -> int:
    """The exact length of the envelope of a `plaintext_len`-byte plaintext."""
    _check_arguments(plaintext_len, seg_log2)
    return HEADER_LEN + plaintext_len + TAG_LEN * segment_count(plaintext_len, seg_log2)


def pack_public_header(kind: int, seg_log2: int, plaintext_len: int, file_id: bytes,
                       region_salt: bytes) -> bytes:
    """The 48 bytes a writer puts at offset 0 (the associated data of every segment)."""
    _check_arguments(plaintext_len, seg_log2)
    kind = Kind(kind)  # ValueError for anything but 0..3
    if len(file_id) != ID_LEN or len(region_salt) != ID_LEN:
        raise ValueError("file_id and region_salt are 16 bytes each")
    return _PUBLIC.pack(MAGIC, VERSION, ALGORITHM, kind, seg_log2, plaintext_len,
                        bytes(file_id), bytes(region_salt))


@dataclass(frozen=True)
class Header:
    """The first 152 bytes of an envelope, checked against every limit of FORMAT.md §3.1."""

    kind: Kind
    seg_log2: int
    plaintext_len: int
    file_id: bytes
    region_salt: bytes
    public: bytes = field(repr=False)  # bytes 0..48 as read: the segments' associated data
    key_block: bytes = field(repr=False)  # bytes 48..152

    @property
    def segment_size(self) -> int:
        return 1 << self.seg_log2

    @property
    def segment_count(self) -> int:
        return segment_count(self.plaintext_len, self.seg_log2)

    @property
    def envelope_len(self) -> int:
        """The only length this envelope may have."""
        return HEADER_LEN + self.plaintext_len + TAG_LEN * self.segment_count

    def check_length(self, actual: int) -> None:
        """Refuse an envelope of any other length: shorter is truncated, longer is corrupt."""
        expected = self.envelope_len
        if actual < expected:
            raise Truncated(f"envelope is {actual} bytes, its header says {expected}")
        if actual > expected:
            raise Corrupt(f"envelope is {actual} bytes, its header says {expected}: "
                          f"{actual - expected} bytes too many")


def parse_header(buf: Buffer, *, whole: bool = True) -> Header:
    """Read and check the header at the start of `buf`, before anything is allocated.

    With `whole=True` (the default) `buf` is the entire envelope and its length is checked too;
    with `whole=False` it is only the start of one (streaming; call `Header.check_length`
    once the total is known). The checks run in the order of FORMAT.md §3.1, each only if its
    bytes are present, so a short buffer with a bad magic is corrupt, not truncated.
    """
    view = byte_view(buf)
    head = bytes(view[:HEADER_LEN])
    _check_fields(head)
    if len(head) < HEADER_LEN:
        raise Truncated(f"envelope ends inside its header ({len(head)} of {HEADER_LEN} bytes)")
    _, _, _, kind, seg_log2, plaintext_len, file_id, region_salt = _PUBLIC.unpack_from(head)
    header = Header(kind=Kind(kind), seg_log2=seg_log2, plaintext_len=plaintext_len,
                    file_id=file_id, region_salt=region_salt,
                    public=head[:PUBLIC_HEADER_LEN], key_block=head[KEY_BLOCK_OFFSET:])
    if whole:
        header.check_length(len(view))
    return header


def _check_fields(head: bytes) -> None:
    """§3.1 in order: magic, version, algorithm, kind, seg_log2, plaintext_len."""
    if head[:4] != MAGIC[:len(head)]:
        raise Corrupt("not a bmcrypt envelope (bad magic)")
    if len(head) > 4 and head[4] != VERSION:
        raise UnsupportedVersion(f"envelope format version {head[4]} is not supported "
                                 f"(this bmcrypt reads version {VERSION})")
    if len(head) > 5 and head[5] != ALGORITHM:
        raise UnsupportedVersion(f"envelope algorithm {head[5]} is not supported")
    if len(head) > 6 and head[6] > max(Kind):
        raise UnsupportedVersion(f"envelope kind {head[6]} is not supported")
    if len(head) > 7 and not MIN_SEG_LOG2 <= head[7] <= MAX_SEG_LOG2:
        raise Corrupt(f"envelope segment size 2^{head[7]} is outside "
                      f"2^{MIN_SEG_LOG2}..2^{MAX_SEG_LOG2}")
    if len(head) >= 16:
        plaintext_len = int.from_bytes(head[8:16], "little")
        if plaintext_len > MAX_PLAINTEXT_LEN:
            raise Corrupt(f"envelope plaintext length {plaintext_len} exceeds 2^40 bytes")


def _check_arguments(plaintext_len: int, seg_log2: int) -> None:
    # A writer's own arguments: a bad value is a bug in the caller, not a bad file.
    if not MIN_SEG_LOG2 <= seg_log2 <= MAX_SEG_LOG2:
        raise ValueError(f"seg_log2 must be {MIN_SEG_LOG2}..{MAX_SEG_LOG2}, not {seg_log2}")
    if not 0 <= plaintext_len <= MAX_PLAINTEXT_LEN:
        raise ValueError(f"plaintext_len must be 0..2^40, not {plaintext_len}")
