"""Verified backups: ``MODEL.bak`` next to the model, checked by ``MODEL.bak.sha256``.

A backup is made by copying into a temp file while hashing what is read, fsyncing, re-reading the
copy from the disk and comparing digests, writing the manifest, and only then linking the copy to
its final name (a link never overwrites, so an existing backup is never clobbered). When the
caller already hashed the model (an in-place encrypt), the kernel copies it and the copy read
back from the disk is compared with that digest. A crash at any point leaves the model untouched
and no partial file at ``MODEL.bak``; a rerun just works.

An existing backup is reused when it is identical to the model and refused (BackupConflict)
otherwise. scripts/backup.sh follows the same convention; either can check the other's backups.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bmcrypt.errors import BackupConflict, Corrupt, InputFileError

from .atomic import TempFile, commit_no_replace, commit_replace, set_owner_like, temp_beside
from .cleanup import cleanup_stale_temps
from .hashing import Progress, copy_hashing, copy_in_kernel, hash_from_disk, hash_stream
from .journal import discard_journal
from .locking import file_lock
from .opening import open_derived, open_dir, open_input_file, refuse_link, stat_input
from .paths import fsync_fd, real_path
from .sha256sum import manifest_path, read_manifest, write_manifest


@dataclass(frozen=True)
class BackupResult:
    """A backup on disk: where it is, the SHA-256 of its content, whether this call wrote it."""

    path: Path
    sha256: str
    created: bool

    @property
    def manifest(self) -> Path:
        """The ``<backup>.sha256`` manifest next to it."""
        return manifest_path(self.path)


def backup_path_for(model: str | os.PathLike[str],
                    backup_path: str | os.PathLike[str] | None = None) -> Path:
    """Where the backup of `model` lives: `backup_path`, ``DIR/<name>.bak`` if that is a
    directory, or by default ``<model>.bak`` next to the model (as named, symlinks not resolved)."""
    model = Path(model)
    if backup_path is None:
        return model.with_name(model.name + ".bak")
    backup = Path(backup_path)
    return backup / (model.name + ".bak") if backup.is_dir() else backup


def _copy_verified(src: Path, source: io.FileIO, target: Path,
                   commit: Callable[[TempFile, Path], None],
                   owner: os.stat_result | None, before_commit: Callable[[str], None],
                   progress: Progress | None, known: str | None = None) -> str:
    """Copy `source` (the open file `src`) to a temp file beside `target` with its mode and
    times, check the copy on disk, call `before_commit(digest)`, then `commit` it into place.
    Returns the SHA-256. Holes in a sparse source stay holes in the copy.

    `known`: the source's SHA-256 as its caller read it. The copy is then made by the kernel
    (`copy_in_kernel`) and checked from the disk against `known` instead of against a hash of
    what this copy read: the same check, one SHA-256 pass fewer."""
    with source, temp_beside(target) as tmp:
        before = os.fstat(source.fileno())
        copied = copy_in_kernel(source, tmp.raw, progress) if known is not None else None
        if known is not None and copied is not None:
            digest, size = known, copied
        else:
            digest, size = copy_hashing(source, tmp.raw, progress)
        after = os.fstat(source.fileno())
        if (size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise InputFileError(f"{src} changed while it was being copied",
                                 hint="make sure nothing else writes to it, then try again")
        os.fchmod(tmp.fileno(), stat.S_IMODE(before.st_mode))
        set_owner_like(tmp.fileno(), owner)
        if hash_from_disk(tmp.fileno(), progress)[0] != digest:
            raise Corrupt(f"the copy of {src} read back from the disk differs from what was "
                          f"written", hint="the disk or its filesystem may be failing; fix that "
                                           "before going on")
        os.utime(tmp.fileno(), ns=(before.st_atime_ns, before.st_mtime_ns))
        before_commit(digest)
        commit(tmp, target)
    return digest


def _open_backup(backup: Path) -> io.FileIO:
    """The backup, opened read-only and never through a link (InputFileError if missing)."""
    fd = open_derived(backup, "the backup")
    if fd is None:
        raise InputFileError(f"there is no backup at {backup}",
                             hint="backups are made by `bmcrypt backup` or scripts/backup.sh")
    return io.FileIO(fd, "rb", closefd=True)


def _sha256(f: io.FileIO, progress: Progress | None) -> str:
    with f:
        return hash_stream(f, progress)[0]


def _reuse(model: Path, backup: Path, progress: Progress | None) -> BackupResult:
    """Accept an existing backup identical to `model` (adding a missing manifest); else conflict."""
    st = refuse_link(backup, "the backup")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise BackupConflict(f"{backup} exists and is not a regular file")
    size = model.stat().st_size
    if st is None or st.st_size != size:
        raise BackupConflict(f"a different backup already exists at {backup}; it was left as it is")
    digest = _sha256(open_input_file(model, "model"), progress)
    if _sha256(_open_backup(backup), progress) != digest:
        raise BackupConflict(f"a different backup already exists at {backup}; it was left as it is")
    try:
        recorded = read_manifest(backup)
    except Corrupt as exc:
        raise BackupConflict(f"{backup} matches the model but {exc.message}") from None
    if recorded is None:
        write_manifest(backup, digest)
    elif recorded != digest:
        raise BackupConflict(f"{backup} matches the model but its manifest records another "
                             f"checksum",
                             hint="the manifest or the backup was changed; check them by hand")
    return BackupResult(backup, digest, created=False)


def make_backup(model: str | os.PathLike[str], backup_path: str | os.PathLike[str] | None = None,
                progress: Progress | None = None, *, sha256: str | None = None) -> BackupResult:
    """Back `model` up to ``<model>.bak`` (or `backup_path`; a directory means ``DIR/<name>.bak``)
    with a ``sha256sum`` manifest beside it, verified against the model before it gets its name.

    An identical existing backup is reused (``created=False``, a missing manifest is added); a
    different one raises BackupConflict and is never touched. Mode and times follow the model.
    Holds the model's lock. `progress(n)` counts every byte read: twice the size in all.
    `sha256`: the model's digest, when the caller just hashed it (an in-place encrypt does while
    it seals): the copy is then checked against it (see `_copy_verified`).
    """
    model = Path(model)
    with _locked_for_backup(model, backup_path) as backup:
        if os.path.lexists(backup):
            return _reuse(model, backup, progress)

        def before_commit(digest: str) -> None:
            if os.path.lexists(backup):  # so as not to replace the manifest of someone else's
                raise FileExistsError(backup)
            write_manifest(backup, digest)  # first: a backup never appears without its manifest

        try:
            source = open_input_file(model, "model")
            digest = _copy_verified(model, source, backup, commit_no_replace,
                                    os.fstat(source.fileno()), before_commit, progress, sha256)
        except FileExistsError:  # appeared while we copied (by hand: bmcrypt and the script lock)
            return _reuse(model, backup, progress)
    return BackupResult(backup, digest, created=True)


class ModelReadback:
    """The model fsynced, read back from the disk (O_DIRECT) and hashed on a thread of its own,
    started before the caller's long work so that the two overlap (an in-place encrypt reads
    the disk while it seals from the page cache). `keep_as_backup` takes its digest. Only
    reads; `close` stops it early (a failed or interrupted seal)."""

    def __init__(self, model: str | os.PathLike[str]) -> None:
        self._file = open_input_file(model, "model")
        self.before = os.fstat(self._file.fileno())
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bmcrypt-readback")
        self._digest = self._pool.submit(hash_from_disk, self.fd, None, self._stop)

    @property
    def fd(self) -> int:
        return self._file.fileno()

    def digest(self) -> str:
        """The SHA-256 of what the disk holds (waits for the thread)."""
        return self._digest.result()[0]

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True)
        self._file.close()

    def __enter__(self) -> ModelReadback:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def keep_as_backup(model: str | os.PathLike[str],
                   backup_path: str | os.PathLike[str] | None = None,
                   progress: Progress | None = None, *, sha256: str,
                   readback: ModelReadback | None = None) -> BackupResult:
    """Make the model's own file its backup, for a caller about to put a new file in the
    model's place (an in-place encrypt, whose seal hashed the model as it read it: `sha256`).

    The backup becomes another name of the model's inode (a hard link), after the model was
    fsynced and read back from the disk (O_DIRECT) to the digest `sha256`, and after its manifest
    was written; then the caller's rename gives the model's name to the new file. Nothing is
    copied: the plaintext is on the disk once, as after a copy and the rename. A copy
    (`make_backup`, checked against `sha256` too) is made instead where a link cannot be the
    backup: the model has other hard links (a write through one would change the backup), the
    backup is on another filesystem, or the filesystem has no hard links. An existing backup is
    reused or refused as by `make_backup`. `progress` counts twice the size, as there.
    `readback`: the model's check from the disk, started earlier (see `ModelReadback`).
    """
    model = Path(model)
    with _locked_for_backup(model, backup_path) as backup:
        if os.path.lexists(backup):
            return _reuse(model, backup, progress)
        with contextlib.ExitStack() as stack:
            if readback is None:
                readback = stack.enter_context(_NoReadback(model))
            fd, before = readback.fd, readback.before
            now = os.stat(model)
            linkable = (_linkable(before, backup)
                        and (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino)
                        and os.path.exists(f"/proc/self/fd/{fd}"))
            try:
                if linkable and _link_as_backup(model, readback, backup, sha256, progress):
                    return BackupResult(backup, sha256, created=True)
            except FileExistsError:  # an identical backup is fine, another one is refused
                return _reuse(model, backup, progress)
    return make_backup(model, backup_path, progress, sha256=sha256)


def can_keep_as_backup(model: str | os.PathLike[str],
                       backup_path: str | os.PathLike[str] | None = None) -> bool:
    """Whether `keep_as_backup` would make the model's own file its backup (no backup there
    yet, a link is possible): worth starting a `ModelReadback` for. A guess, checked again."""
    backup = backup_path_for(model, backup_path)
    try:
        return not os.path.lexists(backup) and _linkable(os.stat(model), backup)
    except OSError:
        return False


def _linkable(model: os.stat_result, backup: Path) -> bool:
    """A regular file with no other name, on the backup directory's filesystem."""
    return (stat.S_ISREG(model.st_mode) and model.st_nlink == 1
            and os.stat(backup.parent).st_dev == model.st_dev)


class _NoReadback:
    """The model opened for `keep_as_backup` when no `ModelReadback` was started: it hashes
    from the disk when asked, reporting progress."""

    def __init__(self, model: Path) -> None:
        self._file = open_input_file(model, "model")
        self.fd = self._file.fileno()
        self.before = os.fstat(self.fd)

    def digest(self, progress: Progress | None = None) -> str:
        return hash_from_disk(self.fd, progress)[0]

    def __enter__(self) -> _NoReadback:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._file.close()


def _link_as_backup(model: Path, readback: ModelReadback | _NoReadback, backup: Path,
                    sha256: str, progress: Progress | None) -> bool:
    """Check the open model from the disk, write the manifest, link its inode to `backup`.
    False (nothing left behind) where this filesystem refuses the link; FileExistsError (nothing
    left behind) if a backup appeared meanwhile."""
    fd, before = readback.fd, readback.before
    if isinstance(readback, _NoReadback):
        digest = readback.digest(progress)
    else:
        digest = readback.digest()
        if progress:
            progress(before.st_size)
    if digest != sha256:
        raise Corrupt(f"{model} read back from the disk differs from what was just read from it",
                      hint="the disk or its filesystem may be failing; fix that before going on")
    after = os.fstat(fd)
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise InputFileError(f"{model} changed while it was being backed up",
                             hint="make sure nothing else writes to it, then try again")
    if os.path.lexists(backup):  # appeared meanwhile (by hand: bmcrypt and the script lock)
        raise FileExistsError(errno.EEXIST, "file exists", str(backup))
    manifest = write_manifest(backup, sha256)  # first: a backup never appears without it
    dir_fd = open_dir(backup.parent)
    try:
        os.link(f"/proc/self/fd/{fd}", backup.name, dst_dir_fd=dir_fd, follow_symlinks=True)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(manifest)
        if isinstance(exc, FileExistsError):
            raise
        if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                         errno.EXDEV, errno.ENOENT):
            return False  # no links here: the caller copies
        raise
    finally:
        fsync_fd(dir_fd)
        os.close(dir_fd)
    if progress:
        progress(before.st_size)  # the copy's share of the progress: nothing to copy
    return True


@contextlib.contextmanager
def _locked_for_backup(model: Path,
                       backup_path: str | os.PathLike[str] | None) -> Iterator[Path]:
    """Where the backup of `model` goes (refused when unusable), with the model locked and the
    temp files of killed runs cleared away, for the ``with`` block."""
    stat_input(model, "model")
    backup = backup_path_for(model, backup_path)
    if not backup.parent.is_dir():
        raise InputFileError(f"no such directory: {backup.parent}")
    refuse_link(backup, "the backup")
    refuse_link(manifest_path(backup), "a backup's manifest")
    if backup.exists() and backup.samefile(model):
        raise InputFileError(f"the backup path {backup} is the model itself",
                             hint="give the backup another name or directory")
    with file_lock(model):
        cleanup_stale_temps(backup)
        yield backup


def _expected_digest(backup: Path, trust_unverified: bool) -> str | None:
    """What the manifest says `backup` must hash to; None if there is none and the caller trusts
    the backup anyway."""
    if refuse_link(backup, "the backup") is None:
        raise InputFileError(f"there is no backup at {backup}",
                             hint="backups are made by `bmcrypt backup` or scripts/backup.sh")
    _open_backup(backup).close()  # refuses a FIFO, a directory, … before the manifest is read
    recorded = read_manifest(backup)
    if recorded is None and not trust_unverified:
        raise InputFileError(
            f"the backup {backup} has no manifest {manifest_path(backup).name}; refusing to trust "
            f"it", hint="make backups with `bmcrypt backup` or scripts/backup.sh; if you are sure "
                        "this one is good, ask for it explicitly (--trust-unverified)")
    return recorded


def _mismatch(backup: Path) -> Corrupt:
    return Corrupt(f"the backup {backup} does not match its manifest {manifest_path(backup).name}",
                   hint="the backup was damaged or changed; do not restore it")


def verify_backup(model: str | os.PathLike[str], backup_path: str | os.PathLike[str] | None = None,
                  *, trust_unverified: bool = False,
                  progress: Progress | None = None) -> BackupResult:
    """Check the backup of `model` against its manifest and return it.

    Raises InputFileError if there is no backup, or no manifest (unless `trust_unverified`), and
    Corrupt if the manifest is malformed or records another checksum. The model itself is not read.
    """
    backup = backup_path_for(model, backup_path)
    expected = _expected_digest(backup, trust_unverified)
    digest = _sha256(_open_backup(backup), progress)
    if expected is not None and digest != expected:
        raise _mismatch(backup)
    return BackupResult(backup, digest, created=False)


def restore_backup(model: str | os.PathLike[str], backup_path: str | os.PathLike[str] | None = None,
                   *, trust_unverified: bool = False,
                   progress: Progress | None = None) -> BackupResult:
    """Put the backup of `model` back in its place, atomically; the backup stays.

    The backup is copied to a temp file beside the model, and the copy must match the manifest
    (verified as it is read, and again from the disk) before it replaces the model. A pending
    patch journal of the model is discarded: it belongs to the content being replaced. Raises as
    `verify_backup` does, with the model untouched. Holds the model's lock.
    """
    model = Path(model)
    backup = backup_path_for(model, backup_path)
    target = real_path(model)
    if os.path.lexists(target):  # a model that is gone may be restored; a FIFO may not
        stat_input(target, "model")

    with file_lock(model):
        expected = _expected_digest(backup, trust_unverified)
        source = _open_backup(backup)
        owner = target.stat() if target.exists() else os.fstat(source.fileno())

        def before_commit(digest: str) -> None:
            if expected is not None and digest != expected:
                raise _mismatch(backup)
            discard_journal(target)

        digest = _copy_verified(backup, source, target, commit_replace, owner, before_commit,
                                progress)
    return BackupResult(backup, digest, created=False)
