"""All terminal output of the CLI: data to stdout, messages to stderr, progress on a terminal."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

from bmcrypt.cli import mode
from bmcrypt.errors import BmcryptError

if TYPE_CHECKING:
    from rich.console import Console

    out: Console
    err: Console

# Data goes to stdout, everything meant for a human reading along goes to stderr. The rich
# consoles `out` and `err` (styles, progress bars) are made on first use: the plain lines below
# are written directly, so a command that prints only those never imports rich (issue 17).


def __getattr__(name: str) -> Any:
    if name in ("out", "err"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _console(name: str) -> Console:
    console = globals().get(name)
    if console is None:
        from rich.console import Console

        console = Console(stderr=name == "err", highlight=False, soft_wrap=True)
        globals()[name] = console
    return console


def _line(name: str, text: str) -> None:
    """One plain line on stdout ("out") or stderr ("err"), as ``Console.print(text,
    markup=False)`` wrote it. Once rich is loaded (a progress bar, inspect's styles) the console
    prints it, so a live bar stays below the line; until then it is written directly."""
    console = globals().get(name)
    if console is not None:
        console.print(text, markup=False)
        return
    stream: TextIO = sys.stderr if name == "err" else sys.stdout
    stream = getattr(stream, "rich_proxied_file", stream)  # as rich's Console.file does
    stream.write(text + "\n")  # a reader that left (EPIPE): click ends the run, exit 1
    stream.flush()


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
    _line("out", safe(line))


def error(exc: BmcryptError) -> None:
    """The one-line error with its hint, age-style: `bmcrypt: error: …` then `bmcrypt: hint: …`."""
    _line("err", f"bmcrypt: error: {safe(exc.message)}")
    if exc.hint:
        _line("err", f"bmcrypt: hint: {safe(exc.hint)}")


def warning(message: str) -> None:
    """Something the user must know although the command succeeded: `bmcrypt: warning: …`."""
    _line("err", f"bmcrypt: warning: {safe(message)}")


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
    _line("err", safe(message))


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
    with Progress(*columns, console=_console("err"), transient=True) as bars:

        def factory(what: str, total: int) -> Callable[[int], None] | None:
            if total < PROGRESS_MIN_BYTES:
                return None
            task = bars.add_task(what, total=total)
            return lambda n: bars.advance(task, n)

        yield factory
