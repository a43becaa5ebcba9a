"""`bmcrypt encrypt | decrypt | verify | rekey`: the commands that seal and open models."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from bmcrypt.cli import output
from bmcrypt.cli.options import (
    BackupPath,
    JsonOut,
    KeyFile,
    Output,
    UsePassphrase,
    new_secret,
    secret,
)

Model = Annotated[Path, typer.Argument(help="A bmcrypt-encrypted .bmodel.")]


def encrypt(
    model: Annotated[Path, typer.Argument(help="The plain .bmodel to protect.")],
    key: KeyFile = None,
    passphrase: UsePassphrase = False,
    nets: Annotated[str | None, typer.Option(
        "--nets", metavar="N1,N2", help="Encrypt only these nets' weights (default: all).")] = None,
    out: Output = None,
    no_backup: Annotated[bool, typer.Option(
        "--no-backup", help="In place without MODEL.bak.")] = False,
    backup: BackupPath = None,
) -> None:
    """Encrypt a model's weights, FlatBuffer and header — in place, after a verified backup."""
    from bmcrypt.workflow import encrypt_model

    key_ = secret(key, passphrase, confirm=True)
    selected = {n.strip() for n in nets.split(",") if n.strip()} if nets else None
    with output.progress_bars() as bars:
        done = encrypt_model(model, key_, nets=selected, output=out, backup=not no_backup,
                             backup_path=backup, progress=bars)
    if done.backup is not None:
        verb = "made" if done.backup.created else "kept existing"
        output.note(f"{verb} backup {done.backup.path} (sha256 {done.backup.sha256[:16]}…)")
    if done.other_links:
        output.warning(f"{done.target} has {output.plural(done.other_links, 'other hard link')}; "
                       f"the other names still hold the plaintext (see docs/backups.md)")
    r = done.report
    output.note(f"encrypted {done.target}: {output.plural(r.sealed_regions, 'weight region')} "
                f"({r.sealed_bytes} bytes) of {output.plural(len(r.sealed_nets), 'net')}, "
                f"key {r.key_id}")


def decrypt(
    model: Model,
    key: KeyFile = None,
    passphrase: UsePassphrase = False,
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="OUT",
        help="Write a new plain file; MODEL stays as it is.")] = None,
    backup: Annotated[Path | None, typer.Option(
        "--backup", metavar="PATH", help="Keep a copy of the encrypted file there first.")] = None,
) -> None:
    """Turn an encrypted model back into a plain one (only after every byte authenticated)."""
    from bmcrypt.workflow import decrypt_model

    key_ = secret(key, passphrase)
    with output.progress_bars() as bars:
        done = decrypt_model(model, key_, output=out, backup_path=backup, progress=bars)
    regions = output.plural(done.report.weight_regions, "weight region")
    output.note(f"decrypted {done.target}: {regions} verified")


def verify(
    model: Model,
    key: KeyFile = None,
    passphrase: UsePassphrase = False,
    json_: JsonOut = False,
) -> None:
    """Authenticate every byte of an encrypted model; write nothing."""
    from bmcrypt.workflow import verify_model

    key_ = secret(key, passphrase)
    with output.progress_bars() as bars:
        report = verify_model(model, key_, progress=bars)
    if json_:
        output.print_json({"path": str(model), "ok": True, **dataclasses.asdict(report)})
        return
    regions = output.plural(report.weight_regions, "weight region")
    output.data(f"{model}: OK — header, FlatBuffer, {regions} ({report.weight_bytes} bytes) "
                f"authenticated with key {report.key_id}")
    if report.clear_covered:
        output.data(f"{model}: clear regions ({report.clear_bytes} bytes) match their digest")
    else:
        output.data(f"{model}: clear regions not covered (written by model_tool --encrypt; "
                    "no clear-region digest in the file)")


def rekey(
    model: Model,
    key: Annotated[Path | None, typer.Option(
        "--key", "-k", metavar="OLD",
        help="The current key file (default: $BMCRYPT_KEY_FILE).")] = None,
    passphrase: Annotated[bool, typer.Option(
        "--passphrase", "-p", help="The current key is a passphrase (prompted).")] = False,
    new_key: Annotated[Path | None, typer.Option(
        "--new-key", metavar="NEW", help="The new key file.")] = None,
    new_passphrase: Annotated[bool, typer.Option(
        "--new-passphrase", help="Switch to a passphrase (prompted twice).")] = False,
) -> None:
    """Rewrap the file's data key for a new key; the weights are not re-encrypted."""
    from bmcrypt.workflow import rekey_model

    old = secret(key, passphrase)
    new = new_secret(new_key, new_passphrase)
    report = rekey_model(model, old, new)
    envelopes = output.plural(report.envelopes, "envelope")
    output.note(f"rekeyed {model}: {envelopes} now open with key "
                f"{report.new_key_id} (no longer {report.old_key_id})")
