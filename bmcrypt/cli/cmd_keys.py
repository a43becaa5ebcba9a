"""`bmcrypt keygen`: new key files and X25519 identities, and the recipient of an identity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bmcrypt.cli import jsondoc, mode, output
from bmcrypt.cli.options import JsonOut, Quiet, Verbose


def keygen(
    out: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="KEYFILE",
        help="Where to write the new key or identity (mode 0600; never overwritten).")] = None,
    x25519: Annotated[bool, typer.Option(
        "--x25519", help="Make an X25519 identity (a device's secret) and print its recipient "
                         "(bmcrypt1…), which anyone may encrypt for.")] = False,
    recipient_of: Annotated[Path | None, typer.Option(
        "-y", "--recipient-of", metavar="IDENTITY",
        help="Print the recipient of an existing identity file, alone on stdout.")] = None,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Create a new random 256-bit key file, or an X25519 identity (--x25519)."""
    from bmcrypt.errors import UsageError

    if recipient_of is not None:
        if out is not None or x25519:
            raise UsageError("-y prints the recipient of an existing identity; it takes no "
                             "-o or --x25519", hint="bmcrypt keygen -y device.key")
        _print_recipient(recipient_of)
        return
    if out is None:
        raise UsageError("keygen needs -o FILE", hint="bmcrypt keygen -o model.key "
                         "(or --x25519 -o device.key for a device identity)")
    if x25519:
        _new_identity(out)
        return
    from bmcrypt.keys import generate_key_file

    key = generate_key_file(out)
    if mode.current.json:  # the key id and where it is, never the key
        jsondoc.emit(True, path=str(out), key_id=key.key_id_hex)
        return
    if not mode.current.quiet:
        output.note(f"wrote key {key.key_id_hex} to {out}")
        output.note("keep it secret and back it up: without it, files encrypted with it are lost")


def _new_identity(out: Path) -> None:
    from bmcrypt.keys import generate_identity_file

    identity = generate_identity_file(out)
    recipient = str(identity.recipient)
    if mode.current.json:
        jsondoc.emit(True, path=str(out), key_id=identity.key_id_hex, recipient=recipient)
        return
    output.data(recipient)  # the one thing to hand out, on stdout (as age-keygen)
    if not mode.current.quiet:
        output.note(f"wrote identity {identity.key_id_hex} to {out}; its recipient (above) is "
                    "public: encrypt for it with `bmcrypt encrypt -r`")


def _print_recipient(path: Path) -> None:
    from bmcrypt.keys import load_identity_file

    identity = load_identity_file(path)
    if mode.current.json:
        jsondoc.emit(True, path=str(path), key_id=identity.key_id_hex,
                     recipient=str(identity.recipient))
        return
    output.data(str(identity.recipient))
