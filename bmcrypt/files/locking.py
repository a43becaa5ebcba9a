"""One writer per model: an exclusive advisory lock that dies with its process.

The lock is ``fcntl.flock`` on a separate lock file ``.<name>.bmcrypt-lock`` next to the model,
not on the model itself: an atomic replace swaps the model's inode, and a lock on the old inode
would stop protecting the path the moment the first writer finished. flock (unlike fcntl/POSIX
record locks) belongs to the open file description, so it is released by the kernel when the
holder exits or is killed, and it does not vanish when another fd of the same process is closed.

The holder deletes the lock file before releasing it. Anyone who was waiting on the old inode then
wins a lock on a deleted file, notices that the path no longer names it, and starts over on the
new one; so deleting is safe and stale lock files only remain after a crash (and are harmless).
scripts/backup.sh takes the same lock with flock(1) and follows the same protocol.

The lock is re-entrant within one thread (library functions take it themselves, and the CLI may
already hold it around them); another thread, like another process, has to wait.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bmcrypt.errors import FileSafetyError, InputFileError, Locked

from .opening import cannot_create, is_read_only, not_regular, read_derived, symlink_refused
from .paths import LOCK_SUFFIX, real_path, sidecar

_POLL_SECONDS = 0.05
_held = threading.local()  # .fds: {lock path: (fd, depth)} for locks this thread holds


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file guarding `path`: ``.<name>.bmcrypt-lock`` beside it, symlinks resolved."""
    return sidecar(real_path(path), LOCK_SUFFIX)


def _held_by_this_thread() -> dict[Path, tuple[int, int]]:
    if not hasattr(_held, "fds"):
        _held.fds = {}
    return _held.fds  # type: ignore[no-any-return]


def _open_lock_file(lock: Path) -> int:
    """Open (creating) the lock file: never through a link, never blocking on a FIFO."""
    flags = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | flags, 0o644)
    except (FileNotFoundError, NotADirectoryError):
        raise InputFileError(f"no such directory: {lock.parent}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_refused(lock, "the lock file") from None
        if not is_read_only(exc):
            raise
        try:  # a lock file left by another user: flock works on a read-only fd too
            fd = os.open(lock, os.O_RDONLY | flags)
        except OSError:
            raise cannot_create(lock.parent, exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise not_regular(lock, st.st_mode)
    return fd


def _try_acquire(lock: Path) -> int | None:
    """One attempt: the fd of a lock file we hold that is still at `lock`, or None if it is busy."""
    while True:
        fd = _open_lock_file(lock)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(lock, follow_symlinks=False)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # the previous holder deleted it while we waited: retry on the new file


def _holder_pid(lock: Path) -> str:
    try:
        raw = read_derived(lock, "the lock file", 32) or b""
    except (OSError, FileSafetyError):
        return ""
    text = raw.decode("ascii", "replace").strip()
    return f" (pid {text})" if text.isdigit() else ""


def _release(lock: Path, fd: int) -> None:
    try:
        os.unlink(lock)  # while still holding it: see the module docstring
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    finally:
        os.close(fd)


def remove_if_unheld(lock: Path) -> bool:
    """Delete the lock file `lock` if nobody holds it (debris of a killed run); True if deleted."""
    if not os.path.lexists(lock):
        return False
    fd = _try_acquire(lock)
    if fd is None:
        return False
    _release(lock, fd)
    return True


@contextmanager
def file_lock(path: str | os.PathLike[str], timeout: float | None = 0.0) -> Iterator[Path]:
    """Hold the exclusive bmcrypt lock of `path` for the duration of the ``with`` block.

    `timeout` is how long to wait for another holder: 0 (the default) fails at once, a positive
    number waits up to that many seconds, None waits for ever. Raises Locked when the lock cannot be
    had in time. `path` need not exist (restoring a deleted model is fine); its directory must be
    writable. Yields the lock file's path.
    """
    lock = lock_path(path)
    held = _held_by_this_thread()
    if lock in held:
        outer_fd, depth = held[lock]
        held[lock] = (outer_fd, depth + 1)
        try:
            yield lock
        finally:
            held[lock] = (outer_fd, depth)
        return

    deadline = None if timeout is None else time.monotonic() + timeout
    while (fd := _try_acquire(lock)) is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise Locked(f"{path} is being worked on by another bmcrypt process{_holder_pid(lock)}")
        time.sleep(_POLL_SECONDS)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError:
        pass  # read-only fd on a foreign lock file: the pid is only a courtesy for error messages
    held[lock] = (fd, 1)
    try:
        yield lock
    finally:
        del held[lock]
        _release(lock, fd)
