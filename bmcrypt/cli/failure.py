"""How a failed run ends: the house error lines, and the JSON document when one was asked for.

`main.py` calls these; they return the exit code. A usage error (the parser refused the command
line) reads like every other error — `bmcrypt: error: …` and `bmcrypt: hint: …`, exit 2 — not
click's boxed three lines.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from bmcrypt.cli import jsondoc, mode, output
from bmcrypt.errors import BmcryptError

USAGE_EXIT = 2


def bmcrypt_error(exc: BmcryptError, argv: Sequence[str] | None) -> int:
    """One of our errors: its lines on stderr, its document on stdout under --json."""
    output.error(exc)
    if _wants_json(argv):
        jsondoc.emit_failure(jsondoc.error_json(exc), _command(argv))
    return exc.exit_code


def usage_error(exc: typer.TyperException, argv: Sequence[str] | None) -> int:
    """The parser refused the command line (Typer's click raises a TyperException); `bmcrypt`
    alone still shows the help."""
    exit_code = getattr(exc, "exit_code", USAGE_EXIT) or USAGE_EXIT
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # type: ignore[attr-defined]
        return exit_code
    format_message = getattr(exc, "format_message", None)
    message = format_message() if format_message is not None else str(exc)
    message = (message[:1].lower() + message[1:]).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "bmcrypt"
    hint = f"see `{where} --help`"
    output.error(BmcryptError(message, hint=hint))
    if _wants_json(argv):
        jsondoc.emit_failure(jsondoc.usage_error_json(message, hint), _command(argv))
    return exit_code


def _args(argv: Sequence[str] | None) -> Sequence[str]:
    return sys.argv[1:] if argv is None else argv


def _wants_json(argv: Sequence[str] | None) -> bool:
    # The option's callback may not have run: the parser can fail before it reaches --json.
    return mode.current.json or "--json" in _args(argv)


def _command(argv: Sequence[str] | None) -> str | None:
    return next((a for a in _args(argv) if not a.startswith("-")), None)
