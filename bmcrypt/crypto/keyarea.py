"""The version-2 key area (FORMAT.md §8.2): DK wrapped once per recipient, in E₁ only.

    key area                               stanza (128 bytes)
    offset  size                           offset  size
         0     4  magic "BMCK"                  0     1  type: 1 key file, 2 passphrase, 3 X25519
         4     2  slots (capacity, 1..255)      1     3  scrypt log2(N), r, p (type 2)
         6     2  count (in use, 1..slots)      4    32  type 2: salt + 16 zero; type 3: E
         8     8  zero                         36     8  key id
        16  128×slots  stanzas; unused = 0     44    16  key check   ┘ 0..60: AAD of the wrap
                                               60    12  wrap nonce      (with file_id first)
                                               72    32  wrapped DK
                                              104    16  wrap tag
                                              120     8  zero

The area is not authenticated as a whole: a stanza can be removed (its recipient then no longer
opens the file) or replaced by one wrapping another key, which the header's dk_check refuses.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from bmcrypt.crypto.envelope_header import (
    ID_LEN,
    KEY_AREA_HEAD_LEN,
    MAX_SLOTS,
    STANZA_LEN,
    TAG_LEN,
    key_area_len,
)
from bmcrypt.crypto.kdf import (
    SALT_LEN,
    KeySource,
    Passphrase,
    Rng,
    ScryptParams,
    UserKey,
    default_rng,
    kek_of,
    key_check_of,
)
from bmcrypt.crypto.x25519 import Identity, Recipient
from bmcrypt.errors import Corrupt, Tampered, UnsupportedVersion

AREA_MAGIC = b"BMCK"
DEFAULT_SLOTS = 16
WRAP_NONCE_LEN = 12
DK_LEN = 32
_AREA_HEAD = struct.Struct("<4sHH8s")
_STANZA_PREFIX = struct.Struct("<BBBB32s8s16s")  # bytes 0..60
assert _AREA_HEAD.size == KEY_AREA_HEAD_LEN and _STANZA_PREFIX.size == 60
assert 60 + WRAP_NONCE_LEN + DK_LEN + TAG_LEN + 8 == STANZA_LEN

#: Who a new stanza is for: a key file's key, a passphrase, an X25519 recipient (or the
#: identity whose recipient it is).
RecipientLike = UserKey | Passphrase | Recipient | Identity


class StanzaType(IntEnum):
    KEY_FILE = 1
    PASSPHRASE = 2
    X25519 = 3


@dataclass(frozen=True)
class Stanza:
    """One parsed stanza; structurally valid, not authenticated."""

    type: StanzaType
    scrypt: ScryptParams | None  # type 2
    ephemeral: bytes | None  # type 3: E
    key_id: bytes
    key_check: bytes
    raw: bytes = field(repr=False)

    @property
    def wrap_nonce(self) -> bytes:
        return self.raw[60:72]

    @property
    def wrapped(self) -> bytes:
        return self.raw[72:120]  # wrapped DK || tag

    @property
    def describe(self) -> str:
        return {StanzaType.KEY_FILE: "key file", StanzaType.PASSPHRASE: "passphrase",
                StanzaType.X25519: "x25519"}[self.type]


@dataclass(frozen=True)
class KeyArea:
    """A parsed key area: its capacity and the stanzas in use, in order."""

    slots: int
    stanzas: tuple[Stanza, ...]

    @property
    def key_ids(self) -> list[str]:
        return [s.key_id.hex() for s in self.stanzas]

    def pack(self) -> bytes:
        """The area's bytes: the head, the stanzas in use, zero for the free slots."""
        if not 1 <= len(self.stanzas) <= self.slots <= MAX_SLOTS:
            raise ValueError("a key area holds 1..slots stanzas")
        head = _AREA_HEAD.pack(AREA_MAGIC, self.slots, len(self.stanzas), bytes(8))
        body = b"".join(s.raw for s in self.stanzas)
        return head + body + bytes(key_area_len(self.slots) - len(head) - len(body))


def parse_key_area(raw: bytes) -> KeyArea:
    """Check the whole area before any key is tried (§8.2): corrupt or unsupported, else the
    stanzas."""
    if len(raw) < KEY_AREA_HEAD_LEN:
        raise Corrupt("the key area is shorter than its head")
    magic, slots, count, zero = _AREA_HEAD.unpack_from(raw)
    if magic != AREA_MAGIC:
        raise Corrupt("the key area has a bad magic")
    if not 1 <= slots <= MAX_SLOTS or len(raw) != key_area_len(slots):
        raise Corrupt(f"the key area's {slots} slots do not fill its {len(raw)} bytes")
    if any(zero):
        raise Corrupt("the key area has non-zero reserved bytes")
    if not 1 <= count <= slots:
        raise Corrupt(f"the key area says {count} of {slots} slots are in use")
    stanzas: list[Stanza] = []
    for i in range(slots):
        at = KEY_AREA_HEAD_LEN + i * STANZA_LEN
        chunk = raw[at:at + STANZA_LEN]
        if i >= count:
            if any(chunk):
                raise Corrupt(f"unused key slot {i} is not all zero")
            continue
        stanza = _parse_stanza(bytes(chunk), i)
        if any(s.key_id == stanza.key_id for s in stanzas):
            raise Corrupt(f"two recipients with key id {stanza.key_id.hex()} in the key area")
        stanzas.append(stanza)
    return KeyArea(slots, tuple(stanzas))


def _parse_stanza(raw: bytes, i: int) -> Stanza:
    kind, log2n, r, p, material, key_id, key_check = _STANZA_PREFIX.unpack_from(raw)
    if kind not in (1, 2, 3):
        raise UnsupportedVersion(f"key slot {i} has recipient type {kind}, which this bmcrypt "
                                 "does not know")
    if any(raw[120:]):
        raise Corrupt(f"key slot {i} has non-zero reserved bytes")
    params = None
    ephemeral = None
    if kind == StanzaType.PASSPHRASE:
        params = ScryptParams(log2n, r, p, material[:SALT_LEN])
        if any(material[SALT_LEN:]):
            raise Corrupt(f"key slot {i} has non-zero reserved bytes")
        if problem := params.problem():
            raise Corrupt(f"key slot {i}: {problem}")
    elif any(raw[1:4]) or (kind == StanzaType.KEY_FILE and any(material)):
        raise Corrupt(f"key slot {i} has non-zero reserved bytes")
    if kind == StanzaType.X25519:
        ephemeral = material
    return Stanza(StanzaType(kind), params, ephemeral, key_id, key_check, raw)


# ---------------------------------------------------------------- writing


def wrap_stanza(recipient: RecipientLike, file_id: bytes, dk: bytes,
                rng: Rng | None = None) -> Stanza:
    """A new stanza wrapping `dk` for `recipient` (fresh nonce, salt, ephemeral key)."""
    rng = rng or default_rng
    if isinstance(recipient, Identity):
        recipient = recipient.recipient
    if isinstance(recipient, Recipient):
        ephemeral, k = recipient.stanza_key(rng)
        prefix_fields = (StanzaType.X25519, 0, 0, 0, ephemeral, recipient.key_id)
    else:
        key = recipient.new_user_key(rng) if isinstance(recipient, Passphrase) else recipient
        if key.source != KeySource.RAW and isinstance(recipient, UserKey):
            # Reusing a derived key would reuse its salt in another stanza.
            raise ValueError("pass the Passphrase itself: a new stanza needs a fresh salt")
        k = key._k  # K stays in crypto/: it is hashed here and dropped
        params = key.scrypt
        if params is None:
            prefix_fields = (StanzaType.KEY_FILE, 0, 0, 0, bytes(32), key.key_id)
        else:
            prefix_fields = (StanzaType.PASSPHRASE, params.log2n, params.r, params.p,
                             params.salt + bytes(16), key.key_id)
    prefix = _STANZA_PREFIX.pack(*prefix_fields, key_check_of(k, file_id, 2))
    nonce = rng(WRAP_NONCE_LEN)
    from Crypto.Cipher import AES  # on first use (see kdf.py)

    cipher = AES.new(kek_of(k, file_id, 2), AES.MODE_GCM, nonce=nonce, mac_len=TAG_LEN)
    cipher.update(file_id + prefix)
    wrapped, tag = cipher.encrypt_and_digest(dk)
    return _parse_stanza(prefix + nonce + wrapped + tag + bytes(8), 0)


def new_key_area(recipients: list[RecipientLike], file_id: bytes, dk: bytes, *,
                 slots: int = DEFAULT_SLOTS, rng: Rng | None = None) -> KeyArea:
    """A key area of `slots` slots wrapping `dk` for every recipient, in order."""
    if not recipients:
        raise ValueError("a file needs at least one recipient")
    if len(recipients) > slots:
        raise ValueError(f"{len(recipients)} recipients do not fit in {slots} key slots")
    stanzas = tuple(wrap_stanza(r, file_id, dk, rng) for r in recipients)
    area = KeyArea(slots, stanzas)
    ids = [s.key_id for s in stanzas]
    if len(set(ids)) != len(ids):
        raise ValueError("the same recipient twice")
    return area


# ---------------------------------------------------------------- opening


def stanza_keys(stanza: Stanza, secrets: list[object], *, by_id: bool = True) -> list[bytes]:
    """K of every secret whose key id matches the stanza's (a passphrase: derived first);
    with `by_id=False`, of every secret of the stanza's type whose id does *not* match."""
    keys: list[bytes] = []
    for secret in secrets:
        if stanza.type == StanzaType.KEY_FILE and isinstance(secret, UserKey):
            if secret.source == KeySource.RAW and (secret.key_id == stanza.key_id) == by_id:
                keys.append(secret._k)
        elif stanza.type == StanzaType.PASSPHRASE and isinstance(secret, Passphrase):
            assert stanza.scrypt is not None
            derived = secret.derive(stanza.scrypt)
            if (derived.key_id == stanza.key_id) == by_id:
                keys.append(derived._k)
        elif stanza.type == StanzaType.X25519 and isinstance(secret, Identity):
            if (secret.key_id == stanza.key_id) == by_id:
                assert stanza.ephemeral is not None
                k = secret.stanza_key(stanza.ephemeral)
                if k is None:
                    if by_id:
                        raise Tampered("an X25519 key slot has an ephemeral key of small order")
                    continue
                keys.append(k)
    return keys


def changed_key_id(area: KeyArea, secrets: list[object], file_id: bytes) -> Stanza | None:
    """A stanza whose key id matches none of `secrets` but whose key check matches one of them:
    its key id was changed (tampered), not a wrong key (FORMAT.md §8.2, as §4.3 for v1)."""
    for stanza in area.stanzas:
        for k in stanza_keys(stanza, secrets, by_id=False):
            if hmac.compare_digest(key_check_of(k, file_id, 2), stanza.key_check):
                return stanza
    return None


def unwrap_stanza(stanza: Stanza, k: bytes, file_id: bytes) -> bytes:
    """DK from a stanza whose key id matched K's: Tampered if its key check or wrap fails."""
    if len(file_id) != ID_LEN:
        raise ValueError("file_id is 16 bytes")
    if not hmac.compare_digest(key_check_of(k, file_id, 2), stanza.key_check):
        raise Tampered(f"key slot {stanza.key_id.hex()} failed authentication (key check)")
    from Crypto.Cipher import AES  # on first use (see kdf.py)

    cipher = AES.new(kek_of(k, file_id, 2), AES.MODE_GCM, nonce=stanza.wrap_nonce,
                     mac_len=TAG_LEN)
    cipher.update(file_id + stanza.raw[:60])
    try:
        return cipher.decrypt_and_verify(stanza.wrapped[:DK_LEN], stanza.wrapped[DK_LEN:])
    except ValueError:
        raise Tampered(f"key slot {stanza.key_id.hex()} failed authentication") from None
