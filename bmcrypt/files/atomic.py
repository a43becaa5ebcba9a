"""Write a new version of a file without ever leaving a half-written one at its name.

The new content goes to a temp file ``.<name>.bmcrypt-tmp-XXXXXXXX`` in the same directory
(created 0600, so nobody reads a half-written model), is fsynced, gets its final mode, and is
renamed over the target; then the directory is fsynced so the rename itself survives a power cut.
Whatever happens before the rename, the target keeps its old bytes.

Each temp file is flock-held by its writer for as long as it lives, which is how
`cleanup.cleanup_stale_temps` tells the debris of a killed run from a write still in progress.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import secrets
import stat
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .interrupts import signals_held
from .opening import create_new, not_regular, open_dir, refuse_link
from .paths import default_new_file_mode, fsync_fd, real_path, temp_prefix

_WRITE_BUFFER = 1 << 20
_NAME_CHARS = string.ascii_lowercase + string.digits + "_"


@dataclass
class TempFile:
    """A temp file being written: its path, an unbuffered read/write handle, a descriptor of its
    directory (renames go through it, so a renamed parent cannot redirect them), and whether it
    has been moved to its final name (an uncommitted one is deleted when its ``with`` ends)."""

    path: Path
    raw: io.FileIO
    dir_fd: int
    committed: bool = False

    def fileno(self) -> int:
        return self.raw.fileno()


def _random_suffix() -> str:
    return "".join(secrets.choice(_NAME_CHARS) for _ in range(8))


@contextmanager
def temp_beside(target: Path) -> Iterator[TempFile]:
    """Create a flock-held temp file next to `target`; delete it on exit unless committed.

    Created 0600 with O_EXCL | O_NOFOLLOW relative to the directory's descriptor. Signals are
    held back between the creation and the ``try`` that deletes it, so an interrupt never leaves
    one behind.
    """
    dir_fd = open_dir(target.parent)
    try:
        for _ in range(100):
            name = temp_prefix(target) + _random_suffix()
            with signals_held():
                try:
                    fd = create_new(dir_fd, name, target.parent)
                except FileExistsError:
                    continue
                tmp = TempFile(target.parent / name, io.FileIO(fd, "r+", closefd=True), dir_fd)
                break
        else:  # pragma: no cover - 100 collisions of 41 random bits
            raise FileExistsError(errno.EEXIST, "no free temp file name", str(target.parent))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # brand new: nobody else can hold it
            yield tmp
        finally:
            try:
                if not tmp.committed:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=dir_fd)
            finally:
                tmp.raw.close()
    finally:
        os.close(dir_fd)


def set_owner_like(fd: int, st: os.stat_result | None) -> None:
    """Give the file the owner of `st` when we are allowed to (as root); otherwise leave it be."""
    if st is None:
        return
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) == (st.st_uid, st.st_gid):
        return
    with contextlib.suppress(PermissionError):
        os.fchown(fd, st.st_uid, st.st_gid)


def commit_replace(tmp: TempFile, target: Path) -> None:
    """fsync `tmp`, rename it over `target` and fsync the directory."""
    os.fsync(tmp.fileno())
    os.replace(tmp.path.name, target.name, src_dir_fd=tmp.dir_fd, dst_dir_fd=tmp.dir_fd)
    tmp.committed = True
    fsync_fd(tmp.dir_fd)


def commit_no_replace(tmp: TempFile, target: Path) -> None:
    """fsync `tmp` and give it the name `target`, which must not exist (FileExistsError if it does).

    A hard link cannot overwrite, so even a file that appears between our check and the commit is
    never clobbered. Filesystems without hard links (FAT on SD cards) fall back to check + rename.
    """
    os.fsync(tmp.fileno())
    d = tmp.dir_fd
    try:
        os.link(tmp.path.name, target.name, src_dir_fd=d, dst_dir_fd=d, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "file exists", str(target)) from None
        os.rename(tmp.path.name, target.name, src_dir_fd=d, dst_dir_fd=d)
    else:
        os.unlink(tmp.path.name, dir_fd=d)
    tmp.committed = True
    fsync_fd(d)


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Begin writing these bytes of a file that is going to be fsynced, without waiting.

    The fsync of the commit then has only the rest left to wait for, so the disk works while the
    data is still being produced (instead of all of it after). POSIX_FADV_DONTNEED starts the
    writeback of dirty pages and drops the pages that are already clean, so a large file does not
    crowd the page cache either. Advice only: where it is missing nothing changes.
    """
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)


@contextmanager
def atomic_write(target: str | os.PathLike[str], *, mode: int | None = None,
                 mode_from: str | os.PathLike[str] | None = None,
                 through_link: bool = True) -> Iterator[io.BufferedRandom]:
    """Replace `target` with what the ``with`` block writes, all or nothing.

    Yields a buffered binary file opened for reading and writing at offset 0; ``seek`` works, so a
    header can be patched after the body is written. On a normal exit the data is flushed and
    fsynced, the temp file gets its mode and is renamed over `target`, and the directory is fsynced.
    If the block raises, the temp file is deleted and `target` is untouched.

    The final mode is `mode` if given, else that of the file `mode_from`, else that of the existing
    `target`, else the umask default. An existing target's owner is kept when we may set it (root).
    A symlink `target` is written through (the file it points to is replaced, the link stays):
    `target` is a path somebody gave. For the names bmcrypt derives, pass ``through_link=False``:
    a link there, dangling or not, then raises SymlinkRefused.
    """
    if through_link:
        target = real_path(target)
        old = os.stat(target) if os.path.lexists(target) else None
    else:
        target = Path(target)
        old = refuse_link(target, "a file bmcrypt writes")
    if old is not None and not stat.S_ISREG(old.st_mode):
        raise not_regular(target, old.st_mode)
    if mode is None:
        if mode_from is not None:
            mode = stat.S_IMODE(os.stat(mode_from).st_mode)
        elif old is not None:
            mode = stat.S_IMODE(old.st_mode)
        else:
            mode = default_new_file_mode()
    with temp_beside(target) as tmp:
        buffered = io.BufferedRandom(tmp.raw, buffer_size=_WRITE_BUFFER)
        yield buffered
        buffered.flush()
        os.fchmod(tmp.fileno(), mode)
        set_owner_like(tmp.fileno(), old)
        commit_replace(tmp, target)
