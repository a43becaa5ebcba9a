"""`bmcrypt --version`: the line it prints, from the native core and one module of constants.

`main` prints it without starting Typer or rich when ``--version`` (or ``-V``) is the whole
command line, so the command costs little more than the interpreter's own start (issue 17).
"""

from __future__ import annotations


def version_line() -> str:
    """`bmcrypt 0.1.0 (file format 1, Crypto++ 8.7.0)`: no numpy, no bmodel code, no rich.

    The version comes from the native core, which the build stamps with the project's version
    (pyproject.toml, the same string as the installed metadata): `importlib.metadata` alone
    would cost more than the rest of the command.
    """
    from bmcrypt import _native
    from bmcrypt.crypto.envelope_header import VERSION

    return (f"bmcrypt {_native.version()} (file format {VERSION}, "
            f"Crypto++ {_native.cryptopp_version()})")


def is_version_request(args: list[str]) -> bool:
    """True when the whole command line asks for the version and nothing else."""
    return args in (["--version"], ["-V"])
