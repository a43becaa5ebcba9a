"""The byte layout of an envelope (FORMAT.md §3, §8.1) and the limits a reader enforces (§3.1).

No cryptography here: reading a header needs no key, so `inspect` can use this module alone.
Both versions are read; the version byte of each envelope says which layout follows.

Version 1:

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

Version 2 (the same first 48 bytes, version 2, then):

        48    16  dk_check (a commitment to DK)
        64     4  key_area_len (kind 1: 16 + 128 × slots; kinds 2, 3: 0)
        68     4  policy (bit 0: a licence is required; kind 1 only)
        72    32  licence_key (Ed25519, when policy bit 0 is set)   ┘ bytes 0..104: public header
       104     …  key area (kind 1 only, keyarea.py), then the segments
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from bmcrypt.errors import Corrupt, Truncated, UnsupportedVersion

MAGIC = b"BMCE"
V1 = 1
V2 = 2
VERSION = V2  # what writers write (the plugin's context-free kind 0 stays version 1)
VERSIONS = (V1, V2)
ALGORITHM = 1
#: Bytes 0..6 (magic, version, algorithm) are the same in every v1 envelope; the key block's
#: wrap binds to them (FORMAT.md §4.4) but not to the per-envelope kind and seg_log2.
FORMAT_PREFIX = MAGIC + bytes([V1, ALGORITHM])

PUBLIC_HEADER_LEN = 48  # version 1
KEY_BLOCK_OFFSET = 48
KEY_BLOCK_LEN = 104
HEADER_LEN = KEY_BLOCK_OFFSET + KEY_BLOCK_LEN  # 152: where a v1 envelope's segments start

V2_PUBLIC_LEN = 104  # the v2 public header; the key area (kind 1) follows it
DK_CHECK_LEN = 16
LICENCE_KEY_LEN = 32
POLICY_LICENCE = 1  # policy bit 0: the file opens only with a licence (FORMAT.md §8.5)
KEY_AREA_HEAD_LEN = 16
STANZA_LEN = 128
MAX_SLOTS = 255
#: The longest header of any envelope: a v2 kind-1 envelope with a full 255-slot key area.
MAX_HEADER_LEN = V2_PUBLIC_LEN + KEY_AREA_HEAD_LEN + STANZA_LEN * MAX_SLOTS
ID_LEN = 16  # file_id and region_salt
TAG_LEN = 16

MIN_SEG_LOG2 = 12
MAX_SEG_LOG2 = 30
DEFAULT_SEG_LOG2 = 20
MAX_PLAINTEXT_LEN = 1 << 40

_PUBLIC = struct.Struct("<4sBBBBQ16s16s")
_V2_TAIL = struct.Struct("<16sII32s")  # dk_check, key_area_len, policy, licence_key
assert _PUBLIC.size == PUBLIC_HEADER_LEN and PUBLIC_HEADER_LEN + _V2_TAIL.size == V2_PUBLIC_LEN

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


def envelope_length(plaintext_len: int, seg_log2: int = DEFAULT_SEG_LOG2, *,
                    header_len: int = HEADER_LEN) -> int:
    """The exact length of the envelope of a `plaintext_len`-byte plaintext whose header
    (public header and key material) is `header_len` bytes (default: version 1's 152)."""
    _check_arguments(plaintext_len, seg_log2)
    return header_len + plaintext_len + TAG_LEN * segment_count(plaintext_len, seg_log2)


def key_area_len(slots: int) -> int:
    """The length of a v2 key area with room for `slots` stanzas (FORMAT.md §8.2)."""
    if not 1 <= slots <= MAX_SLOTS:
        raise ValueError(f"a key area has 1..{MAX_SLOTS} slots, not {slots}")
    return KEY_AREA_HEAD_LEN + STANZA_LEN * slots


def pack_public_header(kind: int, seg_log2: int, plaintext_len: int, file_id: bytes,
                       region_salt: bytes) -> bytes:
    """The 48 bytes a writer puts at offset 0 (the associated data of every segment)."""
    _check_arguments(plaintext_len, seg_log2)
    kind = Kind(kind)  # ValueError for anything but 0..3
    if len(file_id) != ID_LEN or len(region_salt) != ID_LEN:
        raise ValueError("file_id and region_salt are 16 bytes each")
    return _PUBLIC.pack(MAGIC, V1, ALGORITHM, kind, seg_log2, plaintext_len,
                        bytes(file_id), bytes(region_salt))


def pack_public_header_v2(kind: int, seg_log2: int, plaintext_len: int, file_id: bytes,
                          region_salt: bytes, dk_check: bytes, *, area_len: int = 0,
                          policy: int = 0, licence_key: bytes = bytes(LICENCE_KEY_LEN)) -> bytes:
    """The 104-byte public header of a version-2 envelope (FORMAT.md §8.1)."""
    _check_arguments(plaintext_len, seg_log2)
    kind = Kind(kind)
    if kind == Kind.GENERIC:
        raise ValueError("version 2 has no kind 0 (the plugin writes version 1)")
    if len(file_id) != ID_LEN or len(region_salt) != ID_LEN or len(dk_check) != DK_CHECK_LEN:
        raise ValueError("file_id, region_salt and dk_check are 16 bytes each")
    if len(licence_key) != LICENCE_KEY_LEN or bool(policy & POLICY_LICENCE) != any(licence_key):
        raise ValueError("a licence key goes with policy bit 0, and only with it")
    if kind != Kind.HEADER_TAIL and (area_len or policy):
        raise ValueError("only the header envelope (kind 1) has a key area and a policy")
    head = _PUBLIC.pack(MAGIC, V2, ALGORITHM, kind, seg_log2, plaintext_len, bytes(file_id),
                        bytes(region_salt))
    return head + _V2_TAIL.pack(bytes(dk_check), area_len, policy, bytes(licence_key))


@dataclass(frozen=True)
class Header:
    """The header of an envelope (v1: 152 bytes; v2: 104 + key_area_len), checked against
    every limit of FORMAT.md §3.1 and §8.1."""

    kind: Kind
    seg_log2: int
    plaintext_len: int
    file_id: bytes
    region_salt: bytes
    public: bytes = field(repr=False)  # the public header as read: the segments' AAD
    key_block: bytes = field(repr=False)  # v1: bytes 48..152; v2: empty
    version: int = V1
    dk_check: bytes = b""  # v2
    policy: int = 0  # v2, kind 1
    licence_key: bytes = bytes(LICENCE_KEY_LEN)  # v2, kind 1
    key_area: bytes = field(default=b"", repr=False)  # v2, kind 1: the raw key area

    @property
    def header_len(self) -> int:
        """Where the segments start."""
        return HEADER_LEN if self.version == V1 else V2_PUBLIC_LEN + len(self.key_area)

    @property
    def licence_required(self) -> bool:
        return bool(self.policy & POLICY_LICENCE)

    @property
    def segment_size(self) -> int:
        return 1 << self.seg_log2

    @property
    def segment_count(self) -> int:
        return segment_count(self.plaintext_len, self.seg_log2)

    @property
    def envelope_len(self) -> int:
        """The only length this envelope may have."""
        return self.header_len + self.plaintext_len + TAG_LEN * self.segment_count

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
    need = header_length_needed(view[:V2_PUBLIC_LEN])  # checks every field present
    if len(view) < need:
        raise Truncated(f"envelope ends inside its header ({len(view)} of {need} bytes)")
    head = bytes(view[:need])
    _, version, _, kind, seg_log2, plaintext_len, file_id, region_salt = _PUBLIC.unpack_from(head)
    if version == V1:
        header = Header(kind=Kind(kind), seg_log2=seg_log2, plaintext_len=plaintext_len,
                        file_id=file_id, region_salt=region_salt,
                        public=head[:PUBLIC_HEADER_LEN], key_block=head[KEY_BLOCK_OFFSET:])
    else:
        dk_check, _, policy, licence_key = _V2_TAIL.unpack_from(head, PUBLIC_HEADER_LEN)
        header = Header(kind=Kind(kind), seg_log2=seg_log2, plaintext_len=plaintext_len,
                        file_id=file_id, region_salt=region_salt, public=head[:V2_PUBLIC_LEN],
                        key_block=b"", version=V2, dk_check=dk_check, policy=policy,
                        licence_key=licence_key, key_area=head[V2_PUBLIC_LEN:])
    if whole:
        header.check_length(len(view))
    return header


def header_length_needed(head: Buffer) -> int:
    """The length of the header that starts with `head` (its first bytes, any number), after
    checking every field `head` holds: 152 for version 1; for version 2, 104 until the public
    header is complete, then 104 + key_area_len. Streaming readers take bytes until they have
    this many."""
    head = bytes(byte_view(head)[:V2_PUBLIC_LEN])
    _check_fields(head)
    if len(head) < 5:
        return V2_PUBLIC_LEN  # no header is shorter: never read past a short one
    if head[4] == V1:
        return HEADER_LEN
    if len(head) < V2_PUBLIC_LEN:
        return V2_PUBLIC_LEN
    return V2_PUBLIC_LEN + int.from_bytes(head[64:68], "little")


def _check_fields(head: bytes) -> None:
    """§3.1 in order: magic, version, algorithm, kind, seg_log2, plaintext_len; then the v2
    fields of §8.1."""
    if head[:4] != MAGIC[:len(head)]:
        raise Corrupt("not a bmcrypt envelope (bad magic)")
    if len(head) > 4 and head[4] not in VERSIONS:
        raise UnsupportedVersion(f"envelope format version {head[4]} is not supported "
                                 f"(this bmcrypt reads versions 1 and 2)")
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
    if head[4:5] == bytes([V2]):
        _check_v2_fields(head)


def _check_v2_fields(head: bytes) -> None:
    if len(head) > 6 and head[6] == Kind.GENERIC:
        raise Corrupt("a version-2 envelope of kind 0 (only version 1 has kind 0)")
    if len(head) < V2_PUBLIC_LEN:
        return
    _, area_len, policy, licence_key = _V2_TAIL.unpack_from(head, PUBLIC_HEADER_LEN)
    if head[6] != Kind.HEADER_TAIL:
        if area_len or policy or any(licence_key):
            raise Corrupt("a FlatBuffer or weight envelope with a key area, policy or licence "
                          "key (only the header envelope has them)")
        return
    slots, extra = divmod(area_len - KEY_AREA_HEAD_LEN, STANZA_LEN)
    if area_len < KEY_AREA_HEAD_LEN or extra or not 1 <= slots <= MAX_SLOTS:
        raise Corrupt(f"key area length {area_len} is not 16 + 128 × (1..{MAX_SLOTS} slots)")
    if policy & ~POLICY_LICENCE:
        raise UnsupportedVersion(f"envelope policy {policy:#x} has bits this bmcrypt "
                                 "does not know")
    if bool(policy & POLICY_LICENCE) != any(licence_key):
        raise Corrupt("the licence policy and the licence key disagree")


def _check_arguments(plaintext_len: int, seg_log2: int) -> None:
    # A writer's own arguments: a bad value is a bug in the caller, not a bad file.
    if not MIN_SEG_LOG2 <= seg_log2 <= MAX_SEG_LOG2:
        raise ValueError(f"seg_log2 must be {MIN_SEG_LOG2}..{MAX_SEG_LOG2}, not {seg_log2}")
    if not 0 <= plaintext_len <= MAX_PLAINTEXT_LEN:
        raise ValueError(f"plaintext_len must be 0..2^40, not {plaintext_len}")
