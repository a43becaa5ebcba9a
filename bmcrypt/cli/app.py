"""The commands: each parses its arguments, calls one library function, renders the result."""

from __future__ import annotations

import dataclasses
import getpass
from pathlib import Path

import typer

import bmcrypt
from bmcrypt import workflow
from bmcrypt.cli import output as output_
from bmcrypt.crypto import Secret
from bmcrypt.errors import NoKey
from bmcrypt.files import make_backup
from bmcrypt.keys import generate_key_file, load_key_file, resolve_keys

app = typer.Typer(
    name="bmcrypt",
    help="Authenticated encryption for Sophgo .bmodel files.",
    no_args_is_help=True,
    add_completion=False,
    # Keys must never reach a traceback: no locals, and no pretty traceback at all for our errors.
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bmcrypt {bmcrypt.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Authenticated encryption for Sophgo .bmodel files."""


# ---------------------------------------------------------------- shared options

KeyOpt = typer.Option(None, "--key", "-k", metavar="KEYFILE",
                      help="Key file (default: $BMCRYPT_KEY_FILE).")
PassOpt = typer.Option(False, "--passphrase", "-p",
                       help="Use a passphrase (prompted, or $BMCRYPT_PASSPHRASE).")


def _secret(key: Path | None, passphrase: bool, *, confirm: bool = False) -> Secret:
    return resolve_keys(key, passphrase or None, prompt=_confirming_prompt if confirm else
                        _prompt)


def _prompt(text: str) -> str:
    return getpass.getpass(text)


def _confirming_prompt(text: str) -> str:
    first = getpass.getpass(text)
    if getpass.getpass("again: ") != first:
        raise NoKey("the two passphrases differ")
    return first


# ---------------------------------------------------------------- keys


@app.command()
def keygen(
    output: Path = typer.Option(..., "--output", "-o", metavar="KEYFILE",
                                help="Where to write the new key (mode 0600; never overwritten)."),
) -> None:
    """Create a new random 256-bit key file."""
    key = generate_key_file(output)
    output_.note(f"wrote key {key.key_id_hex} to {output}")
    output_.note("keep it secret and back it up: without it, files encrypted with it are lost")


# ---------------------------------------------------------------- encrypt / decrypt


@app.command()
def encrypt(
    model: Path = typer.Argument(..., help="The plain .bmodel to protect."),
    key: Path | None = KeyOpt,
    passphrase: bool = PassOpt,
    nets: str | None = typer.Option(None, "--nets", metavar="N1,N2",
                                    help="Encrypt only these nets' weights (default: all)."),
    out: Path | None = typer.Option(None, "--output", "-o", metavar="OUT",
                                    help="Write a new file; MODEL stays as it is."),
    no_backup: bool = typer.Option(False, "--no-backup", help="In place without MODEL.bak."),
    backup: Path | None = typer.Option(None, "--backup", metavar="PATH",
                                       help="Backup file or directory (default: MODEL.bak)."),
) -> None:
    """Encrypt a model's weights, FlatBuffer and header — in place, after a verified backup."""
    secret = _secret(key, passphrase, confirm=True)
    selected = {n.strip() for n in nets.split(",") if n.strip()} if nets else None
    with output_.progress_bars() as bars:
        done = workflow.encrypt_model(model, secret, nets=selected, output=out,
                                      backup=not no_backup, backup_path=backup, progress=bars)
    if done.backup is not None:
        verb = "made" if done.backup.created else "kept existing"
        output_.note(f"{verb} backup {done.backup.path} (sha256 {done.backup.sha256[:16]}…)")
    r = done.report
    output_.note(f"encrypted {done.target}: {output_.plural(r.sealed_regions, 'weight region')} "
                 f"({r.sealed_bytes} bytes) of {output_.plural(len(r.sealed_nets), 'net')}, "
                 f"key {r.key_id}")


@app.command()
def decrypt(
    model: Path = typer.Argument(..., help="A bmcrypt-encrypted .bmodel."),
    key: Path | None = KeyOpt,
    passphrase: bool = PassOpt,
    out: Path | None = typer.Option(None, "--output", "-o", metavar="OUT",
                                    help="Write a new plain file; MODEL stays as it is."),
    backup: Path | None = typer.Option(None, "--backup", metavar="PATH",
                                       help="Keep a copy of the encrypted file there first."),
) -> None:
    """Turn an encrypted model back into a plain one (only after every byte authenticated)."""
    secret = _secret(key, passphrase)
    with output_.progress_bars() as bars:
        done = workflow.decrypt_model(model, secret, output=out, backup_path=backup,
                                      progress=bars)
    regions = output_.plural(done.report.weight_regions, "weight region")
    output_.note(f"decrypted {done.target}: {regions} verified")


@app.command()
def verify(
    model: Path = typer.Argument(..., help="A bmcrypt-encrypted .bmodel."),
    key: Path | None = KeyOpt,
    passphrase: bool = PassOpt,
    json_: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Authenticate every byte of an encrypted model; write nothing."""
    secret = _secret(key, passphrase)
    with output_.progress_bars() as bars:
        report = workflow.verify_model(model, secret, progress=bars)
    if json_:
        output_.print_json({"path": str(model), "ok": True, **dataclasses.asdict(report)})
        return
    regions = output_.plural(report.weight_regions, "weight region")
    output_.out.print(f"{model}: OK — header, FlatBuffer, {regions} ({report.weight_bytes} "
                      f"bytes) authenticated with key {report.key_id}", markup=False)
    if report.clear_covered:
        output_.out.print(f"{model}: clear regions ({report.clear_bytes} bytes) match their "
                          "digest", markup=False)
    else:
        output_.out.print(f"{model}: clear regions not covered (written by model_tool "
                          "--encrypt; no clear-region digest in the file)", markup=False)


@app.command()
def rekey(
    model: Path = typer.Argument(..., help="A bmcrypt-encrypted .bmodel."),
    key: Path | None = typer.Option(None, "--key", "-k", metavar="OLD",
                                    help="The current key file (default: $BMCRYPT_KEY_FILE)."),
    passphrase: bool = typer.Option(False, "--passphrase", "-p",
                                    help="The current key is a passphrase (prompted)."),
    new_key: Path | None = typer.Option(None, "--new-key", metavar="NEW",
                                        help="The new key file."),
    new_passphrase: bool = typer.Option(False, "--new-passphrase",
                                        help="Switch to a passphrase (prompted twice)."),
) -> None:
    """Rewrap the file's data key for a new key; the weights are not re-encrypted."""
    old = _secret(key, passphrase)
    if (new_key is None) == (not new_passphrase):
        raise NoKey("give the new key: --new-key NEW or --new-passphrase",
                    hint="create one with `bmcrypt keygen -o NEW`")
    new = load_key_file(new_key) if new_key else _confirming_new_passphrase()
    report = workflow.rekey_model(model, old, new)
    envelopes = output_.plural(report.envelopes, "envelope")
    output_.note(f"rekeyed {model}: {envelopes} now open with key "
                 f"{report.new_key_id} (no longer {report.old_key_id})")


def _confirming_new_passphrase() -> Secret:
    return resolve_keys(None, True, env={}, prompt=_confirming_prompt)


# ---------------------------------------------------------------- backups


@app.command()
def backup(
    model: Path = typer.Argument(..., help="The model to back up."),
    to: Path | None = typer.Option(None, "--backup", metavar="PATH",
                                   help="Backup file or directory (default: MODEL.bak)."),
) -> None:
    """Make a verified backup MODEL.bak with a sha256sum manifest (as scripts/backup.sh does)."""
    with output_.progress_bars() as bars:
        made = make_backup(model, to, bars("backup", 2 * model.stat().st_size)
                           if model.is_file() else None)
    verb = "made" if made.created else "already have"
    output_.note(f"{verb} backup {made.path} (sha256 {made.sha256[:16]}…)")


@app.command()
def restore(
    model: Path = typer.Argument(..., help="The model to put back from its backup."),
    frm: Path | None = typer.Option(None, "--backup", metavar="PATH",
                                    help="The backup to restore (default: MODEL.bak)."),
    trust_unverified: bool = typer.Option(
        False, "--trust-unverified", help="Restore a backup that has no sha256 manifest."),
) -> None:
    """Put MODEL.bak back in place after checking it against its manifest."""
    restored = workflow.restore_model(model, frm, trust_unverified=trust_unverified)
    output_.note(f"restored {model} from {restored.path} (sha256 {restored.sha256[:16]}…)")
