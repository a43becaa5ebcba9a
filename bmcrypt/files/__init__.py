"""File safety: backups, atomic replacement, locks, crash-safe in-place patches.

Knows nothing about bmodels or cryptography; every command that changes a model goes through here.
A typical change of a model, as the CLI does it::

    with file_lock(model):
        recover_journal(model)          # finish or drop what a crashed run left
        make_backup(model)              # verified MODEL.bak + MODEL.bak.sha256
        with atomic_write(model) as f:  # all or nothing
            ...

docs/backups.md describes the on-disk conventions and what survives which crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bmcrypt._lazy import lazy_names

# Names are imported on first use: a command that only opens a file (`inspect`, `verify`) needs
# neither the backup code nor its thread pool (issue 17, start-up).
_HOME = {
    "atomic": ("atomic_write",),
    "backup": ("BackupResult", "ModelReadback", "backup_path_for", "can_keep_as_backup",
               "keep_as_backup", "make_backup", "restore_backup", "verify_backup"),
    "cleanup": ("cleanup_stale_temps",),
    "hashing": ("Progress", "sha256_file"),
    "journal": ("Patch", "RecoveryOutcome", "journal_path", "patch_in_place", "recover_journal"),
    "locking": ("file_lock", "lock_path"),
    "sha256sum": ("manifest_path",),
}

__all__ = [
    "BackupResult",
    "ModelReadback",
    "Patch",
    "Progress",
    "RecoveryOutcome",
    "atomic_write",
    "backup_path_for",
    "can_keep_as_backup",
    "cleanup_stale_temps",
    "file_lock",
    "journal_path",
    "lock_path",
    "keep_as_backup",
    "make_backup",
    "manifest_path",
    "patch_in_place",
    "recover_journal",
    "restore_backup",
    "sha256_file",
    "verify_backup",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOME)


if TYPE_CHECKING:
    from .atomic import atomic_write
    from .backup import (
        BackupResult,
        ModelReadback,
        backup_path_for,
        can_keep_as_backup,
        keep_as_backup,
        make_backup,
        restore_backup,
        verify_backup,
    )
    from .cleanup import cleanup_stale_temps
    from .hashing import Progress, sha256_file
    from .journal import Patch, RecoveryOutcome, journal_path, patch_in_place, recover_journal
    from .locking import file_lock, lock_path
    from .sha256sum import manifest_path
