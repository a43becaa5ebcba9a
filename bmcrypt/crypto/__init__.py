"""The bmcrypt envelope (docs/FORMAT.md §3–§5, §8): authenticated encryption of byte regions.

Knows nothing about bmodels or files. Modules, lowest first:

- `envelope_header` — the header's bytes and the limits of §3.1/§8.1 (no cryptography, no key)
- `kdf`      — user keys (`UserKey`, `Passphrase`) and every derivation
- `bech32`, `x25519` — recipient strings; X25519 `Recipient`s and `Identity`s (§8.3)
- `keyblock` — version 1: DK wrapped under K; wrong key vs tampered (§4)
- `keyarea`  — version 2: DK wrapped once per recipient in E₁'s key area (§8.2)
- `filekeys` — per-file `FileKeys` of either version: `new_file`, `open_file_keys`
- `envelope` — segments: `seal`/`unseal` whole, `Sealer`/`Unsealer` streaming
- `segment_cipher` — the segment cipher: the native core (Crypto++) or pycryptodome, one interface

Typical use::

    keys = new_file([UserKey(k), Recipient.parse("bmcrypt1…")])   # or new_file(Passphrase("…"))
    blob = seal(keys, Kind.WEIGHTS, weights)
    plain = unseal(blob, [UserKey(k)])              # or unseal(blob, keys)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bmcrypt._lazy import lazy_names

# Names are imported on first use: `bmcrypt --version` and `inspect` read one constant or a
# header, and need neither hashlib nor the key derivations (issue 17, start-up).
_HOME = {
    "envelope": ("Sealer", "Unsealer", "seal", "unseal"),
    "envelope_header": ("DEFAULT_SEG_LOG2", "HEADER_LEN", "KEY_BLOCK_LEN", "KEY_BLOCK_OFFSET",
                        "MAX_HEADER_LEN", "MAX_PLAINTEXT_LEN", "Header", "Kind",
                        "envelope_length", "parse_header"),
    "filekeys": ("FileKeys", "Keyring", "new_file", "open_file_keys", "rewrap"),
    "kdf": ("KeySource", "Passphrase", "Rng", "ScryptParams", "UserKey", "wipe"),
    "keyarea": ("DEFAULT_SLOTS", "KeyArea", "Stanza", "StanzaType", "parse_key_area"),
    "keyblock": ("KeyBlock", "parse_key_block"),
    "secret": ("Secret",),
    "x25519": ("Identity", "Recipient"),
}
#: Version-1 names kept for callers: `open_key_block` is `open_file_keys`.
_ALIASES = {"open_key_block": "open_file_keys"}

__all__ = [
    "DEFAULT_SEG_LOG2", "DEFAULT_SLOTS", "HEADER_LEN", "KEY_BLOCK_LEN", "KEY_BLOCK_OFFSET",
    "MAX_HEADER_LEN", "MAX_PLAINTEXT_LEN", "FileKeys", "Header", "Identity", "KeyArea",
    "KeyBlock", "KeySource", "Keyring", "Kind", "Passphrase", "Recipient", "Rng",
    "ScryptParams", "Sealer", "Secret", "Stanza", "StanzaType", "Unsealer", "UserKey",
    "envelope_length", "new_file", "open_file_keys", "open_key_block", "parse_header",
    "parse_key_area", "parse_key_block", "rewrap", "seal", "unseal", "wipe",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOME, _ALIASES)


if TYPE_CHECKING:
    from bmcrypt.crypto.envelope import Sealer, Unsealer, seal, unseal
    from bmcrypt.crypto.envelope_header import (
        DEFAULT_SEG_LOG2,
        HEADER_LEN,
        KEY_BLOCK_LEN,
        KEY_BLOCK_OFFSET,
        MAX_HEADER_LEN,
        MAX_PLAINTEXT_LEN,
        Header,
        Kind,
        envelope_length,
        parse_header,
    )
    from bmcrypt.crypto.filekeys import FileKeys, Keyring, new_file, open_file_keys, rewrap
    from bmcrypt.crypto.kdf import KeySource, Passphrase, Rng, ScryptParams, UserKey, wipe
    from bmcrypt.crypto.keyarea import DEFAULT_SLOTS, KeyArea, Stanza, StanzaType, parse_key_area
    from bmcrypt.crypto.keyblock import KeyBlock, parse_key_block
    from bmcrypt.crypto.secret import Secret
    from bmcrypt.crypto.x25519 import Identity, Recipient

    open_key_block = open_file_keys
