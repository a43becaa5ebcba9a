"""The bmcrypt envelope (docs/FORMAT.md §3–§5): authenticated encryption of byte regions.

Knows nothing about bmodels or files. Modules, lowest first:

- `layout`   — the header's bytes and the limits of §3.1 (no cryptography, no key)
- `kdf`      — user keys (`UserKey`, `Passphrase`) and every derivation
- `keyblock` — DK wrapped under K; wrong key vs tampered (§4); per-file `FileKeys`
- `envelope` — segments: `seal`/`unseal` whole, `Sealer`/`Unsealer` streaming
- `manifest` — E₂'s trailer and the clear-span digest (§5)

Typical use::

    keys = new_file(UserKey(k))                     # or new_file(Passphrase("…"))
    blob = seal(keys, Kind.WEIGHTS, weights)
    plain = unseal(blob, [UserKey(k)])              # or unseal(blob, keys)
"""

from bmcrypt.crypto.envelope import Sealer, Unsealer, seal, unseal
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
from bmcrypt.crypto.layout import (
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
from bmcrypt.crypto.manifest import (
    MANIFEST_LEN,
    ClearDigest,
    Manifest,
    clear_digest,
    clear_spans,
    parse_manifest,
)

__all__ = [
    "DEFAULT_SEG_LOG2", "HEADER_LEN", "KEY_BLOCK_LEN", "KEY_BLOCK_OFFSET", "MANIFEST_LEN",
    "MAX_PLAINTEXT_LEN", "ClearDigest", "FileKeys", "Header", "KeyBlock", "KeySource", "Keyring",
    "Kind", "Manifest", "Passphrase", "Rng", "ScryptParams", "Sealer", "Secret", "Unsealer",
    "UserKey", "clear_digest", "clear_spans", "envelope_length", "new_file", "open_key_block",
    "parse_header", "parse_key_block", "parse_manifest", "rewrap", "seal", "unseal", "wipe",
]
