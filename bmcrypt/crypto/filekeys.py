"""The secrets of one file (`FileKeys`): made for a new file (`new_file`) or recovered from its
header envelope E₁ (`open_file_keys`), for either format version.

- version 1 (FORMAT.md §4): DK wrapped in a 104-byte key block that every envelope carries;
- version 2 (§8): DK wrapped once per recipient in E₁'s key area; every envelope carries only
  `dk_check`, the commitment to DK, so E₂ and the weights are opened with E₁'s DK.

When E₁'s policy demands a licence (§8.5), `open_file_keys` asks `bmcrypt.licence` for one
before it returns DK: the one place the licence policy is enforced on the Python side.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from typing import NoReturn

from bmcrypt.crypto.envelope_header import (
    HEADER_LEN,
    ID_LEN,
    KEY_BLOCK_LEN,
    LICENCE_KEY_LEN,
    POLICY_LICENCE,
    V1,
    V2,
    V2_PUBLIC_LEN,
    Header,
    Kind,
    envelope_length,
    pack_public_header,
    pack_public_header_v2,
)
from bmcrypt.crypto.kdf import Passphrase, Rng, UserKey, default_rng, dk_check, payload_key
from bmcrypt.crypto.keyarea import (
    DEFAULT_SLOTS,
    DK_LEN,
    KeyArea,
    RecipientLike,
    Stanza,
    changed_key_id,
    new_key_area,
    parse_key_area,
    stanza_keys,
    unwrap_stanza,
)
from bmcrypt.crypto.keyblock import open_v1, wrap_v1
from bmcrypt.crypto.secret import Secret
from bmcrypt.crypto.x25519 import Identity, Recipient
from bmcrypt.errors import NoKey, Tampered, WrongKey

#: One secret or several (chosen by key id): what a reader is given to open a file. Items that
#: are not secrets (licences) are passed on to the licence check untouched.
Keyring = Secret | Iterable[Secret]


class FileKeys:
    """The secrets of one file: file_id, the data key DK, and what wraps DK for its readers
    (v1: the key block; v2: E₁'s key area, its policy and licence key).

    Hand it to `seal`/`unseal`; it never shows DK (repr, pickling).
    """

    __slots__ = ("file_id", "version", "key_block", "key_area", "policy", "licence_key",
                 "opened_with", "dk_check", "_dk")

    def __init__(self, file_id: bytes, key_block: bytes, dk: bytes, *, version: int = V1,
                 key_area: bytes = b"", policy: int = 0,
                 licence_key: bytes = bytes(LICENCE_KEY_LEN),
                 opened_with: bytes | None = None) -> None:
        if len(file_id) != ID_LEN or len(dk) != DK_LEN:
            raise ValueError("file_id or data key has the wrong length")
        if version == V1 and len(key_block) != KEY_BLOCK_LEN:
            raise ValueError("a version-1 file needs its 104-byte key block")
        if version == V2 and (key_block or not key_area):
            raise ValueError("a version-2 file has a key area, no key block")
        if bool(policy & POLICY_LICENCE) != any(licence_key) or policy & ~POLICY_LICENCE:
            raise ValueError("a licence key goes with policy bit 0, and only with it")
        self.file_id = bytes(file_id)
        self.version = version
        self.key_block = bytes(key_block)
        self.key_area = bytes(key_area)
        self.policy = policy
        self.licence_key = bytes(licence_key)
        self.opened_with = opened_with  # v2: the key id of the stanza DK came from
        self._dk = bytes(dk)
        self.dk_check = dk_check(self._dk, self.file_id) if version == V2 else b""

    # ------------------------------------------------------------ what the file shows

    @property
    def key_id(self) -> bytes:
        """v1: the key block's key id; v2: the recipient this was opened with (or the first)."""
        if self.version == V1:
            return self.key_block[20:28]
        return self.opened_with or self.area().stanzas[0].key_id

    def area(self) -> KeyArea:
        """The parsed key area (version 2)."""
        if self.version != V2:
            raise ValueError("a version-1 file has no key area")
        return parse_key_area(self.key_area)

    def owns(self, header: Header) -> bool:
        """Whether `header` is an envelope of this file (v1: same key block; v2: dk_check)."""
        if header.version != self.version or header.file_id != self.file_id:
            return False
        if self.version == V1:
            return header.key_block == self.key_block
        return hmac.compare_digest(header.dk_check, self.dk_check)

    # ------------------------------------------------------------ writing envelopes

    def header_len(self, kind: int) -> int:
        """Bytes before the segments of an envelope of this kind."""
        if self.version == V1:
            return HEADER_LEN
        return V2_PUBLIC_LEN + len(self.key_material(kind))

    def key_material(self, kind: int) -> bytes:
        """What follows the public header: the key block (v1), the key area (v2, kind 1)."""
        if self.version == V1:
            return self.key_block
        return self.key_area if kind == Kind.HEADER_TAIL else b""

    def public_header(self, kind: int, seg_log2: int, plaintext_len: int,
                      region_salt: bytes) -> bytes:
        """The public header (the segments' associated data) of a new envelope."""
        if self.version == V1:
            return pack_public_header(kind, seg_log2, plaintext_len, self.file_id, region_salt)
        first = kind == Kind.HEADER_TAIL
        return pack_public_header_v2(
            kind, seg_log2, plaintext_len, self.file_id, region_salt, self.dk_check,
            area_len=len(self.key_area) if first else 0, policy=self.policy if first else 0,
            licence_key=self.licence_key if first else bytes(LICENCE_KEY_LEN))

    def envelope_length(self, kind: int, plaintext_len: int, seg_log2: int) -> int:
        return envelope_length(plaintext_len, seg_log2, header_len=self.header_len(kind))

    def payload_key(self, region_salt: bytes) -> bytes:
        """PK of the envelope with this region salt (§3.2, §8.1)."""
        return payload_key(self._dk, region_salt, self.version)

    # ------------------------------------------------------------ changing who opens the file

    def rewrapped(self, secret: Secret, rng: Rng | None = None) -> FileKeys:
        """v1: the same file_id and DK under another key (fresh wrap nonce and scrypt salt)."""
        if self.version != V1:
            raise ValueError("version 2 changes recipients, not the key block")
        return FileKeys(self.file_id, wrap_v1(secret, self.file_id, self._dk, rng), self._dk)

    def with_area(self, area: KeyArea) -> FileKeys:
        """The same file (DK, policy) with another key area of the same capacity."""
        return FileKeys(self.file_id, b"", self._dk, version=V2, key_area=area.pack(),
                        policy=self.policy, licence_key=self.licence_key,
                        opened_with=self.opened_with)

    def stanza_for(self, recipient: RecipientLike, rng: Rng | None = None) -> Stanza:
        """A new stanza wrapping this file's DK for `recipient`."""
        from bmcrypt.crypto.keyarea import wrap_stanza

        return wrap_stanza(recipient, self.file_id, self._dk, rng)

    def __repr__(self) -> str:
        return (f"FileKeys(version={self.version}, file_id={self.file_id.hex()}, "
                f"key_id={self.key_id.hex()})")

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("FileKeys cannot be pickled (they would carry the data key)")


# ---------------------------------------------------------------- new files


def new_file(recipients: RecipientLike | Sequence[RecipientLike], rng: Rng | None = None, *,
             version: int = V2, slots: int = DEFAULT_SLOTS,
             licence_key: bytes | None = None) -> FileKeys:
    """Fresh per-file state: a random file_id and DK, wrapped for every recipient.

    Version 2 (the default): a key area of `slots` slots, one stanza per recipient (key files,
    passphrases, X25519 recipients or identities); `licence_key` (an Ed25519 public key) sets
    policy bit 0. Version 1: exactly one key file or passphrase, no licence.
    """
    rng = rng or default_rng
    listed = list(recipients) if isinstance(recipients, (list, tuple)) else [recipients]
    if version == V1:
        if len(listed) != 1 or licence_key is not None:
            raise ValueError("a version-1 file has one key and no licence")
        file_id, dk = rng(ID_LEN), rng(DK_LEN)
        return FileKeys(file_id, wrap_v1(listed[0], file_id, dk, rng), dk)
    if version != V2:
        raise ValueError(f"no format version {version}")
    file_id, dk = rng(ID_LEN), rng(DK_LEN)
    area = new_key_area(listed, file_id, dk, slots=slots, rng=rng)
    policy, lk = (0, bytes(LICENCE_KEY_LEN)) if licence_key is None else (POLICY_LICENCE,
                                                                           licence_key)
    if licence_key is not None and (len(lk) != LICENCE_KEY_LEN or not any(lk)):
        raise ValueError("a licence key is a 32-byte Ed25519 public key")
    return FileKeys(file_id, b"", dk, version=V2, key_area=area.pack(), policy=policy,
                    licence_key=lk)


# ---------------------------------------------------------------- opening


def open_file_keys(header: Header, keyring: Keyring | FileKeys) -> FileKeys:
    """The keys of the file whose envelope `header` is, recovered with `keyring`.

    Version 1: any envelope's key block opens (§4.3). Version 2: only E₁ (kind 1) carries the
    key area; any other envelope needs the FileKeys of its E₁ (WrongKey: "open the header
    first"). Raises WrongKey, Tampered, Corrupt or UnsupportedVersion, and whatever the licence
    check raises when E₁ demands a licence.
    """
    if isinstance(keyring, FileKeys):
        if not keyring.owns(header):
            raise Tampered("the envelope belongs to another file (its file id or "
                           f"{'key block' if header.version == V1 else 'dk_check'} differs)")
        return keyring
    secrets = secrets_of(keyring)
    if header.version == V1:
        return FileKeys(header.file_id, header.key_block, open_v1(header, secrets))
    if header.kind != Kind.HEADER_TAIL:
        raise WrongKey("a version-2 envelope opens with the keys of its file's header envelope",
                       hint="open the header envelope (E₁) first")
    keys = _open_area(header, secrets)
    if header.licence_required:
        from bmcrypt.licence import require_licence  # the one licence gate (FORMAT.md §8.5)

        require_licence(header=header, keyring=keyring)
    return keys


def rewrap(header: Header, old_keyring: Keyring, new_secret: Secret,
           rng: Rng | None = None) -> bytes:
    """Version 1 rekey: the key block with the same DK, opened with the old key, wrapped under
    the new."""
    return open_file_keys(header, old_keyring).rewrapped(new_secret, rng).key_block


def secrets_of(keyring: Keyring) -> list[Secret]:
    """The secrets in a keyring (one secret or several); NoKey when there is none."""
    kinds = (UserKey, Passphrase, Identity)
    items = [keyring] if isinstance(keyring, kinds) else list(keyring)  # type: ignore[arg-type]
    secrets = [s for s in items if isinstance(s, kinds)]
    if not secrets:
        raise NoKey("no key given")
    return secrets


def _open_area(header: Header, secrets: list[Secret]) -> FileKeys:
    area = parse_key_area(header.key_area)  # Corrupt / UnsupportedVersion before any key
    failure: Tampered | None = None
    for stanza in area.stanzas:
        for k in stanza_keys(stanza, secrets):
            try:
                dk = unwrap_stanza(stanza, k, header.file_id)
            except Tampered as exc:
                failure = failure or exc
                continue
            if not hmac.compare_digest(dk_check(dk, header.file_id), header.dk_check):
                failure = failure or Tampered(
                    f"key slot {stanza.key_id.hex()} wraps a data key that is not this "
                    "file's (dk_check differs)")
                continue
            return FileKeys(header.file_id, b"", dk, version=V2, key_area=header.key_area,
                            policy=header.policy, licence_key=header.licence_key,
                            opened_with=stanza.key_id)
    if failure is not None:
        raise failure
    changed = changed_key_id(area, secrets, header.file_id)
    if changed is not None:
        raise Tampered(f"key slot {changed.key_id.hex()} failed authentication (its key id "
                       "was changed)")
    raise _wrong_key(area, secrets)


def _wrong_key(area: KeyArea, secrets: list[Secret]) -> WrongKey:
    listed = ", ".join(f"{s.key_id.hex()} ({s.describe})" for s in area.stanzas)
    needs = f"key id {listed}" if len(area.stanzas) == 1 else f"one of key ids {listed}"
    given = [getattr(s, "key_id_hex", None) or "a passphrase" for s in secrets]
    if given == ["a passphrase"]:
        return WrongKey(f"wrong passphrase: the file needs {needs}",
                        hint="give the passphrase the file was encrypted with, or another key")
    which = "the key given has id" if len(given) == 1 else "the keys given have ids"
    return WrongKey(f"wrong key: the file needs {needs}; {which} {', '.join(given)}",
                    hint="pass --key with a key file or identity the file was encrypted for")


__all__ = ["FileKeys", "Keyring", "Recipient", "new_file", "open_file_keys", "rewrap",
           "secrets_of"]
