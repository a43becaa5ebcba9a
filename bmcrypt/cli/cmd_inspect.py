"""`bmcrypt inspect`: parse the arguments, build the reports (bmcrypt.inspect), render them."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import typer

from bmcrypt.cli import inspect_view
from bmcrypt.cli import output as output_
from bmcrypt.cli.app import app
from bmcrypt.errors import KeyProblem
from bmcrypt.inspect import (
    Batch,
    KeyChoice,
    SomeFilesFailed,
    batch_json,
    inspect_file,
    inspect_files,
)
from bmcrypt.keys import ENV_KEY_FILE, load_key_file, resolve_keys

_HELP = (
    "Show what a model holds: chip, nets, IO, weights, memory, byte layout, encryption.\n\n"
    "The numbers are those of `model_tool --info`. No key is needed: without one, an "
    "encrypted model shows what is visible without it. With several models, also say "
    "whether they carry the same weights; a file that cannot be read is reported on stderr, "
    "the others are still shown, and the exit status is non-zero. See docs/inspect.md."
)


@app.command("inspect", help=_HELP,
             short_help="Show a model's nets, weights, memory and layout (no key needed).")
def inspect_cmd(
    models: list[Path] = typer.Argument(..., metavar="MODEL",
                                        help="Plain or encrypted .bmodel files."),
    json_: bool = typer.Option(False, "--json",
                               help="Print JSON: one object, or {files, comparison} for several."),
    key: Path | None = typer.Option(
        None, "--key", "-k", metavar="KEYFILE",
        help="Also show what bmcrypt-encrypted models hold (default: $BMCRYPT_KEY_FILE if set; "
             "never required)."),
    passphrase: bool = typer.Option(False, "--passphrase", "-p",
                                    help="Open encrypted models with a passphrase (prompted, "
                                         "or $BMCRYPT_PASSPHRASE)."),
) -> None:
    choice = _key_choice(key, passphrase)
    if len(models) == 1:  # a bad file is then the usual single error, nothing on stdout
        batch = Batch([inspect_file(models[0], choice)], None)
    else:
        batch = inspect_files(models, choice)
    if json_:
        output_.print_json(batch_json(batch))
    else:
        inspect_view.render(batch.results, batch.comparison)
    if batch.failures:
        for failure in batch.failures:
            output_.error(failure.error)
        raise SomeFilesFailed(len(batch.failures), len(models), batch.failures[0].error.exit_code)


def _key_choice(key: Path | None, passphrase: bool) -> KeyChoice | None:
    """--key is loaded now (a bad key file is an error even for plain models); a passphrase is
    asked for only when a bmcrypt file needs it; $BMCRYPT_KEY_FILE is a soft default."""
    if key is not None and passphrase:
        raise KeyProblem("--key and --passphrase exclude each other", hint="pass only one")
    if key is not None:
        secret = load_key_file(key)
        return KeyChoice(lambda: secret, explicit=True)
    if passphrase:
        return KeyChoice(lambda: resolve_keys(None, True, prompt=getpass.getpass), explicit=True)
    env_key = os.environ.get(ENV_KEY_FILE)
    if env_key:
        return KeyChoice(lambda: load_key_file(env_key), explicit=False)
    return None
