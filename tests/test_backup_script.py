"""scripts/backup.sh: the backup convention in bash, interchangeable with bmcrypt's own backups."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bmcrypt
from bmcrypt.errors import Corrupt, Locked
from bmcrypt.files import file_lock, make_backup, manifest_path, restore_backup, verify_backup

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "backup.sh"
MTIME_NS = 1_500_000_000_000_000_000


def run(*args: object, cwd: Path | None = None,
        prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, "bash", str(SCRIPT), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def errors(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line]


def listing(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.bmodel"
    path.write_bytes(os.urandom(200_000))
    path.chmod(0o640)
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return path


def test_help_describes_usage():
    result = run("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: backup.sh MODEL... [--dir DIR]")
    assert "--dir DIR" in result.stdout and result.stderr == ""


def test_backup_is_identical_with_a_manifest_that_sha256sum_and_bmcrypt_accept(model):
    result = run(model)
    assert result.returncode == 0, result.stderr
    backup = model.with_name("m.bmodel.bak")
    assert backup.read_bytes() == model.read_bytes()
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640 and backup.stat().st_mtime_ns == MTIME_NS
    assert subprocess.run(["sha256sum", "--status", "-c", "m.bmodel.bak.sha256"],
                          cwd=model.parent).returncode == 0
    assert verify_backup(model).path == backup
    assert listing(model.parent) == ["m.bmodel", "m.bmodel.bak", "m.bmodel.bak.sha256"]
    assert "backed up" in result.stdout


def test_an_identical_backup_is_skipped(model):
    assert run(model).returncode == 0
    inode = model.with_name("m.bmodel.bak").stat().st_ino
    again = run(model)
    assert again.returncode == 0
    assert "already holds an identical backup" in again.stdout and "skipped" in again.stdout
    assert model.with_name("m.bmodel.bak").stat().st_ino == inode


def test_a_different_backup_is_refused_and_the_others_still_go_on(tmp_path, model):
    backup = model.with_name("m.bmodel.bak")
    backup.write_bytes(b"an older backup")
    other = tmp_path / "other.bmodel"
    other.write_bytes(b"other model")
    result = run(model, other)
    assert result.returncode == 1
    assert errors(result) == [f"backup.sh: error: a different backup already exists at {backup}; "
                              "left it as it is (move it away or use --dir)"]
    assert backup.read_bytes() == b"an older backup"
    assert not manifest_path(backup).exists()
    assert (tmp_path / "other.bmodel.bak").read_bytes() == b"other model"


def test_an_identical_backup_whose_manifest_disagrees_is_refused(model):
    assert run(model).returncode == 0
    manifest = manifest_path(model.with_name("m.bmodel.bak"))
    manifest.write_text(f"{'0' * 64}  m.bmodel.bak\n")
    result = run(model)
    assert result.returncode == 1 and "manifest" in result.stderr
    assert manifest.read_text() == f"{'0' * 64}  m.bmodel.bak\n"


def test_dir_puts_backups_elsewhere_and_bmcrypt_finds_them(tmp_path, model):
    store = tmp_path / "store"
    store.mkdir()
    assert run(model, "--dir", store).returncode == 0
    assert listing(store) == ["m.bmodel.bak", "m.bmodel.bak.sha256"]
    assert listing(model.parent) == ["m.bmodel", "store"]
    reused = make_backup(model, backup_path=store)
    assert not reused.created and reused.path == store / "m.bmodel.bak"
    original = model.read_bytes()
    model.write_bytes(b"encrypted")
    restore_backup(model, store)
    assert model.read_bytes() == original


def test_the_script_skips_a_backup_bmcrypt_made(model):
    make_backup(model)
    result = run(model)
    assert result.returncode == 0 and "identical backup" in result.stdout


def test_bmcrypt_refuses_a_script_backup_that_was_damaged(model):
    assert run(model).returncode == 0
    with open(model.with_name("m.bmodel.bak"), "r+b") as f:
        f.write(b"\0damaged")
    with pytest.raises(Corrupt):
        restore_backup(model)


@pytest.mark.parametrize("name", ["sp ace.bmodel", "back\\slash.bmodel", "new\nline.bmodel",
                                  "-dash.bmodel"])
def test_odd_names_get_manifests_sha256sum_accepts(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"odd")
    result = run("--", name, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert subprocess.run(["sha256sum", "--status", "-c", "--", f"{name}.bak.sha256"],
                          cwd=tmp_path).returncode == 0
    assert verify_backup(path).path.read_bytes() == b"odd"


def test_a_symlinked_model_is_backed_up_next_to_the_link(tmp_path, model):
    link = tmp_path / "link.bmodel"
    link.symlink_to(model.name)
    assert run(link).returncode == 0
    assert (tmp_path / "link.bmodel.bak").read_bytes() == model.read_bytes()


def test_bad_paths_get_one_line_errors_and_the_rest_goes_on(tmp_path, model):
    result = run(tmp_path / "missing", tmp_path, model)
    assert result.returncode == 1
    assert errors(result) == [f"backup.sh: error: no such file: {tmp_path / 'missing'}",
                              f"backup.sh: error: {tmp_path} is a directory, not a model file"]
    assert model.with_name("m.bmodel.bak").exists()


def test_a_missing_dir_is_an_error(tmp_path, model):
    result = run(model, "--dir", tmp_path / "nowhere")
    assert result.returncode == 1
    assert errors(result) == [f"backup.sh: error: no such directory: {tmp_path / 'nowhere'}"]


@pytest.mark.parametrize("args, message", [
    ((), "no model given"),
    (("--dir",), "--dir needs a directory"),
    (("--bogus", "m"), "unknown option: --bogus"),
])
def test_usage_errors_exit_2(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert errors(result) == [f"backup.sh: error: {message}",
                              "backup.sh: hint: see backup.sh --help"]


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can enter (pytest's tmp_path is private to its owner)."""
    path = Path(tempfile.mkdtemp(prefix="bmcrypt-script-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_an_unwritable_directory_is_an_error(shared_dir):
    model = shared_dir / "m.bmodel"
    model.write_bytes(b"model")
    model.chmod(0o644)
    if os.geteuid() == 0:  # root writes anywhere: run the script as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv")
        prefix: tuple[str, ...] = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    else:
        shared_dir.chmod(0o555)
        prefix = ()
    try:
        result = run(model, prefix=prefix)
    finally:
        shared_dir.chmod(0o755)
    assert result.returncode == 1
    assert errors(result) == [f"backup.sh: error: cannot write to {shared_dir}: permission denied"]
    assert listing(shared_dir) == ["m.bmodel"]


HOLD_LOCK = """
import sys
from bmcrypt.files import file_lock
with file_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


@pytest.mark.parametrize("name", ["m.bmodel", "long-" + "x" * 220 + ".bmodel"])
def test_the_script_respects_bmcrypts_lock(tmp_path, name):
    """Also for names so long that the lock file's name is shortened: both must shorten alike."""
    model = tmp_path / name
    model.write_bytes(b"model")
    env = {**os.environ, "PYTHONPATH": str(Path(bmcrypt.__file__).resolve().parent.parent)}
    command = [sys.executable, "-c", textwrap.dedent(HOLD_LOCK), str(model)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                          env=env) as holder:
        assert holder.stdout.readline() == "locked\n"
        result = run(model)
        holder.kill()
    assert result.returncode == 1
    assert errors(result) == [f"backup.sh: error: {model} is being worked on by a bmcrypt process; "
                              "try again when it has finished"]
    assert not os.path.exists(f"{model}.bak")
    assert run(model).returncode == 0  # the holder is gone


def test_bmcrypt_sees_the_lock_the_script_holds(tmp_path, model):
    """While the script copies, bmcrypt must not start on the same model."""
    fake = tmp_path / "bin"
    fake.mkdir()
    # a `cp` that signals it started and then waits, so the script is caught holding its lock
    (fake / "cp").write_text(f'#!/bin/sh\necho started > "{tmp_path}/started"\n'
                             f'while [ ! -e "{tmp_path}/go" ]; do sleep 0.02; done\n'
                             f'exec /bin/cp "$@"\n')
    (fake / "cp").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    script = subprocess.Popen(["bash", str(SCRIPT), str(model)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(500):
            if (tmp_path / "started").exists():
                break
            script.poll()
            assert script.returncode is None, script.stderr.read()
            time.sleep(0.01)
        with pytest.raises(Locked):
            with file_lock(model):
                pass
    finally:
        (tmp_path / "go").touch()
        out, err = script.communicate(timeout=30)
    assert script.returncode == 0, err
    assert [n for n in listing(tmp_path) if ".bmcrypt-" in n] == []
