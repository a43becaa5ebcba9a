"""The exact round trip (issue 16, FORMAT.md §8.4): decrypting a version-2 file gives back the
original plain file byte for byte — in place, with -o, and with -o - — on every fixture; a
version-1 file still decrypts (to an equivalent file); a changed restore record is caught."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import bmcrypt, json_document
from conftest import FIXTURES

from bmcrypt.crypto import Kind, UserKey, new_file, seal, unseal
from bmcrypt.errors import Corrupt, Tampered
from bmcrypt.keys import generate_key_file
from bmcrypt.protect.opened import open_encrypted
from bmcrypt.protect.restore import parse_restore_record
from bmcrypt.workflow import decrypt_model, decrypt_to_stream, encrypt_model, verify_model

MODELS = sorted(FIXTURES.glob("*.bmodel"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def key(tmp_path: Path) -> Path:
    path = tmp_path / "k.key"
    generate_key_file(path)
    return path


@pytest.mark.parametrize("model", MODELS, ids=lambda p: p.stem)
def test_every_fixture_comes_back_byte_for_byte(model: Path, tmp_path: Path, key: Path) -> None:
    original = sha256(model)
    work = tmp_path / model.name
    shutil.copyfile(model, work)
    enc = tmp_path / "enc.bmodel"
    assert bmcrypt("encrypt", "-k", key, "-o", enc, work).returncode == 0
    assert sha256(enc) != original

    # -o FILE
    out = tmp_path / "out.bmodel"
    done = bmcrypt("decrypt", "-k", key, "-o", out, enc, "--json")
    assert done.returncode == 0, done.stderr
    assert sha256(out) == original
    assert json_document(done, "decrypt")["files"][0]["original_sha256"] == original

    # -o - (stdout, binary)
    piped = subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", "decrypt", "-k",
                            str(key), "-o", "-", str(enc)], capture_output=True, timeout=300,
                           env={k: v for k, v in os.environ.items()
                                if not k.startswith("BMCRYPT_")})
    assert piped.returncode == 0, piped.stderr
    assert hashlib.sha256(piped.stdout).hexdigest() == original

    # in place
    assert bmcrypt("decrypt", "-k", key, enc).returncode == 0
    assert sha256(enc) == original


def test_in_place_encrypt_then_decrypt_restores_the_file(tmp_path: Path, key: Path) -> None:
    model = tmp_path / "m.bmodel"
    shutil.copyfile(MODELS[0], model)
    original = sha256(model)
    assert bmcrypt("encrypt", "-k", key, "--no-backup", model).returncode == 0
    assert bmcrypt("decrypt", "-k", key, model).returncode == 0
    assert sha256(model) == original


def test_inspect_with_the_key_reports_the_originals_sha256(tmp_path: Path, key: Path) -> None:
    enc = tmp_path / "enc.bmodel"
    assert bmcrypt("encrypt", "-k", key, "-o", enc, MODELS[0]).returncode == 0
    opened = json_document(bmcrypt("inspect", "--json", "-k", key, enc), "inspect")
    info = opened["files"][0]["encryption"] if "files" in opened else opened["encryption"]
    assert info["original_sha256"] == sha256(MODELS[0])
    assert info["original_size"] == MODELS[0].stat().st_size
    shown = bmcrypt("inspect", "-k", key, enc)
    assert sha256(MODELS[0]) in shown.stdout
    closed = json_document(bmcrypt("inspect", "--json", enc), "inspect")
    info = closed["files"][0]["encryption"] if "files" in closed else closed["encryption"]
    assert info["original_sha256"] is None  # not without the key: the digest is encrypted


def test_a_version_1_file_still_decrypts_to_an_equivalent_model(tmp_path: Path) -> None:
    from bmcrypt.bmodel.reader import open_mapped
    from bmcrypt.protect.seal import seal_bmodel

    k = UserKey(os.urandom(32))
    enc = tmp_path / "v1.bmodel"
    with open_mapped(MODELS[0]) as src, open(enc, "wb") as f:
        seal_bmodel(src, f, new_file(k, version=1))
    report = verify_model(enc, k)
    assert report.original_sha256 is None
    decrypt_model(enc, k, output=tmp_path / "plain.bmodel")
    with open_mapped(tmp_path / "plain.bmodel") as plain:  # a valid plain model
        assert plain.raw.file_size > 0


def _reseal_e2(enc: Path, k: UserKey, change: Callable[[bytearray], None]) -> None:
    """Rewrite E₂ of `enc` with its plaintext changed by `change` (same length), as someone
    holding the key could: the file authenticates, only the restore record says otherwise."""
    with open_encrypted(enc, k) as o:
        e2_start, e2_len = o.header_size, o.flatbuffers_size
        keys = o.keys
        full = bytearray(unseal(bytes(o.mm[e2_start:e2_start + e2_len]), keys))
    change(full)
    new_e2 = seal(keys, Kind.FLATBUFFER, bytes(full), seg_log2=20)
    assert len(new_e2) == e2_len
    data = bytearray(enc.read_bytes())
    data[e2_start:e2_start + e2_len] = new_e2
    enc.write_bytes(bytes(data))


def test_a_changed_restore_record_is_refused(tmp_path: Path) -> None:
    k = UserKey(os.urandom(32))
    enc = tmp_path / "enc.bmodel"
    encrypt_model(MODELS[0], k, output=enc)
    with open_encrypted(enc, k) as o:
        fb_len = o.manifest.flatbuffer_len
        record = o.restore
    assert record is not None
    header_byte = fb_len + 40 + 20  # a byte of the original header in the record

    def flip_header(full: bytearray) -> None:
        full[header_byte] ^= 1

    _reseal_e2(enc, k, flip_header)
    with pytest.raises(Tampered, match="original"):
        decrypt_model(enc, k, output=tmp_path / "out.bmodel")
    assert not (tmp_path / "out.bmodel").exists()  # nothing written when it fails
    with pytest.raises(Tampered):
        decrypt_to_stream(enc, k, io.BytesIO())

    def bad_extent(full: bytearray) -> None:
        at = fb_len + len(record.pack()) - 32 + 16  # new_off of the last extent
        full[at] ^= 0x40

    enc2 = tmp_path / "enc2.bmodel"
    encrypt_model(MODELS[0], k, output=enc2)
    with open_encrypted(enc2, k) as o:
        fb_len = o.manifest.flatbuffer_len
        record = o.restore
    _reseal_e2(enc2, k, bad_extent)
    with pytest.raises(Corrupt, match="restore extent"):
        verify_model(enc2, k)


def test_restore_record_parser_refuses_inconsistent_lengths() -> None:
    with pytest.raises(Corrupt):
        parse_restore_record(b"\0" * 119)
    with pytest.raises(Corrupt):
        parse_restore_record(b"\0" * 121)
