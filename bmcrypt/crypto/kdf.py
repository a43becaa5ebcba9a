"""Key derivation (FORMAT.md §3.2, §4.1–§4.4): the user key K, its id and check, KEK and PK.

`UserKey` is K itself; `Passphrase` is a secret that yields a different K for every scrypt
salt, so one passphrase opens every file and each new file gets a fresh salt. Neither ever
shows its secret: repr and str name the key id only, and no message here contains key bytes.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import NoReturn

# pycryptodome is imported where it is used: it costs ~20 ms, and most commands never need it.

#: A source of random bytes: os.urandom by default; tests pass `random.Random(seed).randbytes`.
Rng = Callable[[int], bytes]

KEY_LEN = 32
KEY_ID_LEN = 8
KEY_CHECK_LEN = 16
SALT_LEN = 16

_KEY_ID_PREFIX = b"bmcrypt key id v1"
_INFO_KEY_CHECK = b"bmcrypt v1 key check"
_INFO_WRAP = b"bmcrypt v1 wrap"
_INFO_PAYLOAD = b"bmcrypt v1 payload"
# Version 2 (FORMAT.md §8): the same derivations under their own labels.
_INFO = {1: (_INFO_KEY_CHECK, _INFO_WRAP, _INFO_PAYLOAD),
         2: (b"bmcrypt v2 key check", b"bmcrypt v2 wrap", b"bmcrypt v2 payload")}
_INFO_DK_CHECK = b"bmcrypt v2 data key check"


class KeySource(IntEnum):
    """Key block byte 0: where K comes from."""

    RAW = 1  # a key file
    PASSPHRASE = 2  # scrypt of a passphrase


def default_rng(n: int) -> bytes:
    return os.urandom(n)


def wipe(buf: bytearray) -> None:
    """Zero `buf` in place, without allocating a second buffer of its size (models are GBs)."""
    if buf:
        ctypes.memset((ctypes.c_char * len(buf)).from_buffer(buf), 0, len(buf))


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 (RFC 5869)."""
    from Crypto.Hash import SHA256
    from Crypto.Protocol.KDF import HKDF

    return HKDF(ikm, length, salt, SHA256, context=info)


def payload_key(dk: bytes, region_salt: bytes, version: int = 1) -> bytes:
    """PK of one envelope (§3.2, §8.1)."""
    return hkdf(dk, region_salt, _INFO[version][2], 32)


def dk_check(dk: bytes, file_id: bytes) -> bytes:
    """The commitment to DK in every v2 public header (§8.1)."""
    return hkdf(dk, file_id, _INFO_DK_CHECK, KEY_CHECK_LEN)


def key_check_of(k: bytes, file_id: bytes, version: int) -> bytes:
    """The key commitment of a user (or stanza) key K (§4.3, §8.2)."""
    return hkdf(k, file_id, _INFO[version][0], KEY_CHECK_LEN)


def kek_of(k: bytes, file_id: bytes, version: int) -> bytes:
    """The key that wraps DK under K (§4.4, §8.2)."""
    return hkdf(k, file_id, _INFO[version][1], 32)


@dataclass(frozen=True)
class ScryptParams:
    """The scrypt fields of a key block (§4.1). Public, and bounded because a file sets them."""

    log2n: int
    r: int
    p: int
    salt: bytes

    def problem(self) -> str | None:
        """Why a reader must refuse these parameters, or None when they are within the bounds."""
        if not 10 <= self.log2n <= 20:
            return f"scrypt log2(N) = {self.log2n} is outside 10..20"
        if not 1 <= self.r <= 32:
            return f"scrypt r = {self.r} is outside 1..32"
        if not 1 <= self.p <= 16:
            return f"scrypt p = {self.p} is outside 1..16"
        if len(self.salt) != SALT_LEN:
            return "scrypt salt is not 16 bytes"
        return None


class UserKey:
    """The 32-byte user key K, with the scrypt parameters it was derived with (None: a key file).

    K stays inside: the key block code asks for its id, check and KEK, never for K.
    """

    __slots__ = ("_k", "_scrypt", "_key_id")

    def __init__(self, k: bytes, scrypt_params: ScryptParams | None = None) -> None:
        if len(k) != KEY_LEN:
            raise ValueError(f"a user key is {KEY_LEN} bytes")
        self._k = bytes(k)
        self._scrypt = scrypt_params
        self._key_id = hashlib.sha256(_KEY_ID_PREFIX + self._k).digest()[:KEY_ID_LEN]

    @property
    def source(self) -> KeySource:
        return KeySource.RAW if self._scrypt is None else KeySource.PASSPHRASE

    @property
    def scrypt(self) -> ScryptParams | None:
        return self._scrypt

    @property
    def key_id(self) -> bytes:
        """`SHA-256("bmcrypt key id v1" || K)[0..8]` (§4.2): safe to show."""
        return self._key_id

    @property
    def key_id_hex(self) -> str:
        return self._key_id.hex()

    def key_check(self, file_id: bytes, version: int = 1) -> bytes:
        """The key commitment of §4.3 (§8.2 for version 2)."""
        return key_check_of(self._k, file_id, version)

    def matches_check(self, file_id: bytes, key_check: bytes, version: int = 1) -> bool:
        return hmac.compare_digest(self.key_check(file_id, version), key_check)

    def kek(self, file_id: bytes, version: int = 1) -> bytes:
        """The key that wraps DK (§4.4; §8.2 for version 2)."""
        return kek_of(self._k, file_id, version)

    def __repr__(self) -> str:
        kind = "key file" if self._scrypt is None else "passphrase"
        return f"UserKey(key_id={self.key_id_hex}, source={kind})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a UserKey cannot be pickled (it would carry the key)")


class Passphrase:
    """A passphrase: K = scrypt(passphrase, salt, …) for each key block's salt (§4.1).

    `log2n`, `r`, `p` are what a writer uses for new files (FORMAT.md: 15, 8, 1); readers take
    the parameters from the key block. Derived keys are cached per (parameters, salt), so the
    envelopes of one file cost one scrypt.
    """

    __slots__ = ("_secret", "log2n", "r", "p", "_derived")

    def __init__(self, passphrase: str, *, log2n: int = 15, r: int = 8, p: int = 1) -> None:
        if not passphrase:
            raise ValueError("the passphrase is empty")
        try:
            self._secret = passphrase.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the passphrase is not valid Unicode") from None
        problem = ScryptParams(log2n, r, p, bytes(SALT_LEN)).problem()
        if problem:
            raise ValueError(problem)
        self.log2n, self.r, self.p = log2n, r, p
        self._derived: dict[ScryptParams, UserKey] = {}

    def derive(self, params: ScryptParams) -> UserKey:
        """K for a key block with these parameters (checked by the caller: they are bounded)."""
        key = self._derived.get(params)
        if key is None:
            from Crypto.Protocol.KDF import scrypt

            k = scrypt(self._secret, params.salt, KEY_LEN, N=1 << params.log2n, r=params.r,
                       p=params.p)
            key = self._derived[params] = UserKey(k, params)
        return key

    def new_user_key(self, rng: Rng | None = None) -> UserKey:
        """K for a new key block: a fresh salt with this passphrase's writer parameters."""
        salt = (rng or default_rng)(SALT_LEN)
        return self.derive(ScryptParams(self.log2n, self.r, self.p, salt))

    def __repr__(self) -> str:
        return f"Passphrase(<hidden>, log2n={self.log2n}, r={self.r}, p={self.p})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Passphrase cannot be pickled (it would carry the secret)")
