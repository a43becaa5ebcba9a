"""The version-2 envelope (docs/FORMAT.md §8): key area, dk_check, E₂/E₃ opened with E₁'s data
key, every single-bit change detected with the right error, and the licence seam."""

from __future__ import annotations

import os
import random
import sys
import types
from typing import Any

import pytest

from bmcrypt.crypto import (
    FileKeys,
    Identity,
    Kind,
    Passphrase,
    Unsealer,
    UserKey,
    new_file,
    open_file_keys,
    parse_header,
    parse_key_area,
    seal,
    unseal,
)
from bmcrypt.errors import BmcryptError, Corrupt, Tampered, UnsupportedVersion, WrongKey

TAIL = bytes(range(56))


def rng(seed: str) -> Any:
    return random.Random(seed).randbytes


def test_writers_write_version_2_and_the_header_layout_is_the_spec_one() -> None:
    key = UserKey(rng("k")(32))
    keys = new_file([key, Identity(rng("i")(32)).recipient], rng("file"), slots=3)
    e1 = bytes(seal(keys, Kind.HEADER_TAIL, TAIL, seg_log2=12))
    e3 = bytes(seal(keys, Kind.WEIGHTS, b"w" * 5000, seg_log2=12))
    h1, h3 = parse_header(e1), parse_header(e3)
    assert (h1.version, h1.header_len, h3.header_len) == (2, 104 + 16 + 3 * 128, 104)
    assert e1[64:68] == (16 + 3 * 128).to_bytes(4, "little") and e3[64:104] == bytes(40)
    assert h1.dk_check == h3.dk_check == keys.dk_check and h1.file_id == h3.file_id
    assert e1[104:108] == b"BMCK" and e1[108:110] == b"\x03\x00" and e1[110:112] == b"\x02\x00"
    area = parse_key_area(h1.key_area)
    assert [s.key_id for s in area.stanzas] == [key.key_id, keys.area().stanzas[1].key_id]
    assert len(e1) == 104 + 400 + 56 + 16 and len(e3) == 104 + 5000 + 2 * 16


def test_weights_open_only_with_the_data_key_of_their_header() -> None:
    key = UserKey(os.urandom(32))
    keys = new_file(key)
    e1, e3 = seal(keys, Kind.HEADER_TAIL, TAIL), seal(keys, Kind.WEIGHTS, b"weights")
    with pytest.raises(WrongKey, match="header"):
        unseal(e3, key)
    opener = Unsealer(key)
    assert opener.update(e1) + opener.finish() == TAIL
    assert opener.file_keys is not None and unseal(e3, opener.file_keys) == b"weights"
    other = new_file(key)
    with pytest.raises(Tampered, match="another file"):
        unseal(seal(other, Kind.WEIGHTS, b"weights"), opener.file_keys)


def test_every_single_bit_flip_of_a_header_envelope_is_caught_never_as_a_wrong_key() -> None:
    key = UserKey(rng("flip key")(32))
    keys = new_file(key, rng("flip file"), slots=2)
    e1 = bytes(seal(keys, Kind.HEADER_TAIL, TAIL, seg_log2=12, rng=rng("flip salt")))
    for i in range(len(e1)):
        for bit in (0x01, 0x80):
            flipped = bytearray(e1)
            flipped[i] ^= bit
            with pytest.raises(BmcryptError) as err:
                unseal(bytes(flipped), key)
            assert not isinstance(err.value, WrongKey), (i, bit, err.value)


@pytest.mark.parametrize("offset", [4, 5, 6, 7, 16, 40, 48, 64, 68, 72, 100, 110, 200])
def test_a_changed_weight_envelope_header_is_refused(offset: int) -> None:
    key = UserKey(os.urandom(32))
    keys = new_file(key)
    e3 = bytearray(seal(keys, Kind.WEIGHTS, os.urandom(300), seg_log2=12))
    e3[offset] ^= 0x04
    with pytest.raises((Tampered, Corrupt, UnsupportedVersion)):
        unseal(bytes(e3), keys)


def test_any_recipient_opens_and_a_passphrase_is_tried_on_every_passphrase_stanza() -> None:
    key, device = UserKey(os.urandom(32)), Identity.generate()
    keys = new_file([Passphrase("one", log2n=10), Passphrase("two", log2n=10), key,
                     device.recipient])
    e1 = seal(keys, Kind.HEADER_TAIL, TAIL)
    for secret in (Passphrase("one"), Passphrase("two"), key, device,
                   [UserKey(os.urandom(32)), device]):
        assert unseal(e1, secret) == TAIL
    with pytest.raises(WrongKey, match="one of key ids"):
        unseal(e1, Passphrase("three"))


def test_new_file_refuses_what_the_format_cannot_hold() -> None:
    key = UserKey(os.urandom(32))
    with pytest.raises(ValueError, match="same recipient"):
        new_file([key, key])
    with pytest.raises(ValueError, match="do not fit"):
        new_file([key, Identity.generate()], slots=1)
    with pytest.raises(ValueError):
        new_file([key], slots=256)
    with pytest.raises(ValueError):
        new_file([key, Passphrase("x", log2n=10)], version=1)
    with pytest.raises(ValueError):
        seal(new_file(key), Kind.GENERIC, b"kind 0 is version 1 only")


def test_the_licence_policy_goes_through_the_one_licence_gate(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # bmcrypt.licence (its own helper's work) decides; the envelope's part is to ask it, once,
    # with E₁'s header and the caller's keyring, before any plaintext is released.
    calls: list[tuple[Any, Any]] = []

    def require_licence(*, header: Any, keyring: Any) -> None:
        calls.append((header, keyring))

    fake = types.ModuleType("bmcrypt.licence")
    fake.require_licence = require_licence  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bmcrypt.licence", fake)
    key = UserKey(os.urandom(32))
    signer = os.urandom(32)
    keys = new_file(key, licence_key=signer)
    e1 = bytes(seal(keys, Kind.HEADER_TAIL, TAIL))
    header = parse_header(e1)
    assert header.licence_required and header.licence_key == signer and e1[68] == 1
    assert unseal(e1, [key]) == TAIL
    assert len(calls) == 1 and calls[0][0].licence_key == signer and calls[0][1] == [key]
    # No licence check for a file that does not ask for one.
    calls.clear()
    plain_keys = new_file(key)
    unseal(seal(plain_keys, Kind.HEADER_TAIL, TAIL), key)
    assert calls == []
    # The gate runs after the key: a wrong key is still a wrong key.
    with pytest.raises(WrongKey, match="wrong key"):
        open_file_keys(header, UserKey(os.urandom(32)))
    assert calls == []


def test_file_keys_never_show_or_pickle_the_data_key() -> None:
    import pickle

    keys = new_file([UserKey(os.urandom(32)), Identity.generate().recipient])
    assert keys._dk.hex() not in repr(keys) + str(keys)
    with pytest.raises(TypeError):
        pickle.dumps(keys)
    assert isinstance(keys, FileKeys) and keys.version == 2
