"""Spec of encrypt / decrypt / verify / rekey / restore on whole files (docs/FORMAT.md §2, §6)."""

from __future__ import annotations

import hashlib
import os
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import synth
from conftest import BMODEL_FIXTURES, MLP, QWEN

from bmcrypt import workflow
from bmcrypt.bmodel.reader import open_mapped, read_bmodel
from bmcrypt.crypto import Passphrase, UserKey
from bmcrypt.errors import (
    AlreadyEncrypted,
    BackupConflict,
    BmcryptError,
    Corrupt,
    InputFileError,
    NotEncrypted,
    Tampered,
    Truncated,
    UnknownNet,
    WrongKey,
)
from bmcrypt.files import atomic as atomic_module
from bmcrypt.files import backup as backup_module
from bmcrypt.files import sha256_file, verify_backup
from bmcrypt.protect.opened import open_encrypted
from bmcrypt.protect.unseal import unseal_file
from bmcrypt.runtime import check_load, run_isolated

KEY = UserKey(bytes(range(32)))
OTHER = UserKey(bytes(range(1, 33)))

SYNTHETIC: dict[str, Callable[[], bytes]] = {
    **synth.EDGE_CASES,
    "compact": lambda: synth.many_nets(5, align=1),
}


def copy_of(src: Path, tmp_path: Path, name: str | None = None) -> Path:
    dst = tmp_path / (name or src.name)
    dst.write_bytes(src.read_bytes())
    return dst


def weights(path: Path) -> dict[bytes, bytes]:
    """check_code -> the weight bytes, read from a plain model."""
    out = {}
    with open_mapped(path) as m:
        for region in read_bmodel(path).coeff_regions:
            out[region.check_code] = bytes(m.binary(region.start, region.size))
    return out


@pytest.fixture(params=[*BMODEL_FIXTURES, *SYNTHETIC], ids=lambda p: getattr(p, "stem", p))
def plain_model(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if isinstance(request.param, Path):
        return copy_of(request.param, tmp_path)
    path = tmp_path / f"{request.param}.bmodel"
    path.write_bytes(SYNTHETIC[request.param]())
    return path


# ---------------------------------------------------------------- round trips


def test_encrypt_verify_decrypt_gives_back_every_weight_byte(plain_model: Path, tmp_path: Path):
    original = weights(plain_model)
    regions = {(r.start, r.size) for r in read_bmodel(plain_model).coeff_regions if r.size}
    enc = workflow.encrypt_model(plain_model, KEY, output=tmp_path / "enc.bmodel").target
    report = workflow.verify_model(enc, KEY)
    assert (report.weight_regions, report.weight_bytes) == (len(regions),
                                                            sum(s for _, s in regions))
    dec = workflow.decrypt_model(enc, KEY, output=tmp_path / "dec.bmodel").target
    assert weights(dec) == original
    before, after = read_bmodel(plain_model), read_bmodel(dec)
    assert [n.name for n in after.nets] == [n.name for n in before.nets]
    assert after.device_mem == before.device_mem


def test_no_weight_byte_is_left_in_clear(tmp_path: Path):
    model = copy_of(QWEN, tmp_path)
    windows = [w[i:i + 64] for w in weights(model).values() if len(w) >= 64
               for i in range(0, len(w) - 64, 512)]
    windows = [w for w in windows if len(set(w)) > 16]  # real weights, not zero padding
    assert len(windows) > 100
    workflow.encrypt_model(model, KEY, backup=False)
    data = model.read_bytes()
    assert not [w for w in windows if w in data]


def test_the_encrypted_file_keeps_the_vendor_layout(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    data = model.read_bytes()
    magic, header_size = struct.unpack("<II", data[:8])
    assert magic == 0xFF55AAEE
    # FORMAT.md §2, §8.1: 8 + len(E1), E1 = 104 + key area (16 + 128 × 16 slots) + 56 + 16
    assert header_size == 8 + 104 + 2064 + 56 + 16
    assert data[8:12] == b"BMCE" and data[header_size:header_size + 4] == b"BMCE"


@pytest.mark.runtime
@pytest.mark.parametrize("fixture", BMODEL_FIXTURES, ids=lambda p: p.stem)
def test_decrypted_model_loads_in_the_vendor_runtime_with_exact_weights(fixture: Path,
                                                                         tmp_path: Path):
    model = copy_of(fixture, tmp_path)
    workflow.encrypt_model(model, KEY)
    workflow.decrypt_model(model, KEY)
    report = run_isolated(check_load, str(model))
    assert report.trace_errors == 0
    assert report.nets == run_isolated(check_load, str(fixture)).nets


# ---------------------------------------------------------------- in place, backups, outputs


def test_in_place_encrypt_makes_a_verified_backup_first(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    done = workflow.encrypt_model(model, KEY)
    assert done.backup is not None and done.backup.created
    assert done.backup.path == tmp_path / "mlp_bm1684x_f16_nokernel.bmodel.bak"
    assert done.backup.path.read_bytes() == MLP.read_bytes()
    manifest = (tmp_path / "mlp_bm1684x_f16_nokernel.bmodel.bak.sha256").read_text()
    assert manifest.split()[0] == hashlib.sha256(MLP.read_bytes()).hexdigest()
    assert workflow.file_state(model) == "bmcrypt"


def test_in_place_the_models_own_file_becomes_its_checked_backup(tmp_path: Path):
    # Nothing is copied: the model's inode takes the backup's name (checked from the disk
    # against what the seal hashed), and the sealed file takes the model's name.
    model = copy_of(MLP, tmp_path)
    os.chmod(model, 0o640)
    os.utime(model, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    before = model.stat()
    done = workflow.encrypt_model(model, KEY)
    assert done.backup is not None and done.backup.created
    backup = done.backup.path.stat()
    assert (backup.st_ino, backup.st_nlink) == (before.st_ino, 1)
    assert (backup.st_mode, backup.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    assert model.stat().st_ino != before.st_ino and done.other_links == 0
    assert done.backup.path.read_bytes() == MLP.read_bytes()
    assert verify_backup(model).sha256 == hashlib.sha256(MLP.read_bytes()).hexdigest()


def test_a_model_with_other_hard_links_gets_a_copy_as_its_backup(tmp_path: Path):
    # A link shared with another name would let a write through that name change the backup.
    model = copy_of(MLP, tmp_path)
    other = tmp_path / "deployed.bmodel"
    os.link(model, other)
    done = workflow.encrypt_model(model, KEY)
    assert done.backup is not None and done.other_links == 1
    assert done.backup.path.stat().st_ino != other.stat().st_ino
    assert done.backup.path.read_bytes() == other.read_bytes() == MLP.read_bytes()
    with open(other, "r+b") as f:  # the other name is the user's: writing it leaves the backup
        f.write(b"\0" * 16)
    assert done.backup.path.read_bytes() == MLP.read_bytes()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm")
def test_a_backup_on_another_filesystem_is_a_checked_copy(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        if os.stat(elsewhere).st_dev == model.stat().st_dev:
            pytest.skip("/dev/shm is on the same filesystem here")
        done = workflow.encrypt_model(model, KEY, backup_path=elsewhere)
        assert done.backup is not None and done.backup.path.parent == Path(elsewhere)
        assert done.backup.path.read_bytes() == MLP.read_bytes()
        assert verify_backup(model, elsewhere).created is False


def test_the_backup_is_named_before_the_sealed_file_replaces_the_model(tmp_path: Path,
                                                                     monkeypatch):
    # The backup's check from the disk runs while the model is sealed; the commit must wait.
    model = copy_of(QWEN, tmp_path)
    backup = tmp_path / f"{model.name}.bak"
    seen_at_commit = []
    real_commit = atomic_module.commit_replace

    def commit_and_look(tmp, target):
        if target == model:
            manifest = backup.with_name(backup.name + ".sha256")
            seen_at_commit.append((backup.exists(), manifest.exists()))
        real_commit(tmp, target)

    monkeypatch.setattr(atomic_module, "commit_replace", commit_and_look)
    workflow.encrypt_model(model, KEY)
    assert seen_at_commit == [(True, True)]


def test_a_backup_that_reads_back_wrong_stops_the_encryption(tmp_path: Path, monkeypatch):
    model = copy_of(QWEN, tmp_path)
    monkeypatch.setattr(backup_module, "hash_from_disk", lambda *a, **k: ("0" * 64, 0))
    with pytest.raises(Corrupt, match="read back"):
        workflow.encrypt_model(model, KEY)
    assert model.read_bytes() == QWEN.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [model.name]


def test_a_failed_seal_leaves_the_model_and_at_most_a_verified_backup(tmp_path: Path,
                                                                    monkeypatch):
    model = copy_of(QWEN, tmp_path)

    def seal_fails(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workflow, "seal_bmodel", seal_fails)
    with pytest.raises(OSError, match="No space"):
        workflow.encrypt_model(model, KEY)
    assert model.read_bytes() == QWEN.read_bytes()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left in ([model.name], [model.name, f"{model.name}.bak", f"{model.name}.bak.sha256"])
    if len(left) == 3:
        workflow.restore_model(model)  # a backup that exists is a verified one


def test_restore_puts_the_original_back_byte_for_byte(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, KEY)
    workflow.restore_model(model)
    assert model.read_bytes() == MLP.read_bytes()


def test_an_existing_different_backup_is_never_overwritten(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    (tmp_path / f"{model.name}.bak").write_bytes(b"someone else's backup")
    with pytest.raises(BackupConflict):
        workflow.encrypt_model(model, KEY)
    assert model.read_bytes() == MLP.read_bytes()
    assert (tmp_path / f"{model.name}.bak").read_bytes() == b"someone else's backup"


def test_output_file_leaves_the_model_alone_and_is_never_overwritten(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    out = tmp_path / "out.bmodel"
    workflow.encrypt_model(model, KEY, output=out)
    assert model.read_bytes() == MLP.read_bytes()
    assert not (tmp_path / f"{model.name}.bak").exists()
    with pytest.raises(InputFileError, match="already exists"):
        workflow.encrypt_model(model, KEY, output=out)


def test_nothing_but_the_model_and_its_backup_is_left_behind(tmp_path: Path):
    model = copy_of(QWEN, tmp_path)
    workflow.encrypt_model(model, KEY)
    workflow.verify_model(model, KEY)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [model.name, f"{model.name}.bak", f"{model.name}.bak.sha256"]


# ---------------------------------------------------------------- selected nets


def test_only_the_selected_nets_are_encrypted_and_shared_weights_follow(tmp_path: Path):
    model = copy_of(QWEN, tmp_path)
    done = workflow.encrypt_model(model, KEY, nets={"embedding"}, backup=False)
    # embedding_cache shares its weights with embedding: one envelope serves both.
    assert done.report.sealed_nets == ("embedding", "embedding_cache")
    with open_encrypted(model, KEY) as opened:
        report = unseal_file(opened)
    assert report.weight_regions == 1


def test_an_unknown_net_name_is_an_error_listing_the_nets(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    # A usage error (exit 2), found before the backup: the command line is wrong, not the file.
    with pytest.raises(UnknownNet, match="no net named 'mpl'") as err:
        workflow.encrypt_model(model, KEY, nets={"mpl"})
    assert err.value.exit_code == 2
    assert "mlp" in (err.value.hint or "")
    assert model.read_bytes() == MLP.read_bytes()
    assert not Path(f"{model}.bak").exists()


# ---------------------------------------------------------------- states and keys


def test_an_encrypted_model_is_refused_and_left_untouched(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    before = model.read_bytes()
    with pytest.raises(AlreadyEncrypted, match="by bmcrypt"):
        workflow.encrypt_model(model, OTHER, backup=False)
    assert model.read_bytes() == before


def test_a_foreign_encrypted_model_is_refused(tmp_path: Path):
    data = bytearray(MLP.read_bytes())
    data[8:64] = bytes(b ^ 0xFF for b in data[8:64])  # the vendor sample cipher: bitwise NOT
    model = tmp_path / "foreign.bmodel"
    model.write_bytes(data)
    with pytest.raises(AlreadyEncrypted, match="not by bmcrypt"):
        workflow.encrypt_model(model, KEY)
    assert model.read_bytes() == data


def test_verify_of_a_plain_model_says_it_is_not_encrypted(tmp_path: Path):
    with pytest.raises(NotEncrypted):
        workflow.verify_model(copy_of(MLP, tmp_path), KEY)


def test_a_wrong_key_is_a_wrong_key_not_tampering(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    with pytest.raises(WrongKey, match=KEY.key_id_hex):
        workflow.verify_model(model, OTHER)


def test_a_truncated_encrypted_model_is_reported_as_truncated(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    data = model.read_bytes()
    for cut in (len(data) - 1, len(data) - 5000, 3000, 300, 100):
        model.write_bytes(data[:cut])
        with pytest.raises(Truncated):
            workflow.verify_model(model, KEY)


def test_a_passphrase_works_like_a_key(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, Passphrase("correct horse"), backup=False)
    workflow.verify_model(model, Passphrase("correct horse"))
    with pytest.raises(WrongKey):
        workflow.verify_model(model, Passphrase("battery staple"))


# ---------------------------------------------------------------- rekey


def test_rekey_opens_with_the_new_key_only_and_never_touches_the_weights(tmp_path: Path):
    model = copy_of(QWEN, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    before = model.read_bytes()
    report = workflow.rekey_model(model, KEY, OTHER)
    assert report.envelopes == 1  # version 2: only E₁'s key area (FORMAT.md §8.2)
    workflow.verify_model(model, OTHER)
    with pytest.raises(WrongKey):
        workflow.verify_model(model, KEY)
    after = model.read_bytes()
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    # Only the stanza of the old key, in E₁'s key area (after the 8 clear bytes and the
    # 104-byte public header, past the key area's 16-byte head): 128 bytes at most.
    assert len(before) == len(after) and changed
    assert 8 + 104 + 16 <= min(changed) and max(changed) < 8 + 104 + 16 + 128


def test_rekey_from_a_key_to_a_passphrase_and_back(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    workflow.rekey_model(model, KEY, Passphrase("pass phrase"))
    workflow.verify_model(model, Passphrase("pass phrase"))
    workflow.rekey_model(model, Passphrase("pass phrase"), OTHER)
    workflow.verify_model(model, OTHER)


def test_rekey_of_a_plain_model_is_refused(tmp_path: Path):
    with pytest.raises(NotEncrypted):
        workflow.rekey_model(copy_of(MLP, tmp_path), KEY, OTHER)


# ---------------------------------------------------------------- tampering


def _encrypted_small(tmp_path: Path) -> bytes:
    model = tmp_path / "small.bmodel"
    model.write_bytes(synth.simple(align=1, coeff=b"\x5a" * 300))
    workflow.encrypt_model(model, KEY, backup=False)
    return model.read_bytes()


def _verify_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    with open_encrypted(path, KEY) as opened:
        unseal_file(opened)


def test_every_single_byte_flip_is_detected_and_never_reads_as_a_wrong_key(tmp_path: Path):
    data = _encrypted_small(tmp_path)
    probe = tmp_path / "probe.bmodel"
    _verify_bytes(probe, data)  # the unmodified file verifies
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 0x01
        with pytest.raises(BmcryptError) as err:
            _verify_bytes(probe, bytes(flipped))
        assert not isinstance(err.value, WrongKey), (i, err.value)


def test_byte_flips_in_a_real_model_are_detected(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    data = model.read_bytes()
    probe = tmp_path / "probe.bmodel"
    for i in [*range(0, 400), *range(400, len(data), 97), len(data) - 1]:
        flipped = bytearray(data)
        flipped[i] ^= 0x80
        with pytest.raises(BmcryptError):
            _verify_bytes(probe, bytes(flipped))


def test_a_flip_in_the_weights_names_the_net(tmp_path: Path):
    model = copy_of(QWEN, tmp_path)
    workflow.encrypt_model(model, KEY, backup=False)
    with open_encrypted(model, KEY) as opened:
        binary_offset = opened.binary_offset
        net, coeff = next((n, c) for n, _s, c in _coeffs(opened) if c.encryptMode == 1)
    data = bytearray(model.read_bytes())
    data[binary_offset + coeff.binaryCoeff.start + 4000] ^= 1
    model.write_bytes(data)
    with pytest.raises(Tampered, match=f"weights of net '{net}' were changed"):
        workflow.verify_model(model, KEY)


def _coeffs(opened):  # type: ignore[no-untyped-def]
    from bmcrypt.protect.region_plan import coeff_mems

    return list(coeff_mems(opened.unpack()))


def test_sealing_refuses_weights_that_do_not_match_their_check_code(tmp_path: Path):
    model = tmp_path / "damaged.bmodel"
    data = bytearray(synth.simple(coeff=b"\x01" * 1000))
    region = read_bmodel_from_bytes(tmp_path, bytes(data)).coeff_regions[0]
    data[region.offset + 10] ^= 0xFF
    model.write_bytes(data)
    with pytest.raises(BmcryptError, match="check_code"):
        workflow.encrypt_model(model, KEY)
    assert model.read_bytes() == data
    assert sha256_file(model) == hashlib.sha256(data).hexdigest()
    # Checked before copying (issue 12): a model that fails is not backed up first.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.bmodel", "probe"]


def read_bmodel_from_bytes(tmp_path: Path, data: bytes):  # type: ignore[no-untyped-def]
    path = tmp_path / "probe"
    path.write_bytes(data)
    return read_bmodel(path)


def test_key_material_never_appears_in_reports(tmp_path: Path):
    model = copy_of(MLP, tmp_path)
    done = workflow.encrypt_model(model, KEY, backup=False)
    report = workflow.verify_model(model, KEY)
    secret = bytes(range(32)).hex()
    for text in (repr(done), repr(report), repr(KEY), str(os.environ)):
        assert secret not in text
