"""How this run of the CLI talks: JSON or text, quiet or verbose.

Set once, while the command line is parsed (the shared options' callbacks in `options.py`), and
read by `output.py`, `jsondoc.py` and `batch.py`. One process runs one command, so a module-level
record is all the state there is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Mode:
    command: str | None = None  # the command's name, for the JSON document
    json: bool = False  # stdout holds one JSON document (`--json`)
    quiet: bool = False  # only errors and the data asked for (`-q`)
    verbose: bool = False  # also timings and where keys came from (`-v`)
    document_printed: bool = False  # the JSON document is out: an error must not print another


current = Mode()


def reset() -> None:
    """Back to the defaults (a new run in the same process: tests, `main()` called twice)."""
    global current
    current = Mode()
