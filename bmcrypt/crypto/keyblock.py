"""The version-1 key block (FORMAT.md §4): the file's data key DK, wrapped under the user key K,
with the key id and key check that let a reader tell a wrong key from tampering. (Version 2
wraps DK in E₁'s key area instead: keyarea.py; filekeys.py chooses by the version byte.)

    offset  size
         0     1  key source (1 key file, 2 passphrase)
         1     3  scrypt log2(N), r, p (zero for a key file)
         4    16  scrypt salt (zero for a key file)
        20     8  key id
        28    16  key check                      ┘ bytes 0..44: associated data of the wrap
        44    12  wrap nonce
        56    32  wrapped DK
        88    16  wrap tag

Every envelope of a file carries the same block, so rekeying rewrites 104 bytes per envelope
and never touches a segment.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bmcrypt.crypto.envelope_header import FORMAT_PREFIX, KEY_BLOCK_LEN, TAG_LEN, Header
from bmcrypt.crypto.kdf import (
    SALT_LEN,
    KeySource,
    Passphrase,
    Rng,
    ScryptParams,
    UserKey,
    default_rng,
)
from bmcrypt.crypto.secret import Secret
from bmcrypt.errors import Corrupt, Tampered, UnsupportedVersion, WrongKey

DK_LEN = 32
WRAP_NONCE_LEN = 12

_PREFIX = struct.Struct("<BBBB16s8s16s")
assert _PREFIX.size == 44 and 44 + WRAP_NONCE_LEN + DK_LEN + TAG_LEN == KEY_BLOCK_LEN

@dataclass(frozen=True)
class KeyBlock:
    """A parsed key block; structurally valid, not yet authenticated."""

    source: KeySource
    scrypt: ScryptParams | None
    key_id: bytes
    key_check: bytes
    wrap_nonce: bytes
    wrapped_dk: bytes
    wrap_tag: bytes
    raw: bytes = field(repr=False)


def parse_key_block(raw: bytes) -> KeyBlock:
    """Check the fields a reader must refuse before deriving anything (§4.1)."""
    if len(raw) != KEY_BLOCK_LEN:
        raise ValueError(f"a key block is {KEY_BLOCK_LEN} bytes")
    source, log2n, r, p, salt, key_id, key_check = _PREFIX.unpack_from(raw)
    if source not in (KeySource.RAW, KeySource.PASSPHRASE):
        raise UnsupportedVersion(f"key source {source} is not supported")
    params: ScryptParams | None = None
    if source == KeySource.RAW:
        if any(raw[1:20]):
            raise Corrupt("the key block of a key file has non-zero scrypt fields")
    else:
        params = ScryptParams(log2n, r, p, salt)
        problem = params.problem()
        if problem:
            raise Corrupt(f"key block: {problem}")
    return KeyBlock(KeySource(source), params, key_id, key_check, raw[44:56], raw[56:88],
                    raw[88:104], bytes(raw))


def open_v1(header: Header, secrets: list[Secret]) -> bytes:
    """DK from the key block of a version-1 `header`, telling a wrong key from tampering (§4.3).

    The key is chosen by key id. No key with the file's id and none whose key check matches:
    WrongKey. A key whose check matches but whose id does not, or the reverse, or a failing
    unwrap after a matching check: Tampered. A changed scrypt salt or parameter derives another
    K and so reads as a wrong passphrase; nothing can tell those apart.
    """
    block = parse_key_block(header.key_block)
    candidates = _candidates(block, secrets)
    if not candidates:
        raise _source_mismatch(block)
    key = next((k for k in candidates if k.key_id == block.key_id), None)
    if key is None:
        if any(k.matches_check(header.file_id, block.key_check) for k in candidates):
            raise Tampered("the key block failed authentication")
        raise _wrong_key(block, candidates)
    if not key.matches_check(header.file_id, block.key_check):
        raise Tampered("the key block failed authentication")
    from Crypto.Cipher import AES  # on first use (see kdf.py)

    cipher = AES.new(key.kek(header.file_id), AES.MODE_GCM, nonce=block.wrap_nonce,
                     mac_len=TAG_LEN)
    cipher.update(FORMAT_PREFIX + header.file_id + block.raw[:44])
    try:
        return cipher.decrypt_and_verify(block.wrapped_dk, block.wrap_tag)
    except ValueError:
        raise Tampered("the key block failed authentication") from None


def wrap_v1(secret: Secret, file_id: bytes, dk: bytes, rng: Rng | None = None) -> bytes:
    """A version-1 key block wrapping `dk` under `secret` (fresh nonce; fresh salt for a
    passphrase)."""
    return _wrap(_writer_key(secret, rng), file_id, dk, rng)


def _writer_key(secret: Secret, rng: Rng | None) -> UserKey:
    if isinstance(secret, Passphrase):
        return secret.new_user_key(rng)
    if not isinstance(secret, UserKey):
        raise ValueError("version 1 has no X25519 recipients")
    if secret.source != KeySource.RAW:
        # Reusing a derived key would reuse its salt in another key block.
        raise ValueError("pass the Passphrase itself: a new key block needs a fresh salt")
    return secret


def _wrap(key: UserKey, file_id: bytes, dk: bytes, rng: Rng | None) -> bytes:
    params = key.scrypt
    prefix = _PREFIX.pack(
        key.source,
        params.log2n if params else 0,
        params.r if params else 0,
        params.p if params else 0,
        params.salt if params else bytes(SALT_LEN),
        key.key_id,
        key.key_check(file_id),
    )
    nonce = (rng or default_rng)(WRAP_NONCE_LEN)
    from Crypto.Cipher import AES  # on first use (see kdf.py)

    cipher = AES.new(key.kek(file_id), AES.MODE_GCM, nonce=nonce, mac_len=TAG_LEN)
    cipher.update(FORMAT_PREFIX + file_id + prefix)
    wrapped, tag = cipher.encrypt_and_digest(dk)
    return prefix + nonce + wrapped + tag


def _candidates(block: KeyBlock, secrets: list[Secret]) -> list[UserKey]:
    """The user keys that could have written this block: K of the block's source."""
    keys: list[UserKey] = []
    for secret in secrets:
        if isinstance(secret, Passphrase):
            if block.scrypt is not None:
                keys.append(secret.derive(block.scrypt))
        elif isinstance(secret, UserKey) and (secret.source, secret.scrypt) == (block.source,
                                                                                block.scrypt):
            keys.append(secret)
    return keys


def _source_mismatch(block: KeyBlock) -> WrongKey:
    if block.source == KeySource.RAW:
        return WrongKey("the file was encrypted with a key file, not a passphrase",
                        hint=f"pass --key KEYFILE with the key whose id is {block.key_id.hex()}")
    return WrongKey("the file was encrypted with a passphrase, not a key file",
                    hint="pass --passphrase")


def _wrong_key(block: KeyBlock, tried: list[UserKey]) -> WrongKey:
    if block.source == KeySource.PASSPHRASE:
        return WrongKey("wrong passphrase", hint="give the passphrase the file was encrypted with")
    ids = ", ".join(k.key_id_hex for k in tried)
    given = "the key given has id" if len(tried) == 1 else "the keys given have ids"
    return WrongKey(f"wrong key: the file needs key id {block.key_id.hex()}, {given} {ids}")
