"""Rekey: rewrap the data key of every envelope under a new user key, in place.

Only the 104-byte key blocks change (docs/FORMAT.md §4.4), so the cost is a few writes per weight
region, whatever the weights weigh. The patches go through the crash-safe journal of
`bmcrypt.files`: after a crash the file is all-old or, once the journal is complete, all-new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bmcrypt.crypto import HEADER_LEN, KEY_BLOCK_OFFSET, Keyring, Secret, parse_header, rewrap
from bmcrypt.errors import Tampered
from bmcrypt.files import patch_in_place
from bmcrypt.protect.opened import open_encrypted
from bmcrypt.protect.region_plan import coeff_regions


@dataclass(frozen=True)
class RekeyReport:
    old_key_id: str
    new_key_id: str
    envelopes: int


def rekey_file(path: str | os.PathLike[str], old: Keyring, new: Secret) -> RekeyReport:
    """Rewrap every envelope of the bmcrypt file at `path` for `new`; `old` must open it.

    The caller holds the file's lock and has recovered any pending journal.
    """
    with open_encrypted(path, old) as opened:
        old_block = opened.key_block
        new_block = rewrap(opened.envelope, old, new)
        offsets = [8, opened.header_size]
        seen: set[int] = set()
        for net, _stage, encrypt_mode, start, size in coeff_regions(opened.tree):
            if encrypt_mode != 1 or start in seen:
                continue
            seen.add(start)
            head = opened.binary(start, min(HEADER_LEN, size))
            header = parse_header(head, whole=False)
            if header.file_id != opened.keys.file_id or header.key_block != old_block:
                raise Tampered(f"the weights of net {net!r} belong to another encrypted file")
            offsets.append(opened.binary_offset + start)
        old_key_id = opened.keys.key_id.hex()
    patches = [(off + KEY_BLOCK_OFFSET, old_block, new_block) for off in offsets]
    patch_in_place(path, patches)
    new_key_id = new_block[20:28].hex()
    return RekeyReport(old_key_id, new_key_id, len(offsets))
