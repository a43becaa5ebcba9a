"""`bmcrypt backup | restore`: verified backups (the same files as scripts/backup.sh)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bmcrypt.cli import batch, output
from bmcrypt.cli.options import BackupPath, Jobs, JsonOut, Quiet, Recursive, Verbose


def backup(
    models: Annotated[list[Path], typer.Argument(
        metavar="MODEL...", help="The models to back up (directories with -r).")],
    to: BackupPath = None,
    recursive: Recursive = False,
    jobs: Jobs = 1,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Make a verified backup MODEL.bak with a sha256sum manifest (as scripts/backup.sh does)."""
    from bmcrypt.files import make_backup

    paths = batch.expand(models, recursive)
    _backup_dir(paths, to)

    def work(model: Path, bars: batch.ProgressFactory) -> Any:
        return make_backup(model, to, bars("backup", 2 * model.stat().st_size)
                           if model.is_file() else None)

    outcomes = batch.run(paths, work, jobs=jobs, show=_made)
    batch.conclude(outcomes, _backup_json, verb="backed up")


def _made(_model: Path, made: Any) -> None:
    verb = "made" if made.created else "already have"
    output.note(f"{verb} backup {made.path} (sha256 {made.sha256[:16]}…)")


def restore(
    models: Annotated[list[Path], typer.Argument(
        metavar="MODEL...", help="The models to put back from their backups (directories "
                                 "with -r).")],
    frm: Annotated[Path | None, typer.Option(
        "--backup", metavar="PATH", help="The backup to restore (default: MODEL.bak).")] = None,
    trust_unverified: Annotated[bool, typer.Option(
        "--trust-unverified", help="Restore a backup that has no sha256 manifest.")] = False,
    recursive: Recursive = False,
    jobs: Jobs = 1,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Put MODEL.bak back in place after checking it against its manifest."""
    from bmcrypt.workflow import restore_model

    paths = batch.expand(models, recursive)
    _backup_dir(paths, frm)
    outcomes = batch.run(paths, lambda p, _bars: restore_model(
        p, frm, trust_unverified=trust_unverified), jobs=jobs, show=_restored)
    batch.conclude(outcomes, _backup_json, verb="restored")


def _restored(model: Path, restored: Any) -> None:
    output.note(f"restored {model} from {restored.path} (sha256 {restored.sha256[:16]}…)")


def _backup_json(made: Any) -> dict[str, Any]:
    return {"backup": {"path": str(made.path), "sha256": made.sha256, "created": made.created}}


def _backup_dir(paths: list[Path], backup: Path | None) -> None:
    if backup is not None and len(paths) > 1 and not backup.is_dir():
        from bmcrypt.errors import UsageError

        raise UsageError(f"--backup {backup} is not a directory, and {len(paths)} models "
                         "each have their own backup", hint="pass a directory to --backup")
