"""The one JSON document a command prints with `--json` (schemas/json/, docs/json.md).

Every document is an object with ``"schema": "bmcrypt/1"``, the ``command`` and ``ok``. Commands
that take model files add ``files`` (one entry per file, in the order given, also for a single
file) and ``summary``; the others put their result fields beside these. On failure there is an
``error`` object — ``code`` (the exit code), ``kind``, ``message``, ``hint`` — and the process
still exits with that code. Key material is never part of a document: key ids only.
"""

from __future__ import annotations

import re
from typing import Any

from bmcrypt.cli import mode, output
from bmcrypt.errors import BmcryptError, UsageError

SCHEMA = "bmcrypt/1"


def kind(exc: BmcryptError) -> str:
    """The error's kind for scripts: its class name in snake case (`WrongKey` → `wrong_key`);
    the base class, raised for what has no class of its own, is plain `error`, and a usage
    error is `usage` whether the parser or a command found it."""
    if type(exc) is BmcryptError:
        return "error"
    if type(exc) is UsageError:
        return "usage"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


def error_json(exc: BmcryptError) -> dict[str, Any]:
    """The ``error`` object of a failure."""
    return {"code": exc.exit_code, "kind": kind(exc), "message": exc.message, "hint": exc.hint}


def usage_error_json(message: str, hint: str | None) -> dict[str, Any]:
    """The ``error`` object of a command line the parser refused."""
    return {"code": 2, "kind": "usage", "message": message, "hint": hint}


def emit(ok: bool, error: dict[str, Any] | None = None, **fields: Any) -> None:
    """Print the run's document (once): the envelope, then `fields` in the order given."""
    doc: dict[str, Any] = {"schema": SCHEMA, "command": mode.current.command, "ok": ok}
    doc.update(fields)
    if error is not None:
        doc["error"] = error
    output.print_json(doc)
    mode.current.document_printed = True


def emit_failure(error: dict[str, Any], command: str | None = None) -> None:
    """The document of a run that failed before its command printed one (main.py calls this)."""
    if mode.current.document_printed:
        return
    if command is not None and mode.current.command is None:
        mode.current.command = command
    emit(False, error)
