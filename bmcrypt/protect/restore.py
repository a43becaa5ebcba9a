"""The restore record (FORMAT.md §8.4): what it takes to rebuild the original plain file byte for
byte from a version-2 bmcrypt file.

    offset  size
         0    32  SHA-256 of the original file
        32     8  length of the original file
        40    64  the original file's first 64 bytes (its header)
       104     8  orig_fb_len
       112     4  m, the number of extents
       116     4  zero
       120     …  the original FlatBuffer, verbatim; zero padding to a multiple of 8
         …  32×m  extents: u64 orig_off, u64 len, u64 new_off, u32 source, u32 zero

The original file is header || FlatBuffer || body. Extents tile the body in order: `len` bytes
at `orig_off` (from the body's start) come from the sealed binary region at `new_off`, as clear
bytes (source 0) or as the whole plaintext of the weight envelope starting there (source 1).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from bmcrypt.crypto.envelope_header import Buffer, byte_view
from bmcrypt.errors import Corrupt

ORIGINAL_HEADER_LEN = 64
CLEAR, ENVELOPE = 0, 1  # extent sources

_HEAD = struct.Struct("<32sQ64sQII")
_EXTENT = struct.Struct("<QQQII")
assert _HEAD.size == 120 and _EXTENT.size == 32


@dataclass(frozen=True)
class Extent:
    orig_off: int  # in the original body
    len: int
    new_off: int  # in the sealed binary region
    source: int  # CLEAR or ENVELOPE


@dataclass(frozen=True)
class RestoreRecord:
    sha256: bytes
    length: int
    header: bytes = field(repr=False)
    flatbuffer: bytes = field(repr=False)
    extents: tuple[Extent, ...]

    @property
    def body_len(self) -> int:
        return self.length - ORIGINAL_HEADER_LEN - len(self.flatbuffer)

    @property
    def body_offset(self) -> int:
        """Where the body starts in the original file."""
        return ORIGINAL_HEADER_LEN + len(self.flatbuffer)

    def pack(self) -> bytes:
        fb = self.flatbuffer
        head = _HEAD.pack(self.sha256, self.length, self.header, len(fb), len(self.extents), 0)
        pad = bytes(-len(fb) % 8)
        return head + fb + pad + b"".join(
            _EXTENT.pack(e.orig_off, e.len, e.new_off, e.source, 0) for e in self.extents)


def parse_restore_record(raw: Buffer) -> RestoreRecord:
    """The record's fields, with its own lengths checked (Corrupt); the extents are checked
    against the sealed file by `check_extents`."""
    view = byte_view(raw)
    if len(view) < _HEAD.size:
        raise Corrupt("the restore record is shorter than its head")
    sha, length, header, fb_len, m, zero = _HEAD.unpack_from(view)
    fb_end = _HEAD.size + fb_len
    ext_at = fb_end + (-fb_len % 8)
    if zero or ext_at + _EXTENT.size * m != len(view) or any(view[fb_end:ext_at]):
        raise Corrupt("the restore record's lengths do not add up")
    if length < ORIGINAL_HEADER_LEN + fb_len:
        raise Corrupt("the restore record's original is shorter than its header and FlatBuffer")
    extents = []
    for i in range(m):
        orig_off, n, new_off, source, pad = _EXTENT.unpack_from(view, ext_at + i * _EXTENT.size)
        if pad or source not in (CLEAR, ENVELOPE):
            raise Corrupt(f"restore extent {i} is malformed")
        extents.append(Extent(orig_off, n, new_off, source))
    return RestoreRecord(sha, length, bytes(header), bytes(view[_HEAD.size:fb_end]),
                         tuple(extents))


def check_extents(record: RestoreRecord, clear_spans: Sequence[tuple[int, int]],
                  envelopes: dict[int, int]) -> None:
    """FORMAT.md §8.4: the extents tile the body in order, every clear extent lies inside one
    clear span of the sealed binary region, and every weight envelope (`envelopes`: its
    offset → plaintext length) is the source of exactly one envelope extent of its length."""
    pos = 0
    starts = [s for s, _ in clear_spans]
    used: set[int] = set()
    for i, e in enumerate(record.extents):
        if e.orig_off != pos or e.len == 0:
            raise Corrupt(f"restore extent {i} does not continue the body at {pos}")
        pos += e.len
        if e.source == CLEAR:
            j = bisect.bisect_right(starts, e.new_off) - 1
            if j < 0 or e.new_off + e.len > clear_spans[j][0] + clear_spans[j][1]:
                raise Corrupt(f"restore extent {i} takes bytes outside the clear regions")
        elif envelopes.get(e.new_off) != e.len or e.new_off in used:
            raise Corrupt(f"restore extent {i} does not name a weight envelope of its size")
        else:
            used.add(e.new_off)
    if pos != record.body_len:
        raise Corrupt("the restore extents do not cover the original body")
    if used != set(envelopes):
        raise Corrupt("a weight envelope is missing from the restore extents")


class ClearPlacer:
    """Maps clear bytes of the sealed binary region (by offset) to their places in the body;
    bytes no extent takes (alignment padding) are dropped."""

    def __init__(self, record: RestoreRecord) -> None:
        self._clear = sorted((e for e in record.extents if e.source == CLEAR),
                             key=lambda e: e.new_off)
        self._starts = [e.new_off for e in self._clear]

    def place(self, new_off: int, n: int) -> list[tuple[int, int, int]]:
        """(body offset, offset in the chunk, length) for the chunk of n bytes at new_off."""
        out = []
        i = max(0, bisect.bisect_right(self._starts, new_off) - 1)
        end = new_off + n
        while i < len(self._clear) and self._clear[i].new_off < end:
            e = self._clear[i]
            lo, hi = max(new_off, e.new_off), min(end, e.new_off + e.len)
            if lo < hi:
                out.append((e.orig_off + lo - e.new_off, lo - new_off, hi - lo))
            i += 1
        return out
