"""Symbolic links planted at the names bmcrypt derives are refused, never followed (issue 12).

As root in a directory others can write to, following `MODEL.bak.sha256 -> /etc/passwd` would let
anybody aim bmcrypt's writes at any file. Every derived name (backup, manifest, lock, journal) is
planted as a link to a file elsewhere and as a dangling link, under every command that writes
it; the command must fail with exit 8 and one line naming the link, and the target must be
exactly as it was (same bytes, inode and mode) or still absent.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt
from conftest import MLP

FILES = 8


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "models"


def fingerprint(path: Path) -> tuple[bytes, int, int] | None:
    if not os.path.lexists(path):
        return None
    st = path.stat()
    return path.read_bytes(), st.st_ino, stat.S_IMODE(st.st_mode)


def plant(link: Path, dangling: bool) -> Path:
    """A link at `link` to a victim file in another directory (or to a missing one there)."""
    victim = link.parent.parent / "elsewhere" / f"victim-of-{link.name}"
    if not dangling:
        victim.write_bytes(b"precious, not bmcrypt's\n")
        victim.chmod(0o600)
    link.symlink_to(victim)
    return victim


def derived(model: Path, which: str, backup: Path | None = None) -> Path:
    backup = backup or model.with_name(model.name + ".bak")
    return {
        "backup": backup,
        "manifest": backup.with_name(backup.name + ".sha256"),
        "lock": model.with_name(f".{model.name}.bmcrypt-lock"),
        "journal": model.with_name(f".{model.name}.bmcrypt-journal"),
    }[which]


def check_refused(result, link: Path, victim: Path, before) -> None:
    assert_clean_error(result, FILES, "refusing to follow the symbolic link", link.name)
    assert fingerprint(victim) == before
    assert os.path.islink(link)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("which", ["backup", "manifest", "lock"])
def test_backup_refuses_a_link_at_every_derived_name(workdir, which, dangling):
    model = workdir / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    link = derived(model, which)
    victim = plant(link, dangling)
    before = fingerprint(victim)
    check_refused(bmcrypt("backup", model), link, victim, before)
    assert model.read_bytes() == MLP.read_bytes()


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("which", ["backup", "manifest", "lock", "journal"])
def test_encrypt_refuses_a_link_at_every_derived_name(workdir, key, which, dangling):
    model = workdir / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    link = derived(model, which)
    victim = plant(link, dangling)
    before = fingerprint(victim)
    check_refused(bmcrypt("encrypt", model, "--key", key), link, victim, before)
    assert model.read_bytes() == MLP.read_bytes()


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("which", ["backup", "manifest", "lock", "journal"])
def test_decrypt_with_backup_refuses_a_link_at_every_derived_name(workdir, key, which, dangling):
    model = workdir / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    assert bmcrypt("encrypt", model, "--key", key, "--no-backup").returncode == 0
    sealed = model.read_bytes()
    link = derived(model, which, backup=workdir / "x.keep")
    victim = plant(link, dangling)
    before = fingerprint(victim)
    result = bmcrypt("decrypt", model, "--key", key, "--backup", workdir / "x.keep")
    check_refused(result, link, victim, before)
    assert model.read_bytes() == sealed


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
@pytest.mark.parametrize("which", ["lock", "journal"])
def test_rekey_refuses_a_link_at_the_lock_and_the_journal(workdir, key, which, dangling):
    model = workdir / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    assert bmcrypt("encrypt", model, "--key", key, "--no-backup").returncode == 0
    new = workdir.parent / "new"
    assert bmcrypt("keygen", "-o", new).returncode == 0
    sealed = model.read_bytes()
    link = derived(model, which)
    victim = plant(link, dangling)
    before = fingerprint(victim)
    check_refused(bmcrypt("rekey", model, "--key", key, "--new-key", new), link, victim, before)
    assert model.read_bytes() == sealed


def test_restore_refuses_a_backup_that_is_a_link(workdir):
    model = workdir / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    assert bmcrypt("backup", model).returncode == 0
    backup = derived(model, "backup")
    moved = workdir.parent / "elsewhere" / "m.bak"
    os.rename(backup, moved)
    backup.symlink_to(moved)
    model.write_bytes(b"changed")
    check_refused(bmcrypt("restore", model), backup, moved, fingerprint(moved))
    assert model.read_bytes() == b"changed"


def test_the_model_itself_may_be_a_link_and_is_written_through(workdir, key):
    real = workdir.parent / "elsewhere" / "real.bmodel"
    real.write_bytes(MLP.read_bytes())
    link = workdir / "m.bmodel"
    link.symlink_to(real)
    result = bmcrypt("encrypt", link, "--key", key)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and real.read_bytes() != MLP.read_bytes()
    assert (workdir / "m.bmodel.bak").read_bytes() == MLP.read_bytes()


def test_temp_files_are_created_exclusively_never_through_a_link(tmp_path):
    from bmcrypt.files.opening import create_new, open_dir

    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / ".m.bmcrypt-tmp-aaaaaaaa").symlink_to(victim)
    (tmp_path / ".m.bmcrypt-tmp-bbbbbbbb").symlink_to(tmp_path / "missing")
    fd = open_dir(tmp_path)
    try:
        for name in (".m.bmcrypt-tmp-aaaaaaaa", ".m.bmcrypt-tmp-bbbbbbbb"):
            with pytest.raises(FileExistsError):
                create_new(fd, name, tmp_path)
    finally:
        os.close(fd)
    assert victim.read_bytes() == b"keep" and not (tmp_path / "missing").exists()
