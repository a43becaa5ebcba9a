"""Offline licences (FORMAT.md §8.5): a vendor signs, with Ed25519, that one model file may open
until a date, optionally only on devices with given serial numbers; readers refuse to release
plaintext of a file that demands a licence without one that passes.

Modules, lowest first:

- `signing_key` — the vendor's Ed25519 key: its file (0600) and its ``bmcryptlic1…`` public form
- `licence_file` — the licence's bytes: `issue_licence`, `parse_licence`, `load_licence_file`
- `check` — the checks in §8.5's order (`LicenceSet.require`), and the readers' seam
  `require_licence(header=…, keyring=…)`: licences travel on the keyring (`with_licences`)
- `terms` — a model's licence terms (file id, policy, licence key) read from its clear header

Typical use::

    key = generate_signing_key_file("vendor.key")            # once, kept by the vendor
    lic = issue_licence(key, file_id, not_after=1798761599, serials=[b"HQDZKM5BAJEJG0A9B"])
    ring = with_licences(user_key, LicenceSet([parse_licence(lic, "m.bmlic")]))
"""

from bmcrypt.licence.check import (
    POLICY_LICENCE,
    KeysWithLicences,
    LicenceSet,
    licences_of,
    require_licence,
    with_licences,
)
from bmcrypt.licence.licence_file import Licence, issue_licence, load_licence_file, parse_licence
from bmcrypt.licence.signing_key import (
    SigningKey,
    decode_public_key,
    encode_public_key,
    generate_signing_key_file,
    load_signing_key,
)

__all__ = [
    "POLICY_LICENCE", "KeysWithLicences", "Licence", "LicenceSet", "SigningKey",
    "decode_public_key", "encode_public_key", "generate_signing_key_file", "issue_licence",
    "licences_of", "load_licence_file", "load_signing_key", "parse_licence", "require_licence",
    "with_licences",
]
