"""`bmcrypt rekey`: change who opens models — a new key, recipients added or removed (only the
header's key area is rewritten), or a fresh data key (real revocation)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from bmcrypt.cli import batch, output
from bmcrypt.cli.cmd_protect import Models, _backup_json, _one_backup_file
from bmcrypt.cli.options import (
    Jobs,
    JsonOut,
    Licences,
    Quiet,
    RecipientsFile,
    RecipientSlots,
    Recursive,
    Verbose,
    keyring,
    licensed,
    new_secret,
    recipients,
)


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
    """Change who opens files: a new key, added or removed recipients, or a fresh data key.

    A new key and recipient changes rewrite key material only: no weight is re-encrypted or
    moved. --rotate-data-key re-encrypts everything under a fresh data key."""
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
