"""`bmcrypt keygen`: new key files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bmcrypt.cli import jsondoc, mode, output
from bmcrypt.cli.options import JsonOut, Quiet, Verbose


def keygen(
    out: Annotated[Path, typer.Option(
        "--output", "-o", metavar="KEYFILE",
        help="Where to write the new key (mode 0600; never overwritten).")],
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Create a new random 256-bit key file."""
    from bmcrypt.keys import generate_key_file

    key = generate_key_file(out)
    if mode.current.json:  # the key id and where it is, never the key
        jsondoc.emit(True, path=str(out), key_id=key.key_id_hex)
        return
    if not mode.current.quiet:
        output.note(f"wrote key {key.key_id_hex} to {out}")
        output.note("keep it secret and back it up: without it, files encrypted with it are lost")
