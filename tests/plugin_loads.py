"""Child-process helpers for tests/test_secure_load.py (picklable: no conftest imports here)."""

from __future__ import annotations

import ctypes
import os

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.plugin import plugin_path
from bmcrypt.runtime import Runtime


def load_via_plugin_library(path: str, key_file: str) -> tuple[list[str], int]:
    """bmrt_load_bmodel_with_decrypt_lib: the runtime dlopens libbmcrypt.so itself."""
    os.environ["BMCRYPT_KEY_FILE"] = key_file
    with Runtime() as rt:
        rt.load_with_decrypt_lib(path, str(plugin_path()))
        return rt.net_names(), rt.trace()


def raw_callback_with_key(path: str, key_file: str) -> tuple[bool, str]:
    """The plugin's own `decrypt` as a function pointer, keys registered through the C API."""
    lib = ctypes.CDLL(str(plugin_path()))
    lib.bmcrypt_register_key_file.argtypes = [ctypes.c_char_p]
    lib.bmcrypt_register_key_file.restype = ctypes.c_bool
    lib.bmcrypt_last_error.restype = ctypes.c_char_p
    if not lib.bmcrypt_register_key_file(key_file.encode()):
        return False, (lib.bmcrypt_last_error() or b"").decode()
    address = ctypes.cast(lib.decrypt, ctypes.c_void_p).value
    with Runtime() as rt:
        try:
            rt.load_with_decrypt(path, address)
            return True, ""
        except VendorRuntimeError:
            return False, (lib.bmcrypt_last_error() or b"").decode()


def load_bmodel_with_identity(path: str, identity_file: str) -> tuple[bool, int, str, int]:
    """bmcrypt_load_bmodel with an identity file registered through the C API:
    (loaded, bmcrypt_status, message, coeffs that differ on the device or -1)."""
    lib = ctypes.CDLL(str(plugin_path()))
    lib.bmcrypt_register_identity_file.argtypes = [ctypes.c_char_p]
    lib.bmcrypt_register_identity_file.restype = ctypes.c_bool
    lib.bmcrypt_load_bmodel.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.bmcrypt_load_bmodel.restype = ctypes.c_bool
    lib.bmcrypt_last_error.restype = ctypes.c_char_p
    if not lib.bmcrypt_register_identity_file(identity_file.encode()):
        return False, lib.bmcrypt_last_error_code(), (lib.bmcrypt_last_error() or b"").decode(), -1
    with Runtime() as rt:
        ok = lib.bmcrypt_load_bmodel(ctypes.c_void_p(rt._bmrt), path.encode())
        status, message = lib.bmcrypt_last_error_code(), (lib.bmcrypt_last_error() or b"").decode()
        return ok, status, message, rt.trace() if ok else -1
