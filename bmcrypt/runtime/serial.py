"""The device's serial number, for licences bound to devices (FORMAT.md §8.5).

libbmlib's ``bm_status_t bm_get_sn(bm_handle_t, char* sn)`` writes the board's serial number:
17 characters and a NUL on SoC boxes (read from the board's EEPROM or eMMC boot partition). The
buffer is 64 bytes, zeroed first, and the number is what precedes the first NUL.

The tpu_mlir 1.30.2 simulator (libbmlib built with USING_CMODEL) returns BM_NOT_SUPPORTED (9)
and writes nothing: on the simulator the serial number is unknown (None), so licences that list
serial numbers never pass there.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

SN_BUFFER_LEN = 64
BM_SUCCESS = 0


def sn_of_handle(bmlib: Any, handle: ctypes.c_void_p) -> bytes | None:
    """The serial number of the device behind an open ``bm_handle_t``; None when libbmlib has
    no bm_get_sn or the device reports none."""
    get_sn = getattr(bmlib, "bm_get_sn", None)
    if get_sn is None or not handle.value:
        return None
    get_sn.restype = ctypes.c_int
    get_sn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    buf = ctypes.create_string_buffer(SN_BUFFER_LEN)
    if get_sn(handle, buf) != BM_SUCCESS:
        return None
    sn = buf.raw[:SN_BUFFER_LEN - 1].split(b"\0", 1)[0].strip()
    return sn or None


def read_device_sn(runtime_dir: str | os.PathLike[str] | None = None,
                   devid: int = 0) -> bytes | None:
    """The serial number of device `devid`, opening it briefly (``bm_dev_request`` …
    ``bm_dev_free``; about a second on the simulator). Use ``Runtime.device_sn()`` when a runtime
    is open already. The vendor's output is kept off the terminal."""
    from bmcrypt.runtime import _api
    from bmcrypt.runtime.capture import captured
    from bmcrypt.runtime.locate import find_lib_dir

    libs = _api.load_vendor_libs(find_lib_dir(runtime_dir))
    handle = ctypes.c_void_p()
    with captured(libs.flush_stdio):
        if libs.bmlib.bm_dev_request(ctypes.byref(handle), devid) != BM_SUCCESS:
            return None
        try:
            return sn_of_handle(libs.bmlib, handle)
        finally:
            libs.bmlib.bm_dev_free(handle)
