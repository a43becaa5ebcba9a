"""`bmcrypt encrypt | decrypt | verify`: the commands that seal and open models (rekey:
cmd_rekey.py).

Each takes one or more models (a directory with -r); batch.py runs them file by file.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bmcrypt.cli import batch, output
from bmcrypt.cli.options import (
    BackupPath,
    Jobs,
    JsonOut,
    KeyRing,
    Licences,
    Quiet,
    Recipients,
    RecipientsFile,
    RecipientSlots,
    Recursive,
    RecursiveLong,
    UsePassphrase,
    Verbose,
    keyring,
    licensed,
    recipients,
    writers,
)

if TYPE_CHECKING:
    from bmcrypt.workflow import DecryptOutcome, EncryptOutcome

Models = Annotated[list[Path], typer.Argument(
    metavar="MODEL...", help="bmcrypt-encrypted .bmodel files (directories with -r).")]


def encrypt(
    models: Annotated[list[Path], typer.Argument(
        metavar="MODEL...", help="Plain .bmodel files to protect (directories with -r).")],
    key: Annotated[list[Path] | None, typer.Option(
        "--key", "-k", metavar="KEYFILE",
        help="Encrypt for this key file or identity file; repeatable (default: "
             "$BMCRYPT_KEY_FILE, unless -r/-R/-p).")
    ] = None,
    passphrase: UsePassphrase = False,
    recipient: Recipients = None,
    recipients_file: RecipientsFile = None,
    recipient_slots: RecipientSlots = None,
    nets: Annotated[str | None, typer.Option(
        "--nets", metavar="N1,N2", help="Encrypt only these nets' weights (default: all).")] = None,
    require_licence: Annotated[str | None, typer.Option(
        "--require-license", metavar="SIGNING_KEY|bmcryptlic1…",
        help="The file opens only with a license signed by this key (a signing key file from "
             "`bmcrypt license keygen`, or its public key).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="OUT",
        help="Write a new file; MODEL stays as it is (one MODEL only).")] = None,
    no_backup: Annotated[bool, typer.Option(
        "--no-backup", help="In place without MODEL.bak.")] = False,
    backup: BackupPath = None,
    recursive: RecursiveLong = False,
    jobs: Jobs = 1,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Encrypt models' weights, FlatBuffer and header — in place, after a verified backup.

    For one or more recipients: --key (a key file, or an identity for its own recipient),
    --passphrase, and -r/-R X25519 recipients, in any combination.
    """
    from bmcrypt.crypto import DEFAULT_SLOTS
    from bmcrypt.workflow import encrypt_model

    paths = batch.expand(models, recursive)
    if out is not None:
        batch.one_at_most(paths, "--output")
        _no_stdout(out)
    _one_backup_file(paths, backup)
    policy = {} if require_licence is None else {"licence_key": _licence_key(require_licence)}
    for_whom = writers(key, passphrase, recipients(recipient, recipients_file))
    slots = recipient_slots or DEFAULT_SLOTS
    if len(for_whom) > slots:
        from bmcrypt.errors import UsageError

        raise UsageError(f"{len(for_whom)} recipients do not fit in {slots} key slots",
                         hint=f"pass --recipient-slots {len(for_whom)} or more")
    selected = {n.strip() for n in nets.split(",") if n.strip()} if nets else None
    outcomes = batch.run(paths, lambda p, bars: encrypt_model(
        p, for_whom, nets=selected, output=out, backup=not no_backup, backup_path=backup,
        progress=bars, slots=slots, **policy), jobs=jobs, show=_encrypted)
    batch.conclude(outcomes, _encrypted_json, verb="encrypted")


def _licence_key(given: str) -> bytes:
    """--require-license: a public key (``bmcryptlic1…``) or a signing key file."""
    from bmcrypt.licence import decode_public_key, load_signing_key
    from bmcrypt.licence.signing_key import PUBLIC_HRP

    if given.lower().startswith(PUBLIC_HRP + "1"):
        try:
            return decode_public_key(given)
        except ValueError as exc:
            from bmcrypt.errors import UsageError

            raise UsageError(f"--require-license: {given} is not a valid public key ({exc})",
                             hint="copy it again from `bmcrypt license keygen -y SIGNING_KEY`"
                             ) from None
    return load_signing_key(given).public_key


def _encrypted(_path: Path, done: EncryptOutcome) -> None:
    if done.backup is not None:
        verb = "made" if done.backup.created else "kept existing"
        output.note(f"{verb} backup {done.backup.path} (sha256 {done.backup.sha256[:16]}…)")
    if done.other_links:
        output.warning(f"{done.target} has {output.plural(done.other_links, 'other hard link')}; "
                       f"the other names still hold the plaintext (see docs/backups.md)")
    r = done.report
    keys = (f"key {r.key_id}" if len(r.key_ids) <= 1
            else f"{len(r.key_ids)} recipients ({', '.join(r.key_ids)})")
    output.note(f"encrypted {done.target}: {output.plural(r.sealed_regions, 'weight region')} "
                f"({r.sealed_bytes} bytes) of {output.plural(len(r.sealed_nets), 'net')}, "
                f"{keys}")


def _encrypted_json(done: EncryptOutcome) -> dict[str, Any]:
    return {"target": str(done.target), **dataclasses.asdict(done.report),
            "backup": _backup_json(done.backup)}


def _backup_json(made: Any) -> dict[str, Any] | None:
    if made is None:
        return None
    return {"path": str(made.path), "sha256": made.sha256, "created": made.created}


def _no_stdout(out: Path) -> None:
    """`encrypt -o -`: a sealed file is written out of order, so it cannot go to a pipe (and a
    file named `-` is never what was meant)."""
    if str(out) == "-":
        from bmcrypt.errors import UsageError

        raise UsageError("encrypt cannot write to stdout (-o -)",
                         hint="pass -o FILE, or leave out -o to encrypt in place")


def _one_backup_file(paths: list[Path], backup: Path | None) -> None:
    """Several models need a backup *directory* (or the default MODEL.bak beside each)."""
    if backup is not None and len(paths) > 1 and not backup.is_dir():
        from bmcrypt.errors import UsageError

        raise UsageError(f"--backup {backup} is not a directory, and {len(paths)} models "
                         "need a backup each", hint="pass an existing directory to --backup")


def decrypt(
    models: Models,
    key: KeyRing = None,
    passphrase: UsePassphrase = False,
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="OUT",
        help="Write a new plain file; MODEL stays as it is (one MODEL only; - for stdout, "
             "never a terminal).")] = None,
    backup: Annotated[Path | None, typer.Option(
        "--backup", metavar="PATH", help="Keep a copy of the encrypted file there first.")] = None,
    licence: Licences = None,
    recursive: Recursive = False,
    jobs: Jobs = 1,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Turn encrypted models back into plain ones (only after every byte authenticated)."""
    from bmcrypt.workflow import decrypt_model

    paths = batch.expand(models, recursive)
    if out is not None:
        batch.one_at_most(paths, "--output")
    _one_backup_file(paths, backup)
    if out is not None and str(out) == "-":
        _decrypt_to_stdout(paths[0], key, passphrase, json_, licence)
        return
    ring = licensed(keyring(key, passphrase), licence)
    outcomes = batch.run(paths, lambda p, bars: decrypt_model(
        p, ring, output=out, backup_path=backup, progress=bars), jobs=jobs, show=_decrypted)
    batch.conclude(outcomes, _decrypted_json, verb="decrypted")


def _decrypted(_path: Path, done: DecryptOutcome) -> None:
    regions = output.plural(done.report.weight_regions, "weight region")
    exact = done.report.original_sha256
    same = f"; the original file, sha256 {exact[:16]}…" if exact else ""
    output.note(f"decrypted {done.target}: {regions} verified{same}")


def _decrypted_json(done: DecryptOutcome) -> dict[str, Any]:
    return {"target": str(done.target), **dataclasses.asdict(done.report)}


def _decrypt_to_stdout(model: Path, key: list[Path] | None, passphrase: bool,
                       json_: bool, licence: list[Path] | None) -> None:
    """`-o -`: the plain model on stdout, which must be neither a terminal nor the JSON."""
    from bmcrypt.errors import UsageError
    from bmcrypt.workflow import decrypt_to_stream

    if json_:
        raise UsageError("--json and -o - both want stdout", hint="pass only one of them")
    if sys.stdout.isatty():
        raise UsageError("refusing to write a plain model to a terminal",
                         hint="redirect stdout (`> plain.bmodel`, `| cmd`) or pass -o FILE")
    ring = licensed(keyring(key, passphrase), licence)
    done = decrypt_to_stream(model, ring, sys.stdout.buffer)
    output.note(f"decrypted {model} to stdout: {done.size} bytes, key {done.key_id}")


def verify(
    models: Models,
    key: KeyRing = None,
    passphrase: UsePassphrase = False,
    licence: Licences = None,
    recursive: Recursive = False,
    jobs: Jobs = 1,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Authenticate every byte of encrypted models; write nothing."""
    from bmcrypt.workflow import verify_model

    paths = batch.expand(models, recursive)
    ring = licensed(keyring(key, passphrase), licence)
    outcomes = batch.run(paths, lambda p, bars: verify_model(p, ring, progress=bars),
                         jobs=jobs, show=_verified)
    batch.conclude(outcomes, dataclasses.asdict, verb="verified")


def _verified(model: Path, report: Any) -> None:
    regions = output.plural(report.weight_regions, "weight region")
    output.data(f"{model}: OK — header, FlatBuffer, {regions} ({report.weight_bytes} bytes) "
                f"authenticated with key {report.key_id}")
    if report.clear_covered:
        output.data(f"{model}: clear regions ({report.clear_bytes} bytes) match their digest")
    else:
        output.data(f"{model}: clear regions not covered (written by model_tool --encrypt; "
                    "no clear-region digest in the file)")
