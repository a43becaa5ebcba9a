"""Clearing away what killed runs leave behind: temp files and lock files nobody holds.

Both kinds are flock-held for as long as their owner lives, so "can we take its lock?" is an
exact test of staleness; nothing here judges by age. (One window remains: a temp file exists for
a few microseconds between its creation and its writer's flock. Deleting it then makes that
writer's final rename fail cleanly; no data is lost.)
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable
from pathlib import Path

from .locking import lock_path, remove_if_unheld
from .paths import LOCK_SUFFIX, TEMP_TAG, fit_name, fsync_dir, real_path


def _remove_if_stale(path: Path) -> bool:
    """Delete the temp file `path` if no live process holds its flock; True if deleted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # gone already, a symlink, unreadable: not ours to judge
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer
        try:
            now = os.lstat(path)
        except FileNotFoundError:
            return False
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return False
        os.unlink(path)
        return True
    finally:
        os.close(fd)


def _temp_matcher(model: Path) -> Callable[[str], bool]:
    names = {fit_name(model.name), fit_name(real_path(model).name)}
    # `.m.` covers m's own temps and those of m.bak / m.bak.sha256; `..m.` those of its journal.
    prefixes = tuple(p for n in names for p in (f".{n}.", f"..{n}."))
    return lambda name: name.startswith(prefixes) and TEMP_TAG in name


def _is_any_temp(name: str) -> bool:
    return name.startswith(".") and TEMP_TAG in name


def cleanup_stale_temps(dir_or_model: str | os.PathLike[str]) -> list[Path]:
    """Delete temp files (``.*.bmcrypt-tmp-*``) and lock files that killed bmcrypt runs left.

    Given a directory, every such file in it is considered; given a model, only its own (and its
    backup's and journal's), in its directory and, for a symlink, in the real file's directory.
    Files whose owner is still alive are flock-held and are left alone. Returns what was deleted.
    """
    given = Path(dir_or_model)
    if given.is_dir():
        directories = [given]
        is_temp: Callable[[str], bool] = _is_any_temp
        locks = [given / n for n in sorted(os.listdir(given))
                 if n.startswith(".") and n.endswith("." + LOCK_SUFFIX)]
    else:
        directories = list(dict.fromkeys([given.parent, real_path(given).parent]))
        is_temp = _temp_matcher(given)
        locks = [lock_path(given)] if os.path.lexists(lock_path(given)) else []
    removed: list[Path] = []
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            continue
        removed += [directory / n for n in names if is_temp(n) and _remove_if_stale(directory / n)]
    removed += [lock for lock in locks if remove_if_unheld(lock)]
    for directory in {path.parent for path in removed}:
        fsync_dir(directory)
    return removed
