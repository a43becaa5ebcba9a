"""X25519 recipients and identities (FORMAT.md §8.2 type 3, §8.3), on pycryptodome.

- `Recipient`: a device's public key R, written as the Bech32 string `bmcrypt1…`. Anyone may
  hold it: encrypting for it needs no secret.
- `Identity`: the device's secret r. It opens the stanzas whose key id is the id of its R.

A stanza's key comes from an ephemeral key pair (e, E) the writer draws for that stanza:
S = X25519(e, R) = X25519(r, E), K = HKDF(S, salt = E || R, "bmcrypt v2 x25519").
"""

from __future__ import annotations

import hashlib
from typing import NoReturn

from bmcrypt.crypto import bech32
from bmcrypt.crypto.kdf import KEY_ID_LEN, Rng, default_rng, hkdf

HRP = "bmcrypt"
KEY_LEN = 32
_KEY_ID_PREFIX = b"bmcrypt key id v2 x25519"
_INFO = b"bmcrypt v2 x25519"


def _x25519(secret: bytes, public: bytes) -> bytes:
    """X25519(secret, public); ValueError for a public key of small order (S would be 0)."""
    from Crypto.Protocol import DH

    return DH.key_agreement(static_priv=DH.import_x25519_private_key(secret),
                            static_pub=DH.import_x25519_public_key(public),
                            kdf=lambda s: s)


def _public_of(secret: bytes) -> bytes:
    from Crypto.Protocol import DH

    return DH.import_x25519_private_key(secret).public_key().export_key(format="raw")


class Recipient:
    """An X25519 public key R: who a file can be encrypted for."""

    __slots__ = ("public",)

    def __init__(self, public: bytes) -> None:
        if len(public) != KEY_LEN:
            raise ValueError(f"an X25519 public key is {KEY_LEN} bytes")
        try:
            from Crypto.Protocol import DH

            DH.import_x25519_public_key(bytes(public))
        except ValueError:
            raise ValueError("not a usable X25519 public key (a point of small order)") from None
        self.public = bytes(public)

    @classmethod
    def parse(cls, text: str) -> Recipient:
        """The recipient of a `bmcrypt1…` string; ValueError (saying why) for anything else."""
        data = bech32.decode(text.strip(), HRP)
        if len(data) != KEY_LEN:
            raise ValueError(f"a recipient holds a {KEY_LEN}-byte key, this one {len(data)}")
        return cls(data)

    @property
    def key_id(self) -> bytes:
        """`SHA-256("bmcrypt key id v2 x25519" || R)[0..8]`: the same in every file."""
        return hashlib.sha256(_KEY_ID_PREFIX + self.public).digest()[:KEY_ID_LEN]

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def __str__(self) -> str:
        return bech32.encode(HRP, self.public)

    def __repr__(self) -> str:
        return f"Recipient({self})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Recipient) and other.public == self.public

    def __hash__(self) -> int:
        return hash(self.public)

    def stanza_key(self, rng: Rng | None = None) -> tuple[bytes, bytes]:
        """(E, K) for a new stanza: a fresh ephemeral key pair, agreed with R."""
        while True:
            e = (rng or default_rng)(KEY_LEN)
            ephemeral = _public_of(e)
            shared = _x25519(e, self.public)
            if any(shared):  # R was checked, so this always holds; never wrap under zero
                return ephemeral, _stanza_k(shared, ephemeral, self.public)


class Identity:
    """An X25519 secret key r (an identity file's content): opens type-3 stanzas for its R."""

    __slots__ = ("_r", "recipient")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != KEY_LEN:
            raise ValueError(f"an X25519 secret key is {KEY_LEN} bytes")
        self._r = bytes(secret)
        self.recipient = Recipient(_public_of(self._r))

    @classmethod
    def generate(cls, rng: Rng | None = None) -> Identity:
        return cls((rng or default_rng)(KEY_LEN))

    @property
    def key_id(self) -> bytes:
        return self.recipient.key_id

    @property
    def key_id_hex(self) -> str:
        return self.recipient.key_id_hex

    def stanza_key(self, ephemeral: bytes) -> bytes | None:
        """K of a stanza with ephemeral key E, or None when S would be all zero (tampered)."""
        try:
            shared = _x25519(self._r, ephemeral)
        except ValueError:  # E of small order: pycryptodome refuses it before S = 0
            return None
        if not any(shared):
            return None
        return _stanza_k(shared, ephemeral, self.recipient.public)

    def _secret_bytes(self) -> bytes:
        """r itself: for the identity file writer and the native registry only."""
        return self._r

    def __repr__(self) -> str:
        return f"Identity(key_id={self.key_id_hex}, recipient={self.recipient})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an Identity cannot be pickled (it would carry the secret key)")


def _stanza_k(shared: bytes, ephemeral: bytes, public: bytes) -> bytes:
    return hkdf(shared, ephemeral + public, _INFO, 32)
