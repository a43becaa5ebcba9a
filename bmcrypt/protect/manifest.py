"""The manifest at the end of E₂'s plaintext and the digest of the clear spans (FORMAT.md §5,
§8.4).

    offset  size
         0     4  magic "BMCM"
         4     4  manifest version (1, or 2 with a restore record)
         8     8  flatbuffer_len = E₂ plaintext_len − 64 − restore_len
        16     8  clear_len: the sum of the clear spans' lengths
        24    32  clear_digest = SHA-256(for each span in order: u64 off || u64 len || bytes)
        56     8  version 1: zero; version 2: restore_len (the restore record, restore.py,
                  lies between the FlatBuffer and the manifest)

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
MANIFEST_VERSION = 2  # what writers write
MANIFEST_VERSIONS = (1, 2)

_MANIFEST = struct.Struct("<4sIQQ32sQ")
_SPAN = struct.Struct("<QQ")
assert _MANIFEST.size == MANIFEST_LEN

Span = tuple[int, int]  # (offset, length) in the binary region


@dataclass(frozen=True)
class Manifest:
    flatbuffer_len: int
    clear_len: int
    clear_digest: bytes
    restore_len: int = 0  # version 2: the restore record's length (0: none)
    version: int = 1

    def pack(self) -> bytes:
        """The 64 bytes that end E₂'s plaintext (after the FlatBuffer and restore record)."""
        if len(self.clear_digest) != 32:
            raise ValueError("clear_digest is a 32-byte SHA-256")
        if self.version not in MANIFEST_VERSIONS or (self.version == 1 and self.restore_len):
            raise ValueError("a restore record needs manifest version 2")
        return _MANIFEST.pack(MANIFEST_MAGIC, self.version, self.flatbuffer_len,
                              self.clear_len, self.clear_digest, self.restore_len)


def parse_manifest(plaintext: Buffer) -> Manifest:
    """The manifest at the end of E₂'s plaintext; the FlatBuffer is `plaintext[:flatbuffer_len]`,
    the restore record the `restore_len` bytes after it."""
    view = byte_view(plaintext)
    if len(view) < MANIFEST_LEN:
        raise Corrupt("the FlatBuffer envelope is too short to hold a manifest")
    magic, version, flatbuffer_len, clear_len, digest, restore_len = _MANIFEST.unpack(
        view[len(view) - MANIFEST_LEN:])
    if magic != MANIFEST_MAGIC:
        raise Corrupt("the FlatBuffer envelope has no manifest (bad magic)")
    if version not in MANIFEST_VERSIONS:
        raise UnsupportedVersion(f"manifest version {version} is not supported")
    if (version == 1 and restore_len) or restore_len > len(view) - MANIFEST_LEN or \
            flatbuffer_len != len(view) - MANIFEST_LEN - restore_len:
        raise Corrupt("the manifest is inconsistent with its envelope")
    return Manifest(flatbuffer_len, clear_len, digest, restore_len, version)


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
