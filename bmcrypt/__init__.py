"""bmcrypt: authenticated encryption of Sophgo .bmodel files that the vendor runtime can load."""

from typing import Any


def __getattr__(name: str) -> Any:
    # The version is looked up on first use: importlib.metadata costs ~30 ms, and every CLI
    # command imports this package while only `--version` wants it.
    if name != "__version__":
        raise AttributeError(f"module 'bmcrypt' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("bmcrypt")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0+source"
    globals()["__version__"] = found
    return found


__all__ = ["__version__"]
