"""`bmcrypt backup | restore`: verified backups (the same files as scripts/backup.sh)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bmcrypt.cli import output
from bmcrypt.cli.options import BackupPath


def backup(
    model: Annotated[Path, typer.Argument(help="The model to back up.")],
    to: BackupPath = None,
) -> None:
    """Make a verified backup MODEL.bak with a sha256sum manifest (as scripts/backup.sh does)."""
    from bmcrypt.files import make_backup

    with output.progress_bars() as bars:
        made = make_backup(model, to, bars("backup", 2 * model.stat().st_size)
                           if model.is_file() else None)
    verb = "made" if made.created else "already have"
    output.note(f"{verb} backup {made.path} (sha256 {made.sha256[:16]}…)")


def restore(
    model: Annotated[Path, typer.Argument(help="The model to put back from its backup.")],
    frm: Annotated[Path | None, typer.Option(
        "--backup", metavar="PATH", help="The backup to restore (default: MODEL.bak).")] = None,
    trust_unverified: Annotated[bool, typer.Option(
        "--trust-unverified", help="Restore a backup that has no sha256 manifest.")] = False,
) -> None:
    """Put MODEL.bak back in place after checking it against its manifest."""
    from bmcrypt.workflow import restore_model

    restored = restore_model(model, frm, trust_unverified=trust_unverified)
    output.note(f"restored {model} from {restored.path} (sha256 {restored.sha256[:16]}…)")
