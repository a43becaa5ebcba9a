"""The manifest at the end of E₂'s plaintext and the digest of the clear spans (FORMAT.md §5).

    offset  size
         0     4  magic "BMCM"
         4     4  manifest version (1)
         8     8  flatbuffer_len = E₂ plaintext_len − 64
        16     8  clear_len: the sum of the clear spans' lengths
        24    32  clear_digest = SHA-256(for each span in order: u64 off || u64 len || bytes)
        56     8  zero

Offsets are relative to the start of the binary region. The span list is known from the
FlatBuffer before any byte is read, so `ClearDigest` can hash the spans as they stream by.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bmcrypt.crypto.envelope_header import Buffer, byte_view
from bmcrypt.errors import Corrupt, UnsupportedVersion

MANIFEST_LEN = 64
MANIFEST_MAGIC = b"BMCM"
MANIFEST_VERSION = 1

_MANIFEST = struct.Struct("<4sIQQ32s8s")
_SPAN = struct.Struct("<QQ")
assert _MANIFEST.size == MANIFEST_LEN

Span = tuple[int, int]  # (offset, length) in the binary region


@dataclass(frozen=True)
class Manifest:
    flatbuffer_len: int
    clear_len: int
    clear_digest: bytes

    def pack(self) -> bytes:
        """The 64 bytes that follow the FlatBuffer in E₂'s plaintext."""
        if len(self.clear_digest) != 32:
            raise ValueError("clear_digest is a 32-byte SHA-256")
        return _MANIFEST.pack(MANIFEST_MAGIC, MANIFEST_VERSION, self.flatbuffer_len,
                              self.clear_len, self.clear_digest, bytes(8))


def parse_manifest(plaintext: Buffer) -> Manifest:
    """The manifest at the end of E₂'s plaintext; the FlatBuffer is `plaintext[:flatbuffer_len]`."""
    view = byte_view(plaintext)
    if len(view) < MANIFEST_LEN:
        raise Corrupt("the FlatBuffer envelope is too short to hold a manifest")
    magic, version, flatbuffer_len, clear_len, digest, zero = _MANIFEST.unpack(
        view[len(view) - MANIFEST_LEN:])
    if magic != MANIFEST_MAGIC:
        raise Corrupt("the FlatBuffer envelope has no manifest (bad magic)")
    if version != MANIFEST_VERSION:
        raise UnsupportedVersion(f"manifest version {version} is not supported")
    if flatbuffer_len != len(view) - MANIFEST_LEN or any(zero):
        raise Corrupt("the manifest is inconsistent with its envelope")
    return Manifest(flatbuffer_len, clear_len, digest)


def clear_spans(binary_len: int, encrypted: Iterable[Span]) -> list[Span]:
    """The clear spans of a binary region: all of it but the (offset, size) ranges of the
    kind-3 envelopes, as maximal runs sorted by offset.

    A range listed twice (two coeffs sharing an envelope) counts once. A range outside the
    region, empty, or overlapping another is Corrupt.
    """
    spans: list[Span] = []
    pos = 0
    for start, size in sorted(set(encrypted)):
        if size <= 0 or start < 0 or start + size > binary_len:
            raise Corrupt(f"an encrypted range ({start}, {size} bytes) lies outside the "
                          f"binary region of {binary_len} bytes")
        if start < pos:
            raise Corrupt(f"encrypted ranges overlap at offset {start} of the binary region")
        if start > pos:
            spans.append((pos, start - pos))
        pos = start + size
    if pos < binary_len:
        spans.append((pos, binary_len - pos))
    return spans


class ClearDigest:
    """SHA-256 over the clear spans, fed in order as (offset, chunk) pairs.

    Chunks must follow each other without gaps inside a span and may not cross a span's end;
    the next span starts with a chunk at its offset. Misuse is a ValueError (a caller bug).
    """

    def __init__(self, spans: Sequence[Span]) -> None:
        end = -1
        for offset, length in spans:
            if length <= 0 or offset <= end:
                raise ValueError("spans must be non-empty, sorted, and neither touch nor overlap")
            end = offset + length
        self._spans = list(spans)
        self._hash = hashlib.sha256()
        self._index = 0  # the span being hashed
        self._done = 0  # its bytes hashed so far

    def update(self, offset: int, chunk: Buffer) -> None:
        data = byte_view(chunk)
        if not data:
            return
        if self._index >= len(self._spans):
            raise ValueError(f"no clear span at offset {offset}")
        start, length = self._spans[self._index]
        if offset != start + self._done:
            raise ValueError(f"expected a chunk at offset {start + self._done}, not {offset}")
        if self._done + len(data) > length:
            raise ValueError(f"the chunk at offset {offset} runs past its clear span")
        if self._done == 0:
            self._hash.update(_SPAN.pack(start, length))
        self._hash.update(data)
        self._done += len(data)
        if self._done == length:
            self._index, self._done = self._index + 1, 0

    def finish(self) -> tuple[int, bytes]:
        """(clear_len, clear_digest) for the manifest."""
        if self._index != len(self._spans):
            raise ValueError(f"clear span {self._index} of {len(self._spans)} is incomplete")
        return sum(length for _, length in self._spans), self._hash.digest()


def clear_digest(spans: Sequence[Span], chunks: Iterable[tuple[int, Buffer]]) -> tuple[int, bytes]:
    """(clear_len, clear_digest) of the spans, given their bytes as (offset, chunk) pairs."""
    digest = ClearDigest(spans)
    for offset, chunk in chunks:
        digest.update(offset, chunk)
    return digest.finish()
