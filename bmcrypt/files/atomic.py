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
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bmcrypt.errors import InputFileError

from .paths import default_new_file_mode, fsync_dir, real_path, temp_prefix

_WRITE_BUFFER = 1 << 20


@dataclass
class TempFile:
    """A temp file being written: its path, an unbuffered read/write handle, and whether it has
    been moved to its final name (an uncommitted one is deleted when its ``with`` block ends)."""

    path: Path
    raw: io.FileIO
    committed: bool = False

    def fileno(self) -> int:
        return self.raw.fileno()


@contextmanager
def temp_beside(target: Path) -> Iterator[TempFile]:
    """Create a flock-held temp file next to `target`; delete it on exit unless committed."""
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(target), dir=target.parent)
    except (FileNotFoundError, NotADirectoryError):
        raise InputFileError(f"no such directory: {target.parent}") from None
    except PermissionError:
        raise InputFileError(f"cannot create files in {target.parent}: permission denied",
                             hint="bmcrypt writes next to the file; check the directory's "
                                  "permissions") from None
    tmp = TempFile(Path(name), io.FileIO(fd, "r+", closefd=True))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # brand new: nobody else can hold it
        yield tmp
    finally:
        try:
            if not tmp.committed:
                _unlink_quietly(tmp.path)
        finally:
            tmp.raw.close()


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


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
    os.replace(tmp.path, target)
    tmp.committed = True
    fsync_dir(target.parent)


def commit_no_replace(tmp: TempFile, target: Path) -> None:
    """fsync `tmp` and give it the name `target`, which must not exist (FileExistsError if it does).

    A hard link cannot overwrite, so even a file that appears between our check and the commit is
    never clobbered. Filesystems without hard links (FAT on SD cards) fall back to check + rename.
    """
    os.fsync(tmp.fileno())
    try:
        os.link(tmp.path, target)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "file exists", str(target)) from None
        os.rename(tmp.path, target)
    else:
        os.unlink(tmp.path)
    tmp.committed = True
    fsync_dir(target.parent)


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
                 mode_from: str | os.PathLike[str] | None = None) -> Iterator[io.BufferedRandom]:
    """Replace `target` with what the ``with`` block writes, all or nothing.

    Yields a buffered binary file opened for reading and writing at offset 0; ``seek`` works, so a
    header can be patched after the body is written. On a normal exit the data is flushed and
    fsynced, the temp file gets its mode and is renamed over `target`, and the directory is fsynced.
    If the block raises, the temp file is deleted and `target` is untouched.

    The final mode is `mode` if given, else that of the file `mode_from`, else that of the existing
    `target`, else the umask default. An existing target's owner is kept when we may set it (root).
    A symlink `target` is written through: the file it points to is replaced, the link stays.
    """
    target = real_path(target)
    if target.is_dir():
        raise InputFileError(f"{target} is a directory, not a file", hint="give the path of a file")
    try:
        old: os.stat_result | None = target.stat()
    except FileNotFoundError:
        old = None
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
