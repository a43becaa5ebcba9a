"""`bmcrypt inspect`: parse the arguments, build the reports (bmcrypt.inspect), render them."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bmcrypt.cli import batch
from bmcrypt.cli import mode as mode_
from bmcrypt.cli.options import (
    Jobs,
    JsonOut,
    Licences,
    Quiet,
    Recursive,
    UsePassphrase,
    Verbose,
    key_choice,
)

if TYPE_CHECKING:
    from bmcrypt.inspect import FileReport, KeyChoice

HELP = (
    "Show what a model holds: chip, nets, IO, weights, memory, byte layout, encryption.\n\n"
    "The numbers are those of `model_tool --info`. No key is needed: without one, an "
    "encrypted model shows what is visible without it. With several models, also say "
    "whether they carry the same weights; a file that cannot be read is reported on stderr, "
    "the others are still shown, and the exit status is non-zero. MODEL - reads the model "
    "from stdin. See docs/inspect.md."
)


SHORT_HELP = "Show a model's nets, weights, memory and layout (no key needed)."

STDIN = Path("-")


def inspect_cmd(
    models: Annotated[list[Path], typer.Argument(
        metavar="MODEL...", help="Plain or encrypted .bmodel files (- for stdin, directories "
                                 "with -r).")],
    json_: JsonOut = False,
    key: Annotated[list[Path] | None, typer.Option(
        "--key", "-k", metavar="KEYFILE",
        help="Also show what bmcrypt-encrypted models hold; repeat it for a key ring (default: "
             "$BMCRYPT_KEY_FILE if set; never required).")] = None,
    passphrase: UsePassphrase = False,
    licence: Licences = None,
    recursive: Recursive = False,
    jobs: Jobs = 1,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    from bmcrypt.cli import inspect_view
    from bmcrypt.errors import KeyProblem
    from bmcrypt.inspect import FileFailure, compare, to_json

    paths = batch.expand(models, recursive)
    choice = key_choice(key, passphrase, licence)
    if choice is not None and jobs > 1:
        choice.secret()  # once, here: a passphrase prompt does not belong in a worker thread
    with _stdin_spooled(paths) as spooled:
        outcomes = batch.run(paths, lambda p, _bars: _inspect_one(p, choice, spooled),
                             jobs=jobs, stop_on=(KeyProblem,))
    results = [o.result if o.result is not None
               else FileFailure(str(o.path), o.error)  # type: ignore[arg-type]
               for o in outcomes]
    comparison = compare(results) if len(results) > 1 else None
    if not mode_.current.json:
        inspect_view.render(results, comparison)
    extra: dict[str, Any] = {}
    if comparison is not None:
        import dataclasses

        extra["comparison"] = dataclasses.asdict(comparison)
    batch.conclude(outcomes, lambda r: _without_path(to_json(r)), verb="inspected", **extra)


def _without_path(d: dict[str, Any]) -> dict[str, Any]:
    d.pop("path", None)  # the batch entry carries it first
    return d


def _inspect_one(path: Path, choice: KeyChoice | None, spooled: Path | None) -> FileReport:
    from bmcrypt.errors import BmcryptError
    from bmcrypt.inspect import inspect_file

    if path != STDIN or spooled is None:
        return inspect_file(path, choice)
    try:
        report = inspect_file(spooled, choice)
    except BmcryptError as exc:  # name stdin as the user did, not our temp file
        exc.message = exc.message.replace(str(spooled), "-")
        exc.args = (exc.message,)
        raise
    report.path = "-"
    return report


@contextmanager
def _stdin_spooled(paths: list[Path]) -> Iterator[Path | None]:
    """`inspect -`: stdin copied to a private temp file, as the reader maps files."""
    if STDIN not in paths:
        yield None
        return
    from bmcrypt.errors import UsageError

    if sys.stdin.isatty():
        raise UsageError("inspect - reads a model from stdin, and stdin is a terminal",
                         hint="pipe a model in: `cat model.bmodel | bmcrypt inspect -`")
    with tempfile.TemporaryDirectory(prefix="bmcrypt-stdin-") as tmp:
        spooled = Path(tmp) / "stdin.bmodel"
        with open(spooled, "wb") as f:
            while chunk := sys.stdin.buffer.read(1 << 20):
                f.write(chunk)
        os.chmod(spooled, 0o600)
        yield spooled
