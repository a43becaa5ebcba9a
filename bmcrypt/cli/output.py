"""All terminal output of the CLI: data to stdout, messages to stderr, progress on a terminal."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from bmcrypt.cli import mode
from bmcrypt.errors import BmcryptError

# Data goes to stdout, everything meant for a human reading along goes to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


# C0 and C1 control characters, DEL, and the lone surrogates that stand for undecodable bytes
# in a file name (os.fsdecode): a name must never move the cursor, clear the screen, retitle
# the terminal or start a new line that looks like our own output.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: object) -> str:
    """`text` (a path, a name from a file, a whole message) fit for a terminal: control
    characters and undecodable bytes escaped (``\\x1b[2J``, ``\\n``, ``\\xff``), all else as it
    is. Every human-readable line the CLI prints goes through here; --json escapes by itself."""
    return _UNSAFE.sub(_escape, str(text))


def print_json(obj: Any) -> None:
    """Print machine-readable output, one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def data(line: str) -> None:
    """A line of the command's result, on stdout (never markup; control characters escaped)."""
    out.print(safe(line), markup=False)


def error(exc: BmcryptError) -> None:
    """The one-line error with its hint, age-style: `bmcrypt: error: …` then `bmcrypt: hint: …`."""
    err.print(f"bmcrypt: error: {safe(exc.message)}", markup=False)
    if exc.hint:
        err.print(f"bmcrypt: hint: {safe(exc.hint)}", markup=False)


def warning(message: str) -> None:
    """Something the user must know although the command succeeded: `bmcrypt: warning: …`."""
    err.print(f"bmcrypt: warning: {safe(message)}", markup=False)


def os_error_of(exc: OSError) -> BmcryptError:
    """An OS error nobody foresaw (disk full, I/O error, …) as one of ours: one line, exit 1."""
    where = f" ({exc.filename})" if exc.filename else ""
    return BmcryptError(f"{(exc.strerror or str(exc)).lower()}{where}",
                        hint="check the path, its permissions and free disk space")


def plural(n: int, word: str) -> str:
    """`1 net`, `2 nets`: counts in messages read like English."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def note(message: str) -> None:
    """A progress or status line for the human, never part of the data (not with -q; control
    characters escaped)."""
    if mode.current.quiet:
        return
    err.print(safe(message), markup=False)


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
