"""bmcrypt: authenticated encryption of Sophgo .bmodel files that the vendor runtime can load."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bmcrypt")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+source"

__all__ = ["__version__"]
