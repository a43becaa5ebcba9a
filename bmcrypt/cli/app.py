"""The `bmcrypt` Typer app, assembled in one place: every command is registered here, by name.

Each command lives in the module of its group (`cmd_*.py`) as a plain function that parses its
arguments, calls one library function and renders the result; `main.py` maps errors to
messages and exit codes. Command modules import the library inside the command, so start-up
(and `--help`) loads only Typer and these small modules.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bmcrypt.cli import (
    cmd_backup,
    cmd_chat,
    cmd_doctor,
    cmd_inspect,
    cmd_keys,
    cmd_license,
    cmd_protect,
    cmd_rekey,
    cmd_run,
)
from bmcrypt.cli.options import typer_app
from bmcrypt.cli.version import version_line

# Typer's own --install-completion / --show-completion (bash, zsh, fish, PowerShell).
app = typer_app("bmcrypt", "Authenticated encryption for Sophgo .bmodel files.",
                add_completion=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Authenticated encryption for Sophgo .bmodel files."""


# In the order `--help` lists them.
app.command()(cmd_keys.keygen)
app.command()(cmd_protect.encrypt)
app.command()(cmd_protect.decrypt)
app.command()(cmd_protect.verify)
app.command()(cmd_rekey.rekey)
app.command()(cmd_backup.backup)
app.command()(cmd_backup.restore)
app.command("inspect", help=cmd_inspect.HELP, short_help=cmd_inspect.SHORT_HELP)(
    cmd_inspect.inspect_cmd)
app.command()(cmd_run.run)
app.command("plugin-path")(cmd_run.plugin_path_cmd)
app.command("chat")(cmd_chat.chat_cmd)
app.command()(cmd_doctor.doctor)
app.add_typer(cmd_license.app, name="license")
