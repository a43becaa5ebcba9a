"""`bmcrypt encrypt | decrypt | verify | rekey`: the commands that seal and open models.

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
    new_secret,
    recipients,
    secret,
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
        help="Key file or identity file, once (default: $BMCRYPT_KEY_FILE, unless -r/-R).")
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
    public = recipients(recipient, recipients_file)
    # With -r/-R alone the environment's key is not added: encrypting for devices must not
    # silently also encrypt for whatever key this shell happens to hold.
    writers: list[Any] = [secret(key, passphrase, confirm=True)] if (
        key or passphrase or not public) else []
    writers += public
    slots = recipient_slots or DEFAULT_SLOTS
    if len(writers) > slots:
        from bmcrypt.errors import UsageError

        raise UsageError(f"{len(writers)} recipients do not fit in {slots} key slots",
                         hint=f"pass --recipient-slots {len(writers)} or more")
    selected = {n.strip() for n in nets.split(",") if n.strip()} if nets else None
    outcomes = batch.run(paths, lambda p, bars: encrypt_model(
        p, writers, nets=selected, output=out, backup=not no_backup, backup_path=backup,
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


def rekey(
    models: Models,
    key: Annotated[list[Path] | None, typer.Option(
        "--key", "-k", metavar="OLD",
        help="A current key or identity file; repeat it for a key ring (default: "
             "$BMCRYPT_KEY_FILE).")] = None,
    passphrase: Annotated[bool, typer.Option(
        "--passphrase", "-p", help="The current key is a passphrase (prompted).")] = False,
    new_key: Annotated[Path | None, typer.Option(
        "--new-key", metavar="NEW", help="Replace the key you open with by this key file.")
    ] = None,
    new_passphrase: Annotated[bool, typer.Option(
        "--new-passphrase", help="Replace it by a passphrase (prompted twice).")] = False,
    add_recipient: Annotated[list[str] | None, typer.Option(
        "--add-recipient", metavar="R",
        help="Add a recipient: bmcrypt1… or a key/identity file; repeatable. Only the "
             "header's key area is rewritten.")] = None,
    remove_recipient: Annotated[list[str] | None, typer.Option(
        "--remove-recipient", metavar="R|KEYID",
        help="Remove a recipient, by bmcrypt1… or key id; repeatable. It can no longer open "
             "the file, but a data key it already has still decrypts it: see "
             "--rotate-data-key.")] = None,
    recipients_file: RecipientsFile = None,
    list_: Annotated[bool, typer.Option(
        "--list", help="List the recipients (key id and type); no key needed.")] = False,
    rotate: Annotated[bool, typer.Option(
        "--rotate-data-key",
        help="Re-encrypt everything under a fresh data key, for the keys given (-k/-p) and "
             "--add-recipient/-R only: real revocation.")] = False,
    recipient_slots: RecipientSlots = None,
    backup: Annotated[Path | None, typer.Option(
        "--backup", metavar="PATH",
        help="--rotate-data-key: keep a copy of the old file there first.")] = None,
    licence: Licences = None,
    recursive: Recursive = False,
    jobs: Jobs = 1,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Change who opens files: a new key, recipients added or removed (no weight is
    re-encrypted), or a fresh data key (--rotate-data-key)."""
    from bmcrypt import workflow

    paths = batch.expand(models, recursive)
    # --rotate-data-key takes its new recipients from -k/-p, --add-recipient and -R; a
    # recipient it is not given is dropped, so it needs no --remove-recipient.
    changes = bool(remove_recipient or (not rotate and (add_recipient or recipients_file)))
    _one_mode(list_=list_, rotate=rotate, changes=changes,
              new=new_key is not None or new_passphrase)
    if list_:
        outcomes = batch.run(paths, lambda p, _bars: workflow.list_model_recipients(p),
                             jobs=jobs, show=_listed)
        batch.conclude(outcomes, _recipients_json, verb="listed")
        return
    old = licensed(keyring(key, passphrase), licence)
    added = _added(add_recipient) + recipients(None, recipients_file)
    if rotate:
        _one_backup_file(paths, backup)
        writers = _secrets_list(old) + added
        outcomes = batch.run(paths, lambda p, bars: workflow.rotate_data_key(
            p, old, writers, slots=recipient_slots, backup_path=backup, progress=bars),
            jobs=jobs, show=_rotated)
        batch.conclude(outcomes, _rotated_json, verb="rotated")
        return
    if changes:
        outcomes = batch.run(paths, lambda p, _bars: workflow.change_model_recipients(
            p, old, add=added, remove=remove_recipient or ()), jobs=jobs, show=_changed)
        batch.conclude(outcomes, _recipients_json, verb="changed")
        return
    new = new_secret(new_key, new_passphrase)
    outcomes = batch.run(paths, lambda p, _bars: workflow.rekey_model(p, old, new), jobs=jobs,
                         show=_rekeyed)
    batch.conclude(outcomes, dataclasses.asdict, verb="rekeyed")


def _one_mode(**modes: bool) -> None:
    chosen = [name for name, on in modes.items() if on]
    if len(chosen) > 1:
        from bmcrypt.errors import UsageError

        flags = {"list_": "--list", "rotate": "--rotate-data-key",
                 "changes": "--add-recipient/--remove-recipient/-R",
                 "new": "--new-key/--new-passphrase"}
        raise UsageError(f"{' and '.join(flags[c] for c in chosen)} exclude each other",
                         hint="run rekey once for each change")


def _added(values: list[str] | None) -> list[Any]:
    """--add-recipient values: recipient strings, or key/identity files (an identity adds its
    recipient, never its secret)."""
    from bmcrypt.keys import load_key_file

    out: list[Any] = []
    for value in values or ():
        if value.strip().lower().startswith("bmcrypt1") or not Path(value).exists():
            out += recipients([value], None)
        else:
            out.append(load_key_file(value))
    return out


def _secrets_list(ring: Any) -> list[Any]:
    from bmcrypt.crypto.filekeys import secrets_of

    return list(secrets_of(ring))


def _rekeyed(model: Path, report: Any) -> None:
    envelopes = output.plural(report.envelopes, "envelope")
    output.note(f"rekeyed {model}: {envelopes} now open with key "
                f"{report.new_key_id} (no longer {report.old_key_id})")


def _recipients_text(report: Any) -> str:
    listed = ", ".join(f"{r.key_id} ({r.type})" for r in report.recipients)
    return (f"{output.plural(len(report.recipients), 'recipient')} of {report.slots} slots: "
            f"{listed}")


def _listed(model: Path, report: Any) -> None:
    output.data(f"{model}: {_recipients_text(report)}")


def _changed(model: Path, report: Any) -> None:
    done = [f"added {', '.join(report.added)}"] if report.added else []
    done += [f"removed {', '.join(report.removed)}"] if report.removed else []
    output.note(f"{model}: {'; '.join(done)}; now {_recipients_text(report)}")
    if report.removed:
        output.note("a removed recipient that already unwrapped the data key can still decrypt "
                    "this file; `bmcrypt rekey --rotate-data-key` revokes for real")


def _recipients_json(report: Any) -> dict[str, Any]:
    return {"recipients": [dataclasses.asdict(r) for r in report.recipients],
            "slots": report.slots, "free_slots": report.free_slots,
            "added": list(report.added), "removed": list(report.removed)}


def _rotated(_model: Path, done: Any) -> None:
    r = done.report
    output.note(f"rotated the data key of {done.target}: re-encrypted "
                f"{output.plural(r.sealed_regions, 'weight region')} for "
                f"{', '.join(r.key_ids)}")
    if done.dropped:
        output.note(f"no longer opens with {', '.join(done.dropped)}")


def _rotated_json(done: Any) -> dict[str, Any]:
    r = done.report
    return {"target": str(done.target), "key_ids": list(r.key_ids),
            "old_key_ids": list(done.old_recipients), "dropped": list(done.dropped),
            "sealed_regions": r.sealed_regions, "sealed_bytes": r.sealed_bytes,
            "original_sha256": r.original_sha256, "backup": _backup_json(done.backup)}
