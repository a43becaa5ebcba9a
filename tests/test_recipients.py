"""Recipients (issue 19, FORMAT.md §8.2–8.3): several per file, X25519 identities, Bech32
recipient strings, identity files; adding and removing recipients in place without touching a
weight byte; a full key area refused; rotating the data key."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import struct
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt, json_document
from conftest import FIXTURES

from bmcrypt.crypto import (
    FileKeys,
    Identity,
    Passphrase,
    Recipient,
    UserKey,
    bech32,
    parse_header,
    unseal,
)
from bmcrypt.crypto.envelope import open_segment_run
from bmcrypt.errors import KeyFileError, SlotsFull, Tampered, UsageError, WrongKey
from bmcrypt.keys import generate_identity_file, load_key_file
from bmcrypt.protect.opened import open_encrypted
from bmcrypt.workflow import (
    change_model_recipients,
    decrypt_model,
    encrypt_model,
    list_model_recipients,
    rotate_data_key,
    verify_model,
)

QWEN = FIXTURES / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
MLP = FIXTURES / "mlp_bm1684x_f16_nokernel.bmodel"
PASSPHRASE = Passphrase("a fleet passphrase", log2n=10)


def binary_region(path: Path) -> str:
    """SHA-256 of the binary region (weights and clear parts) of a bmcrypt file."""
    data = path.read_bytes()
    (header_size,) = struct.unpack("<I", data[4:8])
    e2 = parse_header(data[header_size:header_size + 200], whole=False)
    return hashlib.sha256(data[header_size + e2.envelope_len:]).hexdigest()


@pytest.fixture()
def three(tmp_path: Path) -> tuple[Path, UserKey, Identity]:
    key, device = UserKey(os.urandom(32)), Identity.generate()
    model = tmp_path / "m.bmodel"
    encrypt_model(QWEN, [key, PASSPHRASE, device.recipient], output=model)
    return model, key, device


def test_three_recipients_each_open_remove_one_add_it_back(
        three: tuple[Path, UserKey, Identity]) -> None:
    model, key, device = three
    weights = binary_region(model)
    for secret in (key, Passphrase("a fleet passphrase"), device):
        verify_model(model, secret)
    assert [r.type for r in list_model_recipients(model).recipients] == [
        "key file", "passphrase", "x25519"]

    report = change_model_recipients(model, key, remove=[str(device.recipient)])
    assert report.removed == (device.key_id_hex,) and len(report.recipients) == 2
    with pytest.raises(WrongKey):
        verify_model(model, device)
    verify_model(model, key)
    verify_model(model, Passphrase("a fleet passphrase"))
    assert binary_region(model) == weights  # no weight byte moved or changed

    change_model_recipients(model, key, add=[device.recipient])
    verify_model(model, device)
    assert binary_region(model) == weights
    # and by key id, as `rekey --remove-recipient KEYID`
    change_model_recipients(model, device, remove=[key.key_id_hex])
    with pytest.raises(WrongKey):
        verify_model(model, key)
    assert binary_region(model) == weights


def test_removing_the_last_recipient_the_caller_opens_with_is_refused(
        three: tuple[Path, UserKey, Identity]) -> None:
    model, key, device = three
    before = model.read_bytes()
    with pytest.raises(UsageError, match="last recipient you can open"):
        change_model_recipients(model, device, remove=[device.key_id_hex])
    with pytest.raises(UsageError, match="not a recipient"):
        change_model_recipients(model, device, remove=["0123456789abcdef"])
    with pytest.raises(UsageError, match="already a recipient"):
        change_model_recipients(model, device, add=[key])
    assert model.read_bytes() == before


def test_a_full_key_area_is_refused_with_a_hint(tmp_path: Path) -> None:
    key = UserKey(os.urandom(32))
    model = tmp_path / "m.bmodel"
    encrypt_model(MLP, [key, Identity.generate()], output=model, slots=2)
    before = model.read_bytes()
    with pytest.raises(SlotsFull) as err:
        change_model_recipients(model, key, add=[Identity.generate().recipient])
    assert "--rotate-data-key --recipient-slots" in (err.value.hint or "")
    assert model.read_bytes() == before
    # rotating the data key may choose a larger area
    rotate_data_key(model, key, [key, Identity.generate()], slots=3)
    change_model_recipients(model, key, add=[Identity.generate().recipient])
    assert len(list_model_recipients(model).recipients) == 3


def test_rotate_data_key_makes_the_old_data_key_useless(tmp_path: Path) -> None:
    key, device = UserKey(os.urandom(32)), Identity.generate()
    model = tmp_path / "m.bmodel"
    encrypt_model(QWEN, [key, device.recipient], output=model)
    original = hashlib.sha256(QWEN.read_bytes()).hexdigest()
    with open_encrypted(model, device) as o:  # what the device could have kept
        old: FileKeys = o.keys
    done = rotate_data_key(model, key, [key])
    assert done.dropped == (device.key_id_hex,)
    with pytest.raises(WrongKey):
        verify_model(model, device)
    data = model.read_bytes()
    (header_size,) = struct.unpack("<I", data[4:8])
    e2 = parse_header(data[header_size:header_size + 200], whole=False)
    raw_e2 = data[header_size:header_size + e2.envelope_len]
    with pytest.raises(Tampered):  # the old keys do not own any envelope of the new file
        unseal(raw_e2, old)
    # Even forcing the old DK onto the new envelope (bypassing the dk_check): no segment opens.
    forged = FileKeys(e2.file_id, b"", old._dk, version=2, key_area=old.key_area)
    out = bytearray(e2.plaintext_len)
    with pytest.raises(Tampered):
        open_segment_run(forged, e2.public, 0, raw_e2[e2.header_len:], out)
    # The new file still decrypts to the very same original.
    decrypt_model(model, key, output=tmp_path / "plain.bmodel")
    assert hashlib.sha256((tmp_path / "plain.bmodel").read_bytes()).hexdigest() == original


# ---------------------------------------------------------------- strings and files


def test_recipient_strings_round_trip_and_typos_are_refused() -> None:
    device = Identity.generate()
    text = str(device.recipient)
    assert text.startswith("bmcrypt1") and Recipient.parse(text) == device.recipient
    assert Recipient.parse(text.upper()) == device.recipient  # one case, either
    typo = text[:20] + ("q" if text[20] != "q" else "p") + text[21:]
    for bad in (typo, text[:-1], "age1" + text[8:], text[:10] + text[10:].upper(),
                bech32.encode("bmcrypt", bytes(31)), bech32.encode("other", bytes(32))):
        with pytest.raises(ValueError):
            Recipient.parse(bad)
    with pytest.raises(ValueError, match="small order"):
        Recipient(bytes(32))


def test_bech32_matches_bip173() -> None:
    # BIP 173's valid strings (their data regrouped to bytes) and invalid ones.
    data = bytes.fromhex("00443214c74254b635cf84653a56d7c675be77df")
    text = "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"
    assert bech32.decode("A12UEL5L", "a") == b""
    assert bech32.decode(text, "abcdef") == data and bech32.encode("abcdef", data) == text
    for bad in ("pzry9x0s0muk", "1pzry9x0s0muk", "x1b4n0q5v", "li1dgmt3", "A1G7SGD8"):
        with pytest.raises(ValueError):
            bech32.decode(bad, bad.lower()[:max(bad.lower().rfind("1"), 0)] or "x")


def test_identity_files_are_0600_checked_and_accepted_wherever_a_key_file_is(
        tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    device = generate_identity_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.stat().st_size == 72
    loaded = load_key_file(path)
    assert isinstance(loaded, Identity) and loaded.recipient == device.recipient
    with pytest.raises(KeyFileError):
        generate_identity_file(path)  # never overwritten
    damaged = tmp_path / "damaged.key"
    data = bytearray(path.read_bytes())
    data[30] ^= 1
    damaged.write_bytes(bytes(data))
    damaged.chmod(0o600)
    with pytest.raises(KeyFileError, match="checksum"):
        load_key_file(damaged)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="other users"):
        load_key_file(path)
    assert "r=" not in repr(device) and device._secret_bytes().hex() not in repr(device)


# ---------------------------------------------------------------- the command line


def test_cli_keygen_encrypt_for_recipients_and_rekey(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    made = bmcrypt("keygen", "--x25519", "-o", "dev.key")
    assert made.returncode == 0
    recipient = made.stdout.strip()
    assert Recipient.parse(recipient)
    again = bmcrypt("keygen", "-y", "dev.key")
    assert again.stdout == recipient + "\n" and again.stderr == ""
    doc = json_document(bmcrypt("keygen", "--x25519", "-o", "dev2.key", "--json"), "keygen")
    dev2 = doc["recipient"]
    assert bmcrypt("keygen", "-o", "admin.key").returncode == 0
    (tmp_path / "fleet.txt").write_text(f"# the fleet\n{dev2}  # rack 2\n\n")
    shutil.copyfile(MLP, "m.bmodel")

    enc = bmcrypt("encrypt", "-k", "admin.key", "-r", recipient, "-R", "fleet.txt",
                  "--recipient-slots", "4", "-o", "e.bmodel", "m.bmodel", "--json")
    assert json_document(enc, "encrypt")["files"][0]["key_ids"].__len__() == 3
    weights = binary_region(tmp_path / "e.bmodel")
    for key in ("admin.key", "dev.key", "dev2.key"):
        assert bmcrypt("verify", "-k", key, "e.bmodel").returncode == 0
    env_key = bmcrypt("verify", "e.bmodel", env={"BMCRYPT_KEY_FILE": "dev2.key"})
    assert env_key.returncode == 0

    listed = json_document(bmcrypt("rekey", "--list", "--json", "e.bmodel"), "rekey")
    assert listed["files"][0]["free_slots"] == 1
    removed = bmcrypt("rekey", "-k", "admin.key", "--remove-recipient", dev2, "e.bmodel",
                      "--json")
    assert json_document(removed, "rekey")["files"][0]["removed"]
    assert_clean_error(bmcrypt("verify", "-k", "dev2.key", "e.bmodel"), 4, "wrong key")
    added = bmcrypt("rekey", "-k", "admin.key", "--add-recipient", dev2, "--add-recipient",
                    bmcrypt("keygen", "--x25519", "-o", "dev3.key").stdout.strip(), "e.bmodel")
    assert added.returncode == 0, added.stderr
    full = bmcrypt("rekey", "-k", "admin.key", "--add-recipient",
                   bmcrypt("keygen", "--x25519", "-o", "dev4.key").stdout.strip(), "e.bmodel")
    assert_clean_error(full, 2, "room for 4 recipients")
    assert binary_region(tmp_path / "e.bmodel") == weights

    rotated = bmcrypt("rekey", "-k", "admin.key", "--rotate-data-key", "-R", "fleet.txt",
                      "e.bmodel", "--json")
    doc = json_document(rotated, "rekey")["files"][0]
    assert len(doc["dropped"]) == 2 and len(doc["key_ids"]) == 2
    assert_clean_error(bmcrypt("verify", "-k", "dev.key", "e.bmodel"), 4, "wrong key")
    assert bmcrypt("verify", "-k", "dev2.key", "e.bmodel").returncode == 0

    assert_clean_error(bmcrypt("encrypt", "-r", "bmcrypt1qqqq", "m.bmodel"), 2, "not a recipient")
    assert_clean_error(bmcrypt("encrypt", "-r", str(tmp_path), "m.bmodel"), 2, "not a recipient")


def test_cli_encrypts_for_a_key_file_a_passphrase_and_an_identity_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert bmcrypt("keygen", "-o", "a.key").returncode == 0
    device = bmcrypt("keygen", "--x25519", "-o", "dev.key").stdout.strip()
    shutil.copyfile(MLP, "m.bmodel")
    env = {"BMCRYPT_PASSPHRASE": "three ways in"}
    done = bmcrypt("encrypt", "-k", "a.key", "-p", "-r", device, "--no-backup", "m.bmodel",
                   env=env)
    assert done.returncode == 0, done.stderr
    types = [r.type for r in list_model_recipients(tmp_path / "m.bmodel").recipients]
    assert types == ["key file", "passphrase", "x25519"]
    for args, extra in ((["-k", "a.key"], None), (["-p"], env), (["-k", "dev.key"], None)):
        assert bmcrypt("verify", *args, "m.bmodel", env=extra).returncode == 0
