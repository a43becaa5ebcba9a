"""`bmcrypt inspect`: parse the arguments, build the reports (bmcrypt.inspect), render them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bmcrypt.cli import output as output_
from bmcrypt.cli.options import UsePassphrase, key_choice

HELP = (
    "Show what a model holds: chip, nets, IO, weights, memory, byte layout, encryption.\n\n"
    "The numbers are those of `model_tool --info`. No key is needed: without one, an "
    "encrypted model shows what is visible without it. With several models, also say "
    "whether they carry the same weights; a file that cannot be read is reported on stderr, "
    "the others are still shown, and the exit status is non-zero. See docs/inspect.md."
)


SHORT_HELP = "Show a model's nets, weights, memory and layout (no key needed)."


def inspect_cmd(
    models: Annotated[list[Path], typer.Argument(
        metavar="MODEL", help="Plain or encrypted .bmodel files.")],
    json_: Annotated[bool, typer.Option(
        "--json", help="Print JSON: one object, or {files, comparison} for several.")] = False,
    key: Annotated[Path | None, typer.Option(
        "--key", "-k", metavar="KEYFILE",
        help="Also show what bmcrypt-encrypted models hold (default: $BMCRYPT_KEY_FILE if set; "
             "never required).")] = None,
    passphrase: UsePassphrase = False,
) -> None:
    from bmcrypt.cli import inspect_view
    from bmcrypt.inspect import Batch, SomeFilesFailed, batch_json, inspect_file, inspect_files

    choice = key_choice(key, passphrase)
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

