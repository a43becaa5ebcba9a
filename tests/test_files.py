"""bmcrypt.files: backups, atomic replacement, locks, stale temp files and the patch journal.

Read as a spec: each test names one promise. The crash tests kill -9 a child process at random
moments of an operation and check what the promise says about every possible moment.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pickle
import random
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bmcrypt
from bmcrypt.errors import BackupConflict, Corrupt, InputFileError, Locked, Truncated
from bmcrypt.files import (
    atomic_write,
    cleanup_stale_temps,
    file_lock,
    hashing,
    journal_path,
    lock_path,
    make_backup,
    manifest_path,
    patch_in_place,
    recover_journal,
    restore_backup,
    sha256_file,
    verify_backup,
)
from bmcrypt.files import backup as backup_module
from bmcrypt.files import journal as journal_module
from bmcrypt.files.sha256sum import format_manifest, parse_manifest

PACKAGE_ROOT = str(Path(bmcrypt.__file__).resolve().parent.parent)
MTIME_NS = 1_600_000_000_123_456_789


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def debris(directory: Path) -> list[str]:
    """Helper files a finished run must not leave: temp files, lock files, journals."""
    return sorted(n for n in os.listdir(directory) if ".bmcrypt-" in n)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.bmodel"
    path.write_bytes(os.urandom(300_000))
    path.chmod(0o640)
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return path


# ---------------------------------------------------------------- sha256_file


@pytest.mark.parametrize("size", [0, 4095, 4096, 4097, 3 * 4096 + 1])
def test_sha256_file_streams_in_chunks_around_the_chunk_size(tmp_path, monkeypatch, size):
    monkeypatch.setattr(hashing, "CHUNK_SIZE", 4096)
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    seen: list[int] = []
    assert sha256_file(tmp_path / "f", progress=seen.append) == sha(data)
    assert sum(seen) == size and all(0 < n <= 4096 for n in seen)


def test_sha256_file_refuses_missing_files_and_directories(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        sha256_file(tmp_path / "missing")
    with pytest.raises(InputFileError, match="is a directory"):
        sha256_file(tmp_path)


# ---------------------------------------------------------------- atomic_write


def test_atomic_write_replaces_content_keeps_mode_and_supports_seek(model):
    with atomic_write(model) as f:
        f.write(b"\0" * 8 + b"body")
        f.seek(0)
        f.write(b"HEADER!!")
    assert model.read_bytes() == b"HEADER!!body"
    assert stat.S_IMODE(model.stat().st_mode) == 0o640
    assert debris(model.parent) == []


def test_atomic_write_temp_is_private_and_hidden_next_to_the_target(model):
    with atomic_write(model, mode=0o644) as f:
        f.write(b"x")
        temps = [p for p in model.parent.iterdir() if p.name.startswith(".m.bmodel.bmcrypt-tmp-")]
        assert len(temps) == 1 and stat.S_IMODE(temps[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(model.stat().st_mode) == 0o644


def test_atomic_write_mode_comes_from_mode_from_or_the_umask_for_new_files(tmp_path, model):
    with atomic_write(tmp_path / "copy", mode_from=model) as f:
        f.write(b"x")
    assert stat.S_IMODE((tmp_path / "copy").stat().st_mode) == 0o640
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_leaves_target_untouched_and_no_temp_on_exception(model, exc):
    before = model.read_bytes()
    with pytest.raises(exc):
        with atomic_write(model) as f:
            f.write(b"partial" * 100_000)
            raise exc()
    assert model.read_bytes() == before
    assert debris(model.parent) == []


def test_atomic_write_writes_through_a_symlink(tmp_path, model):
    link = tmp_path / "link.bmodel"
    link.symlink_to(model.name)
    with atomic_write(link) as f:
        f.write(b"new")
    assert link.is_symlink() and model.read_bytes() == b"new"


def test_atomic_write_refuses_a_directory_target(tmp_path):
    with pytest.raises(InputFileError, match="is a directory"):
        with atomic_write(tmp_path):
            pass


# ---------------------------------------------------------------- make_backup


def test_backup_is_byte_identical_with_valid_manifest_mode_and_mtime(model):
    result = make_backup(model)
    backup = model.with_name("m.bmodel.bak")
    assert result.path == backup and result.created
    assert backup.read_bytes() == model.read_bytes() and result.sha256 == sha(model.read_bytes())
    assert result.manifest == manifest_path(backup) == model.with_name("m.bmodel.bak.sha256")
    assert result.manifest.read_text() == f"{result.sha256}  m.bmodel.bak\n"
    check = subprocess.run(["sha256sum", "-c", result.manifest.name], cwd=model.parent,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert stat.S_IMODE(backup.stat().st_mode) == 0o640
    assert backup.stat().st_mtime_ns == MTIME_NS
    assert debris(model.parent) == []


def test_backup_progress_counts_copy_and_verification(model):
    seen: list[int] = []
    make_backup(model, progress=seen.append)
    assert sum(seen) == 2 * model.stat().st_size and all(n > 0 for n in seen)


def test_identical_existing_backup_is_reused_not_rewritten(model):
    first = make_backup(model)
    inode = first.path.stat().st_ino
    first.manifest.unlink()  # e.g. a hand-made `cp` backup: the manifest gets added
    again = make_backup(model)
    assert not again.created and again.sha256 == first.sha256
    assert again.path.stat().st_ino == inode
    assert again.manifest.read_text() == f"{first.sha256}  m.bmodel.bak\n"


def test_different_existing_backup_is_never_overwritten(model):
    backup = model.with_name("m.bmodel.bak")
    backup.write_bytes(b"someone else's backup")
    manifest_path(backup).write_text("not touched either\n")
    before = model.read_bytes()
    with pytest.raises(BackupConflict, match="different backup"):
        make_backup(model)
    assert backup.read_bytes() == b"someone else's backup"
    assert manifest_path(backup).read_text() == "not touched either\n"
    assert model.read_bytes() == before and debris(model.parent) == []


def test_identical_backup_with_a_disagreeing_manifest_is_a_conflict(model):
    result = make_backup(model)
    result.manifest.write_text(f"{'0' * 64}  m.bmodel.bak\n")
    with pytest.raises(BackupConflict, match="manifest"):
        make_backup(model)
    assert result.manifest.read_text() == f"{'0' * 64}  m.bmodel.bak\n"


def test_backup_path_may_be_a_file_or_a_directory(tmp_path, model):
    (tmp_path / "dir").mkdir()
    assert make_backup(model, tmp_path / "dir").path == tmp_path / "dir" / "m.bmodel.bak"
    assert make_backup(model, tmp_path / "other.bak").path == tmp_path / "other.bak"
    assert (tmp_path / "other.bak.sha256").read_text().endswith("  other.bak\n")


def test_backup_refuses_bad_inputs(tmp_path, model):
    with pytest.raises(InputFileError, match="no such model"):
        make_backup(tmp_path / "missing")
    with pytest.raises(InputFileError, match="is a directory"):
        make_backup(tmp_path)
    with pytest.raises(InputFileError, match="no such directory"):
        make_backup(model, tmp_path / "nodir" / "m.bak")
    with pytest.raises(InputFileError, match="is the model itself"):
        make_backup(model, model)


def test_a_copy_that_reads_back_wrong_never_gets_the_backup_name(model, monkeypatch):
    monkeypatch.setattr(backup_module, "hash_from_disk", lambda *a, **k: ("0" * 64, 0))
    with pytest.raises(Corrupt, match="read back"):
        make_backup(model)
    assert sorted(os.listdir(model.parent)) == ["m.bmodel"]


def test_a_backup_of_a_model_already_hashed_is_copied_by_the_kernel_and_checked(model,
                                                                               monkeypatch):
    # An in-place encrypt hashed the model while sealing it: the backup is the kernel's copy,
    # checked from the disk against that digest (no second hash of the model).
    monkeypatch.setattr(backup_module, "copy_hashing", None)  # the slow path is not taken
    seen: list[int] = []
    result = make_backup(model, progress=seen.append, sha256=sha(model.read_bytes()))
    assert result.created and result.path.read_bytes() == model.read_bytes()
    assert result.manifest.read_text() == f"{sha(model.read_bytes())}  m.bmodel.bak\n"
    assert sum(seen) == 2 * model.stat().st_size
    assert result.path.stat().st_mtime_ns == MTIME_NS
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o640


def test_a_kernel_copy_that_does_not_match_the_given_digest_never_gets_the_name(model):
    # The digest given is what the copy is checked against: a wrong one fails the check.
    with pytest.raises(Corrupt, match="read back"):
        make_backup(model, sha256="0" * 64)
    assert sorted(os.listdir(model.parent)) == ["m.bmodel"]


def test_a_sparse_model_hashed_already_is_still_copied_with_its_holes(tmp_path):
    sparse = tmp_path / "sparse.bmodel"
    with open(sparse, "wb") as f:
        f.write(b"head")
        f.seek(64 << 20)
        f.write(b"tail")
    digest = sha(sparse.read_bytes())
    result = make_backup(sparse, sha256=digest)
    assert result.sha256 == digest and result.path.read_bytes() == sparse.read_bytes()
    assert result.path.stat().st_blocks * 512 < 1 << 20  # still sparse: the holes were kept


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, hashing.DIRECT_CHUNK - 1,
                                  hashing.DIRECT_CHUNK, 2 * hashing.DIRECT_CHUNK + 12345])
def test_a_file_checked_from_the_disk_hashes_whole_at_any_size(tmp_path, size):
    # O_DIRECT reads whole blocks into aligned buffers; the last one is short (any size).
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    try:
        assert hashing.hash_from_disk(fd) == (sha(data), size)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        assert not flags & os.O_DIRECT  # the descriptor is given back as it was
    finally:
        os.close(fd)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no tmpfs at /dev/shm")
def test_a_file_checked_from_memory_backed_storage_still_hashes(tmp_path):
    # Where O_DIRECT is refused (or means nothing) the re-read goes through the page cache.
    data = random.Random(7).randbytes(3 * hashing.DIRECT_CHUNK // 2)
    with tempfile.NamedTemporaryFile(dir="/dev/shm") as f:
        f.write(data)
        f.flush()
        assert hashing.hash_from_disk(f.fileno()) == (sha(data), len(data))


def test_a_model_that_changes_during_the_copy_is_not_backed_up(model, monkeypatch):
    real_copy = backup_module.copy_hashing

    def copy_then_append(src, dst, progress=None):
        result = real_copy(src, dst, progress)
        with open(model, "ab") as f:
            f.write(b"late write")
        return result

    monkeypatch.setattr(backup_module, "copy_hashing", copy_then_append)
    with pytest.raises(InputFileError, match="changed while"):
        make_backup(model)
    assert sorted(os.listdir(model.parent)) == ["m.bmodel"]


def test_a_backup_that_appears_during_the_copy_is_not_overwritten(model, monkeypatch):
    real_copy = backup_module.copy_hashing
    backup = model.with_name("m.bmodel.bak")

    def copy_while_someone_else_backs_up(src, dst, progress=None):
        backup.write_bytes(b"made by hand meanwhile")
        return real_copy(src, dst, progress)

    monkeypatch.setattr(backup_module, "copy_hashing", copy_while_someone_else_backs_up)
    with pytest.raises(BackupConflict):
        make_backup(model)
    assert backup.read_bytes() == b"made by hand meanwhile"
    assert sorted(os.listdir(model.parent)) == ["m.bmodel", "m.bmodel.bak"]


@pytest.mark.parametrize("name", ["back\\slash.bmodel", "new\nline.bmodel", "sp ace.bmodel"])
def test_manifests_of_odd_names_agree_with_sha256sum(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"odd")
    result = make_backup(path)
    theirs = subprocess.run(["sha256sum", "--", result.path.name], cwd=tmp_path,
                            capture_output=True, check=True).stdout
    assert result.manifest.read_bytes() == theirs
    assert subprocess.run(["sha256sum", "--status", "-c", result.manifest.name],
                          cwd=tmp_path).returncode == 0
    assert verify_backup(path).sha256 == sha(b"odd")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1).filter(lambda s: "\0" not in s))
def test_manifest_lines_round_trip(name):
    digest = "ab" * 32
    assert parse_manifest(format_manifest(digest, name)) == (digest, name)


# ---------------------------------------------------------------- verify_backup / restore_backup


def test_restore_puts_back_exact_bytes_mode_and_mtime_and_keeps_the_backup(model):
    original = model.read_bytes()
    made = make_backup(model)
    with atomic_write(model, mode=0o600) as f:
        f.write(b"encrypted, say")
    restored = restore_backup(model)
    assert model.read_bytes() == original and restored.sha256 == made.sha256
    assert stat.S_IMODE(model.stat().st_mode) == 0o640 and model.stat().st_mtime_ns == MTIME_NS
    assert made.path.read_bytes() == original
    assert debris(model.parent) == []


def test_restore_recreates_a_deleted_model(model):
    original = model.read_bytes()
    make_backup(model)
    model.unlink()
    restore_backup(model)
    assert model.read_bytes() == original


def test_restore_refuses_a_backup_that_fails_its_manifest(model):
    made = make_backup(model)
    with open(made.path, "r+b") as f:
        f.seek(1000)
        f.write(b"\xff")
    with atomic_write(model) as f:
        f.write(b"current")
    with pytest.raises(Corrupt, match="does not match its manifest"):
        verify_backup(model)
    with pytest.raises(Corrupt, match="does not match its manifest"):
        restore_backup(model)
    assert model.read_bytes() == b"current" and debris(model.parent) == []


def test_a_backup_without_manifest_is_only_restored_when_trusted(model):
    original = model.read_bytes()
    made = make_backup(model)
    made.manifest.unlink()
    model.write_bytes(b"current")
    with pytest.raises(InputFileError, match="no manifest"):
        restore_backup(model)
    assert model.read_bytes() == b"current"
    assert restore_backup(model, trust_unverified=True).sha256 == sha(original)
    assert model.read_bytes() == original


@pytest.mark.parametrize("manifest, match", [
    ("garbage\n", "not a sha256sum manifest"),
    (f"{'a' * 64}  m.bmodel.bak\n{'b' * 64}  other\n", "not a sha256sum manifest"),
    (f"{'a' * 64}  other.bak\n", "manifest of 'other.bak'"),
])
def test_verify_rejects_malformed_manifests(model, manifest, match):
    made = make_backup(model)
    made.manifest.write_text(manifest)
    with pytest.raises(Corrupt, match=match):
        verify_backup(model)


def test_verify_accepts_sha256sum_variants(model):
    made = make_backup(model)
    made.manifest.write_text(f"{made.sha256.upper()} */somewhere/else/m.bmodel.bak\n")
    assert verify_backup(model).sha256 == made.sha256


def test_verify_without_a_backup_says_so(model):
    with pytest.raises(InputFileError, match="no backup at"):
        verify_backup(model)


# ---------------------------------------------------------------- file_lock

HOLD_LOCK = """
import sys
from bmcrypt.files import file_lock
with file_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def spawn(code: str, *args: object) -> subprocess.Popen[str]:
    """A child Python running `code` with this bmcrypt importable; use it as a context manager
    (killed by the test if need be; leaving the block closes its pipes and waits for it)."""
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)


def test_a_second_process_gets_locked_until_the_first_releases(model):
    with spawn(HOLD_LOCK, model) as child:
        assert child.stdout.readline() == "locked\n"
        with pytest.raises(Locked, match=rf"another bmcrypt process \(pid {child.pid}\)"):
            with file_lock(model):
                pass
        with pytest.raises(Locked):
            make_backup(model)
        assert not model.with_name("m.bmodel.bak").exists()
        threading.Timer(0.3, child.stdin.close).start()
        started = time.monotonic()
        with file_lock(model, timeout=10):
            assert time.monotonic() - started >= 0.2
    assert debris(model.parent) == []


def test_a_killed_holder_releases_its_lock(model):
    with spawn(HOLD_LOCK, model) as child:
        assert child.stdout.readline() == "locked\n"
        child.kill()
    assert lock_path(model).exists()  # the stale lock file is harmless
    with file_lock(model):
        pass
    assert debris(model.parent) == []


def test_the_lock_is_reentrant_in_a_thread_but_excludes_other_threads(model):
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            with file_lock(model):
                pass
        except Locked as exc:
            errors.append(exc)

    with file_lock(model):
        with file_lock(model):
            make_backup(model)  # takes the lock itself
        worker = threading.Thread(target=other_thread)
        worker.start()
        worker.join()
    assert len(errors) == 1
    with file_lock(model, timeout=0):
        pass


# ---------------------------------------------------------------- cleanup_stale_temps


def test_cleanup_removes_dead_temps_only(tmp_path, model):
    dead = [tmp_path / ".m.bmodel.bmcrypt-tmp-dead1234", tmp_path / ".m.bmodel.bak.bmcrypt-tmp-x1"]
    for path in dead:
        path.write_bytes(b"left by a killed run")
    (tmp_path / ".unrelated").write_text("keep")
    with atomic_write(model) as f:
        f.write(b"in progress")
        live = [p for p in tmp_path.iterdir() if p.name.startswith(".m.bmodel.bmcrypt-tmp-")
                and p not in dead]
        assert sorted(cleanup_stale_temps(model)) == sorted(dead)
        assert all(p.exists() for p in live) and len(live) == 1
    assert model.read_bytes() == b"in progress"
    assert cleanup_stale_temps(tmp_path) == [] and (tmp_path / ".unrelated").exists()


def test_cleanup_removes_lock_files_nobody_holds(model):
    lock_path(model).write_text("12345\n")  # left by a killed run
    assert cleanup_stale_temps(model.parent) == [lock_path(model)]
    with file_lock(model):
        assert cleanup_stale_temps(model.parent) == [] and lock_path(model).exists()
        assert cleanup_stale_temps(model) == []


# ---------------------------------------------------------------- patch_in_place / recover_journal


def make_patches(data: bytes, count: int, length: int, seed: int) -> list[tuple[int, bytes, bytes]]:
    rng = random.Random(seed)
    stride = len(data) // count
    return [(i * stride, data[i * stride:i * stride + length], rng.randbytes(length))
            for i in range(count)]


def apply_all(data: bytes, patches) -> bytes:
    out = bytearray(data)
    for offset, _old, new in patches:
        out[offset:offset + len(new)] = new
    return bytes(out)


@pytest.fixture
def patched(tmp_path):
    data = os.urandom(1 << 20)
    path = tmp_path / "big.bmodel"
    path.write_bytes(data)
    patches = make_patches(data, 500, 64, seed=1)
    return path, data, patches, apply_all(data, patches)


def test_patch_in_place_applies_all_and_is_idempotent(patched):
    path, _old, patches, new = patched
    assert patch_in_place(path, patches) == len(patches)
    assert path.read_bytes() == new and debris(path.parent) == []
    assert patch_in_place(path, patches) == 0  # a rerun finds the new bytes: nothing to do


def test_patch_in_place_refuses_foreign_bytes_before_writing_anything(patched):
    path, old, patches, _new = patched
    offset = patches[-1][0]
    path.write_bytes(old[:offset] + b"\xaa" * 64 + old[offset + 64:])
    before = path.read_bytes()
    with pytest.raises(Corrupt, match=f"offset {offset}"):
        patch_in_place(path, patches)
    assert path.read_bytes() == before and debris(path.parent) == []


def test_patch_in_place_rejects_malformed_patches(patched):
    path, old, _patches, _new = patched
    with pytest.raises(ValueError, match="overlap"):
        patch_in_place(path, [(0, old[:8], b"x" * 8), (4, old[4:12], b"y" * 8)])
    with pytest.raises(ValueError, match="equal"):
        patch_in_place(path, [(0, old[:8], b"short")])
    with pytest.raises(Truncated):
        patch_in_place(path, [(len(old) - 2, old[-2:] + b"\0", b"abc")])


def crash_after(monkeypatch, applied: int) -> None:
    """Make patch_in_place die (as if killed) after writing `applied` patches."""
    def dying_apply(fd, patches):
        for offset, _old, new in patches[:applied]:
            os.pwrite(fd, new, offset)
        raise SystemExit("killed")
    monkeypatch.setattr(journal_module, "_apply", dying_apply)


@pytest.mark.parametrize("applied", [0, 1, 250, 500])
def test_a_complete_journal_is_rolled_forward(patched, monkeypatch, applied):
    path, _old, patches, new = patched
    crash_after(monkeypatch, applied)
    with pytest.raises(SystemExit):
        patch_in_place(path, patches)
    assert journal_path(path).exists()
    monkeypatch.undo()
    assert recover_journal(path) == "rolled-forward"
    assert path.read_bytes() == new and debris(path.parent) == []
    assert recover_journal(path) == "none"


def test_a_damaged_journal_is_discarded(patched, monkeypatch):
    path, old, patches, _new = patched
    crash_after(monkeypatch, 0)
    with pytest.raises(SystemExit):
        patch_in_place(path, patches)
    monkeypatch.undo()
    journal = journal_path(path)
    journal.write_bytes(journal.read_bytes()[:-1])  # torn
    assert recover_journal(path) == "discarded"
    assert path.read_bytes() == old and not journal.exists()


def test_a_journal_that_no_longer_fits_the_file_is_kept_and_reported(patched, monkeypatch):
    path, old, patches, _new = patched
    crash_after(monkeypatch, 0)
    with pytest.raises(SystemExit):
        patch_in_place(path, patches)
    monkeypatch.undo()
    path.write_bytes(old + b"grown")
    with pytest.raises(Corrupt, match="journal"):
        recover_journal(path)
    assert journal_path(path).exists() and path.read_bytes() == old + b"grown"


def test_restore_discards_the_journal_of_the_content_it_replaces(patched, monkeypatch):
    path, old, patches, _new = patched
    make_backup(path)
    crash_after(monkeypatch, 100)
    with pytest.raises(SystemExit):
        patch_in_place(path, patches)
    monkeypatch.undo()
    restore_backup(path)
    assert recover_journal(path) == "none" and path.read_bytes() == old


# ---------------------------------------------------------------- kill -9 at random moments

BIG = 64 << 20
ITERATIONS = 10


def run_and_kill(code: str, args: list[object], delay: float) -> bool:
    """Start `code`, wait for its "go", kill -9 it `delay` s later; True if it finished first."""
    with spawn(code, *args) as child:
        assert child.stdout.readline() == "go\n"
        time.sleep(delay)
        child.kill()
        return child.wait() == 0


def duration(code: str, args: list[object]) -> float:
    with spawn(code, *args) as child:
        assert child.stdout.readline() == "go\n"
        started = time.monotonic()
        assert child.stdout.readline() == "done\n"
        return time.monotonic() - started


def kill_delays(code: str, args: list[object], seed: int) -> list[float]:
    """Random moments spread over one undisturbed run (a few past its end, to cover finishing)."""
    rng = random.Random(seed)
    span = duration(code, args) * 1.1
    return [rng.uniform(0, span) for _ in range(ITERATIONS)]


BACKUP_CHILD = """
import sys
from bmcrypt.files import make_backup
print("go", flush=True)
make_backup(sys.argv[1])
print("done", flush=True)
"""


@pytest.mark.slow
def test_make_backup_survives_kill_9_at_any_moment(tmp_path):
    model = tmp_path / "m.bmodel"
    model.write_bytes(os.urandom(BIG))
    digest = sha256_file(model)
    backup = tmp_path / "m.bmodel.bak"
    calibration = kill_delays(BACKUP_CHILD, [model], seed=7)
    backup.unlink()
    manifest_path(backup).unlink()
    for delay in calibration:
        run_and_kill(BACKUP_CHILD, [model], delay)
        where = f"killed after {delay:.3f}s"
        assert sha256_file(model) == digest, where
        if backup.exists():  # only ever complete, and then already with its manifest
            assert sha256_file(backup) == digest, where
            assert verify_backup(model).sha256 == digest, where
        assert make_backup(model).sha256 == digest, where  # a rerun works (and verifies itself)
        assert sorted(os.listdir(tmp_path)) == ["m.bmodel", "m.bmodel.bak", "m.bmodel.bak.sha256"]
        backup.unlink()
        manifest_path(backup).unlink()


ATOMIC_CHILD = """
import sys
from bmcrypt.files import atomic_write
print("go", flush=True)
with atomic_write(sys.argv[1]) as f:
    for i in range(64):
        f.write(bytes([i]) * (1 << 20))
print("done", flush=True)
"""


@pytest.mark.slow
def test_atomic_write_survives_kill_9_at_any_moment(tmp_path):
    target = tmp_path / "m.bmodel"
    old = os.urandom(BIG)
    new_digest = sha(b"".join(bytes([i]) * (1 << 20) for i in range(64)))
    target.write_bytes(old)
    calibration = kill_delays(ATOMIC_CHILD, [target], seed=8)
    for delay in calibration:
        target.write_bytes(old)
        run_and_kill(ATOMIC_CHILD, [target], delay)
        assert sha256_file(target) in (sha(old), new_digest), f"killed after {delay:.3f}s"
        cleanup_stale_temps(tmp_path)
        assert os.listdir(tmp_path) == ["m.bmodel"]
        with atomic_write(target) as f:  # a rerun works
            f.write(b"rerun")
        assert target.read_bytes() == b"rerun"


PATCH_CHILD = """
import pickle, sys
from bmcrypt.files import patch_in_place
with open(sys.argv[2], "rb") as f:
    patches = pickle.load(f)
print("go", flush=True)
patch_in_place(sys.argv[1], patches)
print("done", flush=True)
"""


@pytest.mark.slow
def test_patch_in_place_is_all_or_nothing_across_kill_9(tmp_path):
    target = tmp_path / "m.bmodel"
    old = os.urandom(8 << 20)
    patches = make_patches(old, 20_000, 256, seed=3)
    new = apply_all(old, patches)
    pickled = tmp_path.parent / f"{tmp_path.name}-patches.pickle"
    pickled.write_bytes(pickle.dumps(patches))
    target.write_bytes(old)
    calibration = kill_delays(PATCH_CHILD, [target, pickled], seed=9)
    outcomes = set()
    for delay in calibration:
        target.write_bytes(old)
        run_and_kill(PATCH_CHILD, [target, pickled], delay)
        had_journal = journal_path(target).exists()
        outcome = recover_journal(target)
        content = sha256_file(target)
        where = f"killed after {delay:.3f}s, journal: {had_journal}, recovery: {outcome}"
        assert content in (sha(old), sha(new)), where
        if had_journal:
            assert outcome == "rolled-forward" and content == sha(new), where
        outcomes.add((had_journal, content == sha(new)))
        cleanup_stale_temps(tmp_path)
        assert os.listdir(tmp_path) == ["m.bmodel"], where
    assert len(outcomes) >= 2, f"the kills all landed in one phase: {outcomes}"
