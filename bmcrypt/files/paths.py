"""Names of the files bmcrypt keeps next to a model, and the small filesystem helpers every other
module here needs (checked opening, directory fsync).

Every helper file is hidden and derived from the model's name, so that ``ls`` stays clean and a
directory listing is enough to find what a crashed run left behind::

    m.bmodel                          the model
    .m.bmodel.bmcrypt-lock            advisory lock (locking.py)
    .m.bmodel.bmcrypt-journal         in-place patch journal (journal.py)
    .m.bmodel.bmcrypt-tmp-XXXXXXXX    temp file of an atomic replace (atomic.py)
    m.bmodel.bak, m.bmodel.bak.sha256 the backup and its manifest (backup.py)

A leading dot is always added, even to a name that already has one, so `x` and `.x` never share
a journal. scripts/backup.sh computes the same names; keep the two in step.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

TEMP_TAG = ".bmcrypt-tmp-"
LOCK_SUFFIX = "bmcrypt-lock"
JOURNAL_SUFFIX = "bmcrypt-journal"

# A hidden name adds up to ~40 bytes (dot, suffix, 8 random characters) to the model's name; longer
# names are shortened but keep a hash of the full name so two long names never collide.
_MAX_NAME_BYTES = 200
_KEEP_BYTES = 180


def fit_name(name: str) -> str:
    """`name`, or if over 200 bytes: its first 180 bytes, ``~``, 16 hex digits of its SHA-256."""
    raw = os.fsencode(name)
    if len(raw) <= _MAX_NAME_BYTES:
        return name
    return os.fsdecode(raw[:_KEEP_BYTES]) + "~" + hashlib.sha256(raw).hexdigest()[:16]


def sidecar(path: Path, suffix: str) -> Path:
    """The hidden helper file ``.<name>.<suffix>`` next to `path`."""
    return path.with_name(f".{fit_name(path.name)}.{suffix}")


def temp_prefix(target: Path) -> str:
    """The name prefix of temp files that will become `target`: ``.<name>.bmcrypt-tmp-``."""
    return f".{fit_name(target.name)}{TEMP_TAG}"


def real_path(path: str | os.PathLike[str]) -> Path:
    """`path` with symlinks resolved: a link to a model is written through, never replaced."""
    return Path(os.path.realpath(path))


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable (a no-op where the filesystem can't)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        fsync_fd(fd)
    finally:
        os.close(fd)


def fsync_fd(dir_fd: int) -> None:
    """`fsync_dir` for a directory already open as `dir_fd`."""
    try:
        os.fsync(dir_fd)
    except OSError as exc:  # some filesystems refuse fsync on directories; nothing more we can do
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise


def reopen(fd: int, flags: int) -> int:
    """The file open at `fd`, opened again with `flags` (a descriptor with flags of its own),
    through /proc/self/fd: the open file itself, whatever its name points to now."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)


def default_new_file_mode() -> int:
    """The mode `open()` would give a new file: 0o666 minus the process umask."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644  # no /proc (or no Umask line): the common umask 022
