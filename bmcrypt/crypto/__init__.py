"""The bmcrypt envelope (docs/FORMAT.md §3–§5): authenticated encryption of byte regions.

Knows nothing about bmodels or files. Modules, lowest first:

- `envelope_header` — the header's bytes and the limits of §3.1 (no cryptography, no key)
- `kdf`      — user keys (`UserKey`, `Passphrase`) and every derivation
- `keyblock` — DK wrapped under K; wrong key vs tampered (§4); per-file `FileKeys`
- `envelope` — segments: `seal`/`unseal` whole, `Sealer`/`Unsealer` streaming
- `segment_cipher` — the segment cipher: the native core (Crypto++) or pycryptodome, one interface

Typical use::

    keys = new_file(UserKey(k))                     # or new_file(Passphrase("…"))
    blob = seal(keys, Kind.WEIGHTS, weights)
    plain = unseal(blob, [UserKey(k)])              # or unseal(blob, keys)
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use: `bmcrypt --version` and `inspect` read one constant or a
# header, and need neither hashlib nor the key derivations (issue 17, start-up).
_HOME = {
    "envelope": ("Sealer", "Unsealer", "seal", "unseal"),
    "envelope_header": ("DEFAULT_SEG_LOG2", "HEADER_LEN", "KEY_BLOCK_LEN", "KEY_BLOCK_OFFSET",
                        "MAX_PLAINTEXT_LEN", "Header", "Kind", "envelope_length",
                        "parse_header"),
    "kdf": ("KeySource", "Passphrase", "Rng", "ScryptParams", "Secret", "UserKey", "wipe"),
    "keyblock": ("FileKeys", "KeyBlock", "Keyring", "new_file", "open_key_block",
                 "parse_key_block", "rewrap"),
}
_WHERE = {name: module for module, names in _HOME.items() for name in names}

__all__ = [
    "DEFAULT_SEG_LOG2", "HEADER_LEN", "KEY_BLOCK_LEN", "KEY_BLOCK_OFFSET",
    "MAX_PLAINTEXT_LEN", "FileKeys", "Header", "KeyBlock", "KeySource", "Keyring",
    "Kind", "Passphrase", "Rng", "ScryptParams", "Sealer", "Secret", "Unsealer",
    "UserKey", "envelope_length", "new_file", "open_key_block",
    "parse_header", "parse_key_block", "rewrap", "seal", "unseal", "wipe",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bmcrypt.crypto' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bmcrypt.crypto.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from bmcrypt.crypto.envelope import Sealer, Unsealer, seal, unseal
    from bmcrypt.crypto.envelope_header import (
        DEFAULT_SEG_LOG2,
        HEADER_LEN,
        KEY_BLOCK_LEN,
        KEY_BLOCK_OFFSET,
        MAX_PLAINTEXT_LEN,
        Header,
        Kind,
        envelope_length,
        parse_header,
    )
    from bmcrypt.crypto.kdf import KeySource, Passphrase, Rng, ScryptParams, Secret, UserKey, wipe
    from bmcrypt.crypto.keyblock import (
        FileKeys,
        KeyBlock,
        Keyring,
        new_file,
        open_key_block,
        parse_key_block,
        rewrap,
    )
