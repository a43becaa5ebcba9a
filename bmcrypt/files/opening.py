"""The one way bmcrypt opens, creates and checks the files it reads and writes.

Two kinds of path reach the library:

- the paths the user gave (the model, ``-o OUT``, ``--backup PATH``): the model may be a symbolic
  link, and is read and written *through* it (docs/backups.md);
- the names bmcrypt derives from them (``MODEL.bak``, its ``.sha256`` manifest, the lock, the
  journal, temp files): these are never followed when they are symlinks, whether the link points
  somewhere or dangles. As root in a directory others can write to, following one would let
  anybody aim bmcrypt's writes at any file on the system.

Non-regular files (FIFO, socket, device, directory) are refused before any open that could block
(a FIFO's ``open`` waits for a writer): stat first, then open with ``O_NONBLOCK``, then check the
descriptor we got with ``fstat``, in case the name changed in between. Every refusal says what the
path is, in the same words everywhere.

New files are created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to a descriptor of their
directory (`create_new`), so neither a planted link nor a renamed parent can redirect them.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat
from pathlib import Path

from bmcrypt.errors import InputFileError, NotRegularFile, SymlinkRefused

#: The errors that mean "this directory cannot be written", whoever asks (root gets EROFS where
#: another user gets EACCES): they all become the same InputFileError, exit 8.
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


def not_regular(path: str | os.PathLike[str], mode: int) -> NotRegularFile:
    """The one refusal of a path that is not a regular file (``X is a FIFO, not a …``)."""
    return NotRegularFile.of(path, mode)


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def _missing(path: str | os.PathLike[str], what: str, exc: OSError) -> InputFileError:
    if isinstance(exc, NotADirectoryError):
        return InputFileError(f"no such {what}: {os.fspath(path)} (a parent is not a directory)")
    if isinstance(exc, PermissionError):
        return InputFileError(f"cannot access {os.fspath(path)}: permission denied")
    if exc.errno == errno.ELOOP:
        return InputFileError(f"cannot open {os.fspath(path)}: too many levels of symbolic links")
    return InputFileError(f"no such {what}: {os.fspath(path)}")


def stat_input(path: str | os.PathLike[str], what: str = "file") -> os.stat_result:
    """Stat a path the user gave (following links) and insist it is a regular file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        raise _missing(path, what, exc) from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise _missing(path, what, exc) from None
    if not stat.S_ISREG(st.st_mode):
        raise not_regular(path, st.st_mode)
    return st


def _open_checked(path: str | os.PathLike[str], flags: int, what: str,
                  dir_fd: int | None = None) -> int:
    """os.open + fstat: a descriptor of a regular file, O_NONBLOCK cleared again."""
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(path, st.st_mode)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_input(path: str | os.PathLike[str], what: str = "file", *,
               writable: bool = False) -> int:
    """A descriptor of a file the user gave (a link is followed), refused unless regular.

    InputFileError when it is missing or unreadable; NotRegularFile (never a hang) for a FIFO,
    socket, device or directory.
    """
    stat_input(path, what)  # before any open: a FIFO's open would wait for a writer
    try:
        return _open_checked(path, os.O_RDWR if writable else os.O_RDONLY, what)
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise _missing(path, what, exc) from None
    except OSError as exc:  # EACCES for a user, EROFS for root: the same refusal, exit 8
        if not is_read_only(exc):
            raise
        verb = "write" if writable else "read"
        raise InputFileError(f"cannot {verb} {os.fspath(path)}: {_reason(exc)}",
                             hint="check its permissions and that its filesystem is writable"
                             if writable else "check its permissions") from None


def open_input_file(path: str | os.PathLike[str], what: str = "file") -> io.FileIO:
    """`open_input` as an unbuffered binary file object (closing it closes the descriptor)."""
    return io.FileIO(open_input(path, what), "rb", closefd=True)


def refuse_link(path: str | os.PathLike[str], what: str) -> os.stat_result | None:
    """The lstat of a derived name, or None if nothing is there; SymlinkRefused for a link,
    pointing anywhere or nowhere."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        raise symlink_refused(path, what)
    return st


def symlink_refused(path: str | os.PathLike[str], what: str) -> SymlinkRefused:
    """The one refusal of a symlink planted at a name bmcrypt derives."""
    return SymlinkRefused(
        f"refusing to follow the symbolic link at {os.fspath(path)}: bmcrypt never follows "
        f"links at the names it derives ({what})",
        hint="remove the link (bmcrypt recreates the file) or move it away")


def open_derived(path: str | os.PathLike[str], what: str) -> int | None:
    """A read-only descriptor of a derived file (backup, manifest, journal), never through a
    link; None if there is none. SymlinkRefused for a link, NotRegularFile for a FIFO etc."""
    try:
        return _open_checked(path, os.O_RDONLY | os.O_NOFOLLOW, what)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise symlink_refused(path, what) from None
        raise


def read_derived(path: str | os.PathLike[str], what: str, limit: int) -> bytes | None:
    """Up to `limit` + 1 bytes of a small derived file (manifest, journal); None if absent."""
    fd = open_derived(path, what)
    if fd is None:
        return None
    with io.FileIO(fd, "rb", closefd=True) as f:
        return f.read(limit + 1)


def open_dir(directory: str | os.PathLike[str]) -> int:
    """A descriptor of `directory` to create files in (InputFileError if there is none)."""
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        raise InputFileError(f"no such directory: {os.fspath(directory)}") from None
    except PermissionError:
        raise InputFileError(f"cannot open the directory {os.fspath(directory)}: permission "
                             f"denied") from None


def cannot_create(directory: str | os.PathLike[str], exc: OSError) -> InputFileError:
    """The one refusal of a directory we may not write in (read-only, or not ours)."""
    return InputFileError(f"cannot create files in {os.fspath(directory)}: {_reason(exc)}",
                          hint="bmcrypt writes next to the file it changes; check the "
                               "directory's permissions and that its filesystem is writable")


def is_read_only(exc: OSError) -> bool:
    """True for the errors that mean "this directory or file cannot be written"."""
    return exc.errno in _READ_ONLY


def create_new(dir_fd: int, name: str, directory: Path, mode: int = 0o600) -> int:
    """Create the file `name` in the directory open as `dir_fd`: exclusive and never through a
    link (FileExistsError if anything is there, a dangling link included)."""
    try:
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       mode, dir_fd=dir_fd)
    except OSError as exc:
        if is_read_only(exc):
            raise cannot_create(directory, exc) from None
        raise
