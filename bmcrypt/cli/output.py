"""All terminal output of the CLI: data to stdout, messages to stderr, progress on a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from bmcrypt.errors import BmcryptError

# Data goes to stdout, everything meant for a human reading along goes to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(obj: Any) -> None:
    """Print machine-readable output, one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def data(line: str) -> None:
    """A line of the command's result, on stdout (never markup: names are printed as they are)."""
    out.print(line, markup=False)


def error(exc: BmcryptError) -> None:
    """The one-line error with its hint, age-style: `bmcrypt: error: …` then `bmcrypt: hint: …`."""
    err.print(f"bmcrypt: error: {exc.message}", markup=False)
    if exc.hint:
        err.print(f"bmcrypt: hint: {exc.hint}", markup=False)


def os_error(exc: OSError) -> int:
    """An OS error nobody foresaw (disk full, I/O error, …), in one line; returns exit code 1."""
    where = f" ({exc.filename})" if exc.filename else ""
    error(BmcryptError(f"{(exc.strerror or str(exc)).lower()}{where}",
                       hint="check the path, its permissions and free disk space"))
    return 1


def plural(n: int, word: str) -> str:
    """`1 net`, `2 nets`: counts in messages read like English."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def note(message: str) -> None:
    """A progress or status line for the human, never part of the data."""
    err.print(message, markup=False)


def on_terminal() -> bool:
    """Progress bars only when a person watches stderr."""
    return sys.stderr.isatty()


# ---------------------------------------------------------------- progress

#: Below this many bytes an operation is over before a bar would be worth drawing.
PROGRESS_MIN_BYTES = 16 << 20


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int], Callable[[int], None] | None]]:
    """A factory of progress callbacks: rich bars on a terminal, nothing when piped."""
    if not on_terminal():
        yield lambda _what, _total: None
        return
    from rich.progress import (  # only when a bar is drawn: 8 ms of every start-up otherwise
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (TextColumn("{task.description:<8}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bars:

        def factory(what: str, total: int) -> Callable[[int], None] | None:
            if total < PROGRESS_MIN_BYTES:
                return None
            task = bars.add_task(what, total=total)
            return lambda n: bars.advance(task, n)

        yield factory
