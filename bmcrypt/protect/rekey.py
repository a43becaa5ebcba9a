"""Rekey: change who opens a bmcrypt file, in place, without touching a weight byte.

- Version 1 (docs/FORMAT.md §4.4): the 104-byte key block of every envelope is rewrapped.
- Version 2 (§8.2): only E₁'s key area changes (it has a fixed size): a recipient is added,
  removed or replaced; E₂ and the weights carry no key material and are not written.

Either way the patches go through the crash-safe journal of `bmcrypt.files`: after a crash the
file is all-old or, once the journal is complete, all-new. Rotating the data key rewrites the
whole file instead (`workflow.rotate_data_key`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

from bmcrypt.crypto import (
    HEADER_LEN,
    KEY_BLOCK_OFFSET,
    KeyArea,
    Keyring,
    Recipient,
    Secret,
    open_file_keys,
    parse_header,
    parse_key_area,
    parse_key_block,
    rewrap,
)
from bmcrypt.crypto.envelope_header import V1, V2_PUBLIC_LEN, Header
from bmcrypt.crypto.keyarea import RecipientLike, Stanza
from bmcrypt.errors import BmcryptError, SlotsFull, Tampered, UsageError, WrongKey
from bmcrypt.files import patch_in_place
from bmcrypt.protect.opened import Opened, open_encrypted
from bmcrypt.protect.region_plan import coeff_regions

E1_OFFSET = 8  # E₁ starts after the clear magic and header_size


@dataclass(frozen=True)
class RekeyReport:
    old_key_id: str
    new_key_id: str
    envelopes: int


@dataclass(frozen=True)
class RecipientInfo:
    """One recipient of a version-2 file, as its key area shows it (no key needed)."""

    key_id: str
    type: str  # "key file", "passphrase", "x25519"


@dataclass(frozen=True)
class RecipientsReport:
    """Who opens a file after `change_recipients` (or as `list_recipients` found it)."""

    recipients: tuple[RecipientInfo, ...]
    slots: int
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def free_slots(self) -> int:
        return self.slots - len(self.recipients)


def rekey_file(path: str | os.PathLike[str], old: Keyring, new: Secret) -> RekeyReport:
    """Rewrap the bmcrypt file at `path` for `new`; `old` stops opening it.

    Version 1: every envelope's key block. Version 2: the stanza `old` opened is replaced by
    one for `new`, in place (the other recipients stay). The caller holds the file's lock and
    has recovered any pending journal.
    """
    with open_encrypted(path, old) as opened:
        keys = opened.keys
        if keys.version != V1:
            area = keys.area()
            new_stanza = keys.stanza_for(new)
            kept = [s for s in area.stanzas if s.key_id != keys.key_id]
            if any(s.key_id == new_stanza.key_id for s in kept):
                raise UsageError("the new key is already a recipient of this file",
                                 hint="remove the old one with --remove-recipient instead")
            at = next(i for i, s in enumerate(area.stanzas) if s.key_id == keys.key_id)
            kept.insert(at, new_stanza)
            patched = _patch_area(path, opened, KeyArea(area.slots, tuple(kept)))
            return RekeyReport(keys.key_id.hex(), new_stanza.key_id.hex(), patched)
        old_block = opened.key_block
        new_block = rewrap(opened.envelope, old, new)
        offsets = [E1_OFFSET, opened.header_size] + _weight_envelopes(opened, old_block)
        old_key_id = keys.key_id.hex()
    patches = [(off + KEY_BLOCK_OFFSET, old_block, new_block) for off in offsets]
    patch_in_place(path, patches)
    return RekeyReport(old_key_id, new_block[20:28].hex(), len(offsets))


def _weight_envelopes(opened: Opened, old_block: bytes) -> list[int]:
    """File offsets of the v1 weight envelopes, each checked to be of this file."""
    offsets: list[int] = []
    seen: set[int] = set()
    # The tree the verifying walk decoded: no generated code, no numpy (issue 17, start-up).
    for net, _stage, encrypt_mode, start, size in coeff_regions(opened.tree):
        if encrypt_mode != 1 or start in seen:
            continue
        seen.add(start)
        head = opened.binary(start, min(HEADER_LEN, size))
        header = parse_header(head, whole=False)
        if header.file_id != opened.keys.file_id or header.key_block != old_block:
            raise Tampered(f"the weights of net {net!r} belong to another encrypted file")
        offsets.append(opened.binary_offset + start)
    return offsets


def list_recipients(header: Header) -> RecipientsReport:
    """The recipients E₁'s key area lists (public: no key needed). Version 2 only."""
    if header.version == V1:  # one key, in a key block of its own
        block = parse_key_block(header.key_block)
        kind = "key file" if block.scrypt is None else "passphrase"
        return RecipientsReport((RecipientInfo(block.key_id.hex(), kind),), 1)
    return _report(parse_key_area(header.key_area))


def change_recipients(path: str | os.PathLike[str], keyring: Keyring, *,
                      add: Sequence[RecipientLike] = (),
                      remove: Sequence[str] = ()) -> RecipientsReport:
    """Add and remove recipients of the version-2 file at `path`, rewriting E₁'s key area only.

    `remove` names recipients by key id (16 hex digits) or recipient string (`bmcrypt1…`).
    Refused: a full key area (SlotsFull), a recipient already present or not present, and
    leaving no recipient that `keyring` opens (WrongKey is never risked by a typo: the caller
    must still be able to open the file afterwards).
    """
    with open_encrypted(path, keyring) as opened:
        keys = opened.keys
        if keys.version == V1:
            raise UsageError("a version-1 file has one key and no recipients to change",
                             hint="`bmcrypt rekey --rotate-data-key` rewrites it as version 2")
        area = keys.area()
        stanzas = list(area.stanzas)
        removed = []
        for name in remove:
            key_id = _key_id_of(name)
            match = [s for s in stanzas if s.key_id.hex() == key_id]
            if not match:
                raise UsageError(f"{name} is not a recipient of {path}",
                                 hint="`bmcrypt rekey --list` shows the recipients")
            stanzas.remove(match[0])
            removed.append(key_id)
        added = []
        for recipient in add:
            stanza = keys.stanza_for(recipient)
            if any(s.key_id == stanza.key_id for s in stanzas):
                raise UsageError(f"key id {stanza.key_id.hex()} is already a recipient of "
                                 f"{path}", hint="`bmcrypt rekey --list` shows the recipients")
            stanzas.append(stanza)
            added.append(stanza.key_id.hex())
        if len(stanzas) > area.slots:
            raise SlotsFull(
                f"{path} has room for {area.slots} recipients; "
                f"{len(stanzas)} would not fit",
                hint="remove one first, or rewrite the file with more room: "
                     "`bmcrypt rekey --rotate-data-key --recipient-slots N`")
        if not stanzas:
            raise UsageError("refusing to remove every recipient: nobody could open the file")
        new_area = KeyArea(area.slots, tuple(stanzas))
        _still_opens(opened.envelope, new_area, keyring)
        _patch_area(path, opened, new_area)
    return dataclasses.replace(_report(new_area), added=tuple(added), removed=tuple(removed))


def _still_opens(e1: Header, area: KeyArea, keyring: Keyring) -> None:
    try:
        open_file_keys(dataclasses.replace(e1, key_area=area.pack()), keyring)
    except (WrongKey, Tampered):
        raise UsageError("refusing to remove the last recipient you can open the file with",
                         hint="add another recipient you hold first, or pass its key too "
                              "(--key)") from None
    except BmcryptError:
        raise


def _patch_area(path: str | os.PathLike[str], opened: Opened, area: KeyArea) -> int:
    old = opened.envelope.key_area
    new = area.pack()
    assert len(new) == len(old)  # the area never changes size in place
    patch_in_place(path, [(E1_OFFSET + V2_PUBLIC_LEN, old, new)])
    return 1


def _key_id_of(name: str) -> str:
    text = name.strip().lower()
    if text.startswith("bmcrypt1"):
        try:
            return Recipient.parse(text).key_id_hex
        except ValueError as exc:
            raise UsageError(f"not a valid recipient: {exc}",
                             hint="copy the recipient string again (it has a checksum)") from None
    if len(text) == 16 and all(c in "0123456789abcdef" for c in text):
        return text
    raise UsageError(f"{name!r} is neither a key id (16 hex digits) nor a recipient (bmcrypt1…)",
                     hint="`bmcrypt rekey --list` shows the recipients' key ids")


def _report(area: KeyArea) -> RecipientsReport:
    return RecipientsReport(tuple(_info(s) for s in area.stanzas), area.slots)


def _info(stanza: Stanza) -> RecipientInfo:
    return RecipientInfo(stanza.key_id.hex(), stanza.describe)


__all__ = ["RecipientInfo", "RecipientsReport", "RekeyReport", "SlotsFull",
           "change_recipients", "list_recipients", "rekey_file"]
