"""Where the native pieces installed with the package live: the plugin, its header, CMake files."""

from __future__ import annotations

from pathlib import Path

from bmcrypt.errors import BmcryptError

_PACKAGE = Path(__file__).resolve().parent


def plugin_path() -> Path:
    """Absolute path of libbmcrypt.so, the decryptor the vendor runtime and model_tool load."""
    path = _PACKAGE / "lib" / "libbmcrypt.so"
    if not path.is_file():
        raise BmcryptError("libbmcrypt.so is not installed with this bmcrypt",
                           hint="install the package (pip install .), not a source checkout")
    return path


def include_dir() -> Path:
    """Directory holding bmcrypt.h."""
    return _PACKAGE / "include"


def cmake_dir() -> Path:
    """Directory holding bmcryptConfig.cmake (pass it as -Dbmcrypt_DIR=…)."""
    return _PACKAGE / "lib" / "cmake" / "bmcrypt"
