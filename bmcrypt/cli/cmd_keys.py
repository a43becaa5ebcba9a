"""`bmcrypt keygen`: new key files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bmcrypt.cli import output


def keygen(
    out: Annotated[Path, typer.Option(
        "--output", "-o", metavar="KEYFILE",
        help="Where to write the new key (mode 0600; never overwritten).")],
) -> None:
    """Create a new random 256-bit key file."""
    from bmcrypt.keys import generate_key_file

    key = generate_key_file(out)
    output.note(f"wrote key {key.key_id_hex} to {out}")
    output.note("keep it secret and back it up: without it, files encrypted with it are lost")
