"""The vendor's licence-signing key (FORMAT.md §8.5): an Ed25519 key pair.

The secret half lives in a **signing key file**, 72 bytes, mode 0600, never overwritten::

    "BMCRYPT-ED25519-" (16 bytes) || seed (32 bytes) || SHA-256 of the preceding 48 bytes [0..24]

(the layout of the X25519 identity file of §8.3, with its own magic). The public half is what a
file names in its header (`licence_key`) and what `encrypt --require-license` takes: 32 bytes,
written for people as Bech32 (BIP 173, lower case) with the human-readable part ``bmcryptlic``,
so that a mistyped key is refused rather than silently naming nobody.

No message here contains the seed or the file's bytes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from typing import NoReturn

from bmcrypt.errors import KeyFileError
from bmcrypt.keys import write_secret_file

SIGNING_KEY_MAGIC = b"BMCRYPT-ED25519-"
SIGNING_KEY_FILE_LEN = 72
PUBLIC_KEY_LEN = 32
PUBLIC_HRP = "bmcryptlic"

PathArg = str | os.PathLike[str]


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 signing key; repr and str show the public key only."""

    seed: bytes = field(repr=False)

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key (RFC 8032)."""
        return self._key().public_key().export_key(format="raw")

    @property
    def public_string(self) -> str:
        """The public key as ``bmcryptlic1…`` (Bech32)."""
        return encode_public_key(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature (RFC 8032, pure) of `message`."""
        from Crypto.Signature import eddsa

        return eddsa.new(self._key(), "rfc8032").sign(message)

    def _key(self):  # noqa: ANN202 - pycryptodome's EccKey, imported lazily
        from Crypto.PublicKey import ECC

        return ECC.construct(curve="Ed25519", seed=self.seed)

    def __str__(self) -> str:
        return f"signing key {self.public_string}"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SigningKey cannot be pickled (it would carry the seed)")


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    from Crypto.Signature import eddsa

    try:
        verifier = eddsa.new(eddsa.import_public_key(public_key), "rfc8032")
        verifier.verify(message, signature)
    except ValueError:  # a bad signature, or bytes that are no point on the curve
        return False
    return True


# ---------------------------------------------------------------- the key file


def generate_signing_key_file(path: PathArg) -> SigningKey:
    """Create a signing key file with a fresh random key; return the key.

    Created exclusively with mode 0600 (an existing file is never replaced), fsynced with its
    directory; on failure nothing is left behind.
    """
    key = SigningKey(secrets.token_bytes(32))
    body = SIGNING_KEY_MAGIC + key.seed
    write_secret_file(path, body + hashlib.sha256(body).digest()[:24])
    return key


def load_signing_key(path: PathArg) -> SigningKey:
    """Read a signing key file, refusing one that other users could read or write."""
    where = os.fspath(path)
    try:
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(f"signing key file {where} does not exist",
                           hint="create one with `bmcrypt license keygen -o vendor.key`") from None
    except OSError as exc:
        raise KeyFileError(f"cannot open signing key file {where}: {_reason(exc)}",
                           hint="check the path and its permissions") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{where} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(f"signing key file {where} is accessible by other users "
                               f"(mode {stat.S_IMODE(info.st_mode):04o})",
                               hint=f"chmod 600 {where}")
        data = os.read(fd, SIGNING_KEY_FILE_LEN + 1)
    finally:
        os.close(fd)
    return _parse_signing_key(data, where)


def is_signing_key_file(data: bytes) -> bool:
    """Whether `data` looks like a signing key file (its length and magic; not its checksum)."""
    return len(data) == SIGNING_KEY_FILE_LEN and data.startswith(SIGNING_KEY_MAGIC)


def _parse_signing_key(data: bytes, where: str) -> SigningKey:
    if not is_signing_key_file(data):
        raise KeyFileError(f"{where} is not a bmcrypt signing key file",
                           hint="give the file `bmcrypt license keygen` wrote")
    body = data[:48]
    if hashlib.sha256(body).digest()[:24] != data[48:]:
        raise KeyFileError(f"signing key file {where} is damaged (its checksum differs)",
                           hint="restore it from its backup")
    return SigningKey(bytes(body[16:48]))


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


# ---------------------------------------------------------------- the public form (Bech32)

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def encode_public_key(public_key: bytes) -> str:
    """``bmcryptlic1…``: the 32-byte key in Bech32 (BIP 173)."""
    if len(public_key) != PUBLIC_KEY_LEN:
        raise ValueError("an Ed25519 public key is 32 bytes")
    data = _regroup(public_key, 8, 5)
    checksum = _checksum(PUBLIC_HRP, data)
    return PUBLIC_HRP + "1" + "".join(_CHARSET[d] for d in data + checksum)


def decode_public_key(text: str) -> bytes:
    """The 32 bytes of a ``bmcryptlic1…`` string; ValueError (saying why) for anything else."""
    if text != text.lower() and text != text.upper():
        raise ValueError("mixed case")
    text = text.lower()
    hrp, sep, rest = text.rpartition("1")
    if not sep or hrp != PUBLIC_HRP:
        raise ValueError(f"it does not start with {PUBLIC_HRP}1")
    if len(rest) < 6 or any(c not in _CHARSET for c in rest):
        raise ValueError("it has characters Bech32 does not use")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod(_expand(hrp) + values) != 1:
        raise ValueError("its checksum is wrong (a typo?)")
    key = _regroup_back(values[:-6])
    if key is None or len(key) != PUBLIC_KEY_LEN:
        raise ValueError("it does not hold 32 bytes")
    return key


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate(_GENERATOR):
            if top >> i & 1:
                chk ^= g
    return chk


def _expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _checksum(hrp: str, data: list[int]) -> list[int]:
    mod = _polymod(_expand(hrp) + data + [0] * 6) ^ 1
    return [mod >> 5 * (5 - i) & 31 for i in range(6)]


def _regroup(data: bytes, frm: int, to: int) -> list[int]:
    acc = bits = 0
    out = []
    for b in data:
        acc = acc << frm | b
        bits += frm
        while bits >= to:
            bits -= to
            out.append(acc >> bits & (1 << to) - 1)
    if bits:
        out.append(acc << (to - bits) & (1 << to) - 1)
    return out


def _regroup_back(values: list[int]) -> bytes | None:
    acc = bits = 0
    out = bytearray()
    for v in values:
        acc = acc << 5 | v
        bits += 5
        if bits >= 8:
            bits -= 8
            out.append(acc >> bits & 0xFF)
    if bits >= 5 or acc & (1 << bits) - 1:  # padding must be short and zero (BIP 173)
        return None
    return bytes(out)
