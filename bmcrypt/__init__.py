"""bmcrypt: authenticated encryption of Sophgo .bmodel files that the vendor runtime can load.

The recipes (docs/python.md), imported on first use so that ``import bmcrypt`` stays cheap:

- keys: ``generate_key_file``, ``load_key_file``, ``Passphrase``, ``UserKey``; X25519:
  ``generate_identity_file``, ``Identity``, ``Recipient`` (``Recipient.parse("bmcrypt1…")``)
- whole files: ``encrypt_model``, ``decrypt_model``, ``verify_model``, ``rekey_model``,
  ``restore_model``, ``inspect_model``; recipients: ``list_model_recipients``,
  ``change_model_recipients``, ``rotate_data_key``
- the runtime: ``Runtime`` (libbmrt through ctypes), ``load_model`` (plain or encrypted, the
  plaintext only in memory), ``prepare``
- errors: ``BmcryptError`` and every subclass of ``bmcrypt.errors``, each with its exit code
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOME = {
    "bmcrypt.keys": ("generate_identity_file", "generate_key_file", "load_key_file"),
    "bmcrypt.crypto": ("Identity", "Passphrase", "Recipient", "UserKey"),
    "bmcrypt.workflow": ("change_model_recipients", "decrypt_model", "encrypt_model",
                         "list_model_recipients", "rekey_model", "restore_model",
                         "rotate_data_key", "verify_model"),
    "bmcrypt.api": ("inspect_model",),
    "bmcrypt.loader": ("load_model", "prepare"),
    "bmcrypt.runtime": ("Runtime",),
    "bmcrypt.errors": (
        "AlreadyEncrypted", "BmcryptError", "Corrupt", "FileSafetyError", "ForeignEncrypted",
        "FormatError", "InputFileError", "KeyFileError", "KeyProblem", "Locked", "NoKey",
        "NotABmodel", "NotEncrypted", "NotRegularFile", "StateError", "SymlinkRefused",
        "Tampered", "Truncated", "UnsupportedVersion", "VendorRuntimeError", "WrongKey",
        "LicenceError", "NoLicence", "CorruptLicence", "BadLicenceSignature",
        "LicenceForAnotherFile", "LicenceExpired", "LicenceForAnotherDevice"),
}
_WHERE = {name: module for module, names in _HOME.items() for name in names}

__all__ = [
    "AlreadyEncrypted", "BadLicenceSignature", "BmcryptError", "Corrupt", "CorruptLicence",
    "FileSafetyError", "ForeignEncrypted", "FormatError", "Identity", "InputFileError",
    "KeyFileError", "KeyProblem", "LicenceError", "LicenceExpired", "LicenceForAnotherDevice",
    "LicenceForAnotherFile", "Locked", "NoKey", "NoLicence", "NotABmodel", "NotEncrypted",
    "NotRegularFile", "Passphrase", "Recipient", "Runtime", "StateError", "SymlinkRefused",
    "Tampered", "Truncated",
    "UnsupportedVersion", "UserKey", "VendorRuntimeError", "WrongKey", "__version__",
    "change_model_recipients", "decrypt_model", "encrypt_model", "generate_identity_file",
    "generate_key_file", "inspect_model", "list_model_recipients", "load_key_file",
    "load_model", "prepare", "rekey_model", "restore_model", "rotate_data_key", "verify_model",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'bmcrypt' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


def _version() -> str:
    # importlib.metadata costs ~30 ms, and only `--version` wants it.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bmcrypt")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+source"


if TYPE_CHECKING:
    from bmcrypt.api import inspect_model
    from bmcrypt.crypto import Identity, Passphrase, Recipient, UserKey
    from bmcrypt.errors import (
        AlreadyEncrypted,
        BmcryptError,
        Corrupt,
        FileSafetyError,
        ForeignEncrypted,
        FormatError,
        InputFileError,
        KeyFileError,
        KeyProblem,
        Locked,
        NoKey,
        NotABmodel,
        NotEncrypted,
        NotRegularFile,
        StateError,
        SymlinkRefused,
        Tampered,
        Truncated,
        UnsupportedVersion,
        VendorRuntimeError,
        WrongKey,
    )
    from bmcrypt.keys import generate_identity_file, generate_key_file, load_key_file
    from bmcrypt.loader import load_model, prepare
    from bmcrypt.runtime import Runtime
    from bmcrypt.workflow import (
        change_model_recipients,
        decrypt_model,
        encrypt_model,
        list_model_recipients,
        rekey_model,
        restore_model,
        rotate_data_key,
        verify_model,
    )
    __version__: str
