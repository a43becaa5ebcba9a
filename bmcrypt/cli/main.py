"""Entry point of the `bmcrypt` console script: the one place that maps errors to messages."""

from __future__ import annotations

import sys

import typer

from bmcrypt.cli import failure, mode, output
from bmcrypt.cli.app import app
from bmcrypt.errors import BmcryptError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the process exit code (the console script exits with it)."""
    mode.reset()
    try:
        app(args=argv, prog_name="bmcrypt", standalone_mode=False)
    except BmcryptError as exc:
        return failure.bmcrypt_error(exc, argv)
    except typer.Abort:
        output.err.print("bmcrypt: aborted", markup=False)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: the house format, exit 2
        return failure.usage_error(exc, argv)
    except OSError as exc:  # disk full, permission denied, …: the OS said no; say it in one line
        where = f" ({exc.filename})" if exc.filename else ""
        return failure.bmcrypt_error(BmcryptError(
            f"{exc.strerror or exc}{where}".lower(),
            hint="check the path, its permissions and free disk space"), argv)
    except KeyboardInterrupt:
        output.err.print("bmcrypt: interrupted", markup=False)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
