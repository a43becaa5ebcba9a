"""Find the directory that holds the vendor runtime (``libbmrt.so`` + ``libbmlib.so``).

Search order, first hit wins:

1. the ``runtime_dir`` argument (the CLI's ``--runtime DIR``);
2. the environment variable ``BMCRYPT_RUNTIME_DIR``;
3. the libsophon install of a real device, ``/opt/sophon/libsophon-current/lib``;
4. the simulator that ``scripts/fetch-runtime.sh`` caches under
   ``${BMCRYPT_CACHE:-${XDG_CACHE_HOME:-~/.cache}/bmcrypt}/tpu_mlir-1.30.2``.

A directory may hold the libraries directly or under ``lib/``. An explicit choice (1 or 2) that
does not hold them is an error rather than a reason to fall through: silently running another
runtime than the one the user named would be worse than stopping.

Nothing here downloads anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from bmcrypt.errors import VendorRuntimeError

ENV_VAR = "BMCRYPT_RUNTIME_DIR"
LIBSOPHON_LIB = Path("/opt/sophon/libsophon-current/lib")
SIMULATOR_VERSION = "1.30.2"
REQUIRED_LIBS = ("libbmlib.so", "libbmrt.so")


def simulator_cache_dir() -> Path:
    """Where ``scripts/fetch-runtime.sh`` puts the simulator (mirrors the script's own rule)."""
    cache = os.environ.get("BMCRYPT_CACHE")
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = os.path.join(xdg, "bmcrypt")
    return Path(cache) / f"tpu_mlir-{SIMULATOR_VERSION}"


def lib_dir_of(candidate: Path) -> Path | None:
    """Return the directory holding the runtime libraries under ``candidate``, if any."""
    for d in (candidate, candidate / "lib"):
        if all((d / name).is_file() for name in REQUIRED_LIBS):
            return d
    return None


def find_lib_dir(runtime_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute directory that holds ``libbmlib.so`` and ``libbmrt.so``.

    Raises ``VendorRuntimeError`` when nothing is found; its hint names the option, the variable
    and the libsophon directory of a device.
    """
    explicit: list[tuple[str, Path]] = []
    if runtime_dir is not None:
        explicit.append(("--runtime", Path(runtime_dir)))
    elif os.environ.get(ENV_VAR):
        explicit.append((ENV_VAR, Path(os.environ[ENV_VAR])))
    for source, path in explicit:
        found = lib_dir_of(path.expanduser())
        if found is None:
            raise VendorRuntimeError(
                f"no vendor runtime in {path} (from {source}): libbmrt.so and libbmlib.so "
                "are missing there and in its lib/"
            )
        return found.resolve()

    for path in (LIBSOPHON_LIB, simulator_cache_dir()):
        found = lib_dir_of(path)
        if found is not None:
            return found.resolve()
    raise VendorRuntimeError(
        f"vendor runtime not found (looked in {LIBSOPHON_LIB} and {simulator_cache_dir()})"
    )


def find_model_tool(runtime_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Return ``bin/model_tool`` next to the runtime's ``lib/``, if it is there.

    libsophon installs keep ``model_tool`` elsewhere (or not at all); callers treat ``None`` as
    "not available".
    """
    lib = find_lib_dir(runtime_dir)
    for tool in (lib.parent / "bin" / "model_tool", lib / "model_tool"):
        if tool.is_file() and os.access(tool, os.X_OK):
            return tool
    return None
