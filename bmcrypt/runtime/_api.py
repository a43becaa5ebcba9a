"""ctypes declarations of the parts of libbmlib / libbmrt that bmcrypt uses.

Low level on purpose: raw handles, raw pointers, C ``bool`` results. ``device.py`` and
``devmem.py`` turn these into Python objects and exceptions; nothing else should call them.

Layouts follow the public headers of sophgo/libsophon (``bmdef.h``, ``bmlib_runtime.h``) and were
checked against the tpu_mlir 1.30.2 build on x86-64 (``bm_device_mem_t`` is 24 bytes,
``bm_tensor_t`` 72). Only LP64 targets are supported, as by the vendor (their header refuses
anything else).
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_float,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

from bmcrypt.errors import VendorRuntimeError

BM_MAX_DIMS_NUM = 8
BM_SUCCESS = 0


class BmShape(Structure):
    """``bm_shape_t``."""

    _fields_ = [("num_dims", c_int), ("dims", c_int * BM_MAX_DIMS_NUM)]

    @classmethod
    def of(cls, dims: tuple[int, ...] | list[int]) -> BmShape:
        if len(dims) > BM_MAX_DIMS_NUM:
            raise VendorRuntimeError(f"tensor has {len(dims)} dims, the runtime takes at most 8")
        shape = cls()
        shape.num_dims = len(dims)
        for i, d in enumerate(dims):
            shape.dims[i] = int(d)
        return shape

    def to_tuple(self) -> tuple[int, ...]:
        return tuple(int(self.dims[i]) for i in range(self.num_dims))


class BmDeviceMem(Structure):
    """``bm_device_mem_t`` (``struct bm_mem_desc``).

    The header declares a 16-byte union (``device`` / ``system`` views) followed by flags and
    size. We spell out the ``device`` view flat: same bytes on LP64, and ctypes refuses to pass
    structs containing unions by value on some Python builds, while bmlib takes this struct by
    value everywhere.
    """

    _fields_ = [
        ("device_addr", c_uint64),
        ("reserved", c_uint32),
        ("dmabuf_fd", c_int32),
        ("flags", c_uint32),  # bm_mem_flags_t: mem_type in bits 0..2 (0 = device)
        ("size", c_uint32),
    ]


class BmTensor(Structure):
    """``bm_tensor_t``: a typed, shaped view of device memory."""

    _fields_ = [
        ("dtype", c_int),
        ("shape", BmShape),
        ("device_mem", BmDeviceMem),
        ("st_mode", c_int),  # bm_store_mode_t; 0 = BM_STORE_1N, the only mode we use
    ]


class BmStageInfo(Structure):
    """``bm_stage_info_t``: per-stage shapes and the runtime's own io device memory."""

    _fields_ = [
        ("input_shapes", POINTER(BmShape)),
        ("output_shapes", POINTER(BmShape)),
        ("input_mems", POINTER(BmDeviceMem)),
        ("output_mems", POINTER(BmDeviceMem)),
    ]


class BmNetInfo(Structure):
    """``bm_net_info_t``; owned by the runtime, valid until ``bmrt_destroy``."""

    _fields_ = [
        ("name", c_char_p),
        ("is_dynamic", c_bool),
        ("input_num", c_int),
        ("input_names", POINTER(c_char_p)),
        ("input_dtypes", POINTER(c_int)),
        ("input_scales", POINTER(c_float)),
        ("output_num", c_int),
        ("output_names", POINTER(c_char_p)),
        ("output_dtypes", POINTER(c_int)),
        ("output_scales", POINTER(c_float)),
        ("stage_num", c_int),
        ("stages", POINTER(BmStageInfo)),
        ("max_input_bytes", POINTER(c_size_t)),
        ("max_output_bytes", POINTER(c_size_t)),
        ("input_zero_point", POINTER(c_int)),
        ("output_zero_point", POINTER(c_int)),
        ("input_loc_devices", POINTER(c_int)),
        ("output_loc_devices", POINTER(c_int)),
        ("core_num", c_int),
        ("addr_mode", c_int32),
    ]


class MemoryT(Structure):
    """``memory_t`` of libsophon's public bmdef.h: 152 bytes. (LLM-TPU's demo header declares
    it without ``number``; the size is the same, ``number`` overlays its first reserved bytes.)"""

    _fields_ = [
        ("addr", c_int64),  # -1: not given, the runtime allocates
        ("size", c_uint64),
        ("type", c_int),  # 0 device, 1 host
        ("number", c_int),  # blocks; the runtime asserts 1
        ("reserved", c_char * 124),
    ]


MEM_INFO_PARTS = ("instruction_mem", "variable_instruction_mem", "neuron_mem", "coeff_mem",
                  "io_mem")


class MemInfoT(Structure):
    """``mem_info_t`` (bmdef.h): the device memory one bmodel needs, by kind; 1368 bytes."""

    _fields_ = [*((name, MemoryT) for name in MEM_INFO_PARTS), ("reserved", MemoryT * 4)]


assert ctypes.sizeof(MemoryT) == 152 and ctypes.sizeof(MemInfoT) == 9 * 152


# uint8_t* (*decrypt)(const uint8_t* in, uint64_t in_len, uint64_t* out_len). Declared with
# c_void_p as the result so ctypes hands the runtime the raw malloc'ed pointer untouched.
DECRYPT_FUNC = CFUNCTYPE(c_void_p, POINTER(c_uint8), c_uint64, POINTER(c_uint64))

_P = c_void_p  # bm_handle_t and the bmrt pointer are both opaque
_BMLIB_FUNCS: dict[str, tuple[object, list[object]]] = {
    "bm_dev_request": (c_int, [POINTER(c_void_p), c_int]),
    "bm_dev_free": (None, [_P]),
    "bm_thread_sync": (c_int, [_P]),
    "bm_malloc_device_byte": (c_int, [_P, POINTER(BmDeviceMem), c_uint]),
    "bm_free_device": (None, [_P, BmDeviceMem]),
    "bm_memcpy_s2d": (c_int, [_P, BmDeviceMem, c_void_p]),
    "bm_memcpy_d2s": (c_int, [_P, c_void_p, BmDeviceMem]),
    "bm_memcpy_s2d_partial": (c_int, [_P, BmDeviceMem, c_void_p, c_uint]),
    "bm_memcpy_d2s_partial": (c_int, [_P, c_void_p, BmDeviceMem, c_uint]),
    "bm_memcpy_d2d_byte": (c_int, [_P, BmDeviceMem, c_size_t, BmDeviceMem, c_size_t, c_size_t]),
    "bm_memset_device_ext": (c_int, [_P, c_void_p, c_int, BmDeviceMem]),
}
_BMRT_FUNCS: dict[str, tuple[object, list[object]]] = {
    "bmrt_create": (c_void_p, [_P]),
    "bmrt_destroy": (None, [_P]),
    "bmrt_load_bmodel": (c_bool, [_P, c_char_p]),
    "bmrt_load_bmodel_data": (c_bool, [_P, c_void_p, c_size_t]),
    # The decrypt function is taken as a plain address: our native plugin hands us a C function
    # pointer as an int, and a ctypes callback can be passed via ctypes.cast(cb, c_void_p).value.
    "bmrt_load_bmodel_with_decrypt": (c_bool, [_P, c_char_p, c_void_p]),
    "bmrt_load_bmodel_with_decrypt_lib": (c_bool, [_P, c_char_p, c_char_p]),
    "bmrt_get_network_number": (c_int, [_P]),
    "bmrt_get_network_names": (None, [_P, POINTER(POINTER(c_char_p))]),
    "bmrt_get_network_info": (POINTER(BmNetInfo), [_P, c_char_p]),
    "bmrt_launch_data": (
        c_bool,
        [_P, c_char_p, POINTER(c_void_p), POINTER(BmShape), c_int,
         POINTER(c_void_p), POINTER(BmShape), c_int, c_bool],
    ),
    "bmrt_launch_tensor_ex": (
        c_bool,
        [_P, c_char_p, POINTER(BmTensor), c_int, POINTER(BmTensor), c_int, c_bool, c_bool],
    ),
    "bmrt_tensor_with_device": (None, [POINTER(BmTensor), BmDeviceMem, c_int, BmShape]),
    "bmrt_trace": (None, [_P]),
}
#: Memory-controlled loading (libsophon SGTPUV8 / bm1688 branches, tpu-mlir's nntoolchain):
#: not every libbmrt has them, so they are optional (``VendorLibs.has_mem_api``).
_BMRT_MEM_FUNCS: dict[str, tuple[object, list[object]]] = {
    "bmrt_set_flags": (None, [_P, c_uint32]),
    "bmrt_get_bmodel_info": (c_bool, [c_char_p, POINTER(MemInfoT)]),
    "bmrt_get_bmodel_data_info": (c_bool, [c_void_p, c_size_t, POINTER(MemInfoT)]),
    "bmrt_load_bmodel_with_mem": (c_bool, [_P, c_char_p, POINTER(MemInfoT)]),
    "bmrt_load_bmodel_data_with_mem": (c_bool, [_P, c_void_p, c_size_t, POINTER(MemInfoT)]),
    "bmrt_destroy_without_coeff": (None, [_P]),
}
BM_RUNTIME_SHARE_MEM = 1 << 0


class VendorLibs:
    """The loaded vendor libraries plus libc (for ``free`` and ``fflush``)."""

    def __init__(self, lib_dir: Path) -> None:
        self.lib_dir = lib_dir
        # bmlib first and global: libbmrt resolves its bm_* symbols against it (SONAME
        # libbmlib.so.0), and the simulator plugins it dlopens later need them too.
        self.bmlib = _dlopen(lib_dir / "libbmlib.so", ctypes.RTLD_GLOBAL)
        self.bmrt = _dlopen(lib_dir / "libbmrt.so", ctypes.RTLD_GLOBAL)
        self.libc = ctypes.CDLL(None)
        self.libc.free.argtypes = [c_void_p]
        self.libc.free.restype = None
        self.libc.fflush.argtypes = [c_void_p]
        self.libc.fflush.restype = c_int
        _declare(self.bmlib, _BMLIB_FUNCS)
        _declare(self.bmrt, _BMRT_FUNCS)
        try:
            _declare(self.bmrt, _BMRT_MEM_FUNCS)
            self.has_mem_api = True
        except VendorRuntimeError:  # an older libbmrt: one bmruntime per model instead
            self.has_mem_api = False

    def flush_stdio(self) -> None:
        """``fflush(NULL)``: push C stdio buffers to their fds before we move the fds."""
        self.libc.fflush(None)


def _dlopen(path: Path, mode: int) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(str(path), mode=mode)
    except OSError as e:
        raise VendorRuntimeError(f"cannot load {path}: {e}") from e


def _declare(lib: ctypes.CDLL, table: dict[str, tuple[object, list[object]]]) -> None:
    for name, (restype, argtypes) in table.items():
        try:
            fn = getattr(lib, name)
        except AttributeError as e:
            raise VendorRuntimeError(
                f"{lib._name} lacks {name}; this runtime is too old or not a BM168x runtime"
            ) from e
        fn.restype = restype
        fn.argtypes = argtypes


_loaded: VendorLibs | None = None
_load_lock = threading.Lock()


def load_vendor_libs(lib_dir: Path) -> VendorLibs:
    """Load the vendor libraries from ``lib_dir`` once per process.

    RTLD_GLOBAL puts their symbols in the process namespace, so a second, different runtime in
    the same process would silently bind to the first one's symbols; refuse instead.
    """
    global _loaded
    with _load_lock:
        if _loaded is None:
            _loaded = VendorLibs(lib_dir)
        elif _loaded.lib_dir != lib_dir:
            raise VendorRuntimeError(
                f"this process already uses the vendor runtime in {_loaded.lib_dir}; "
                f"cannot also load {lib_dir}",
                hint="use one runtime directory per process (run the other one in a child process)",
            )
        return _loaded


def loaded_libs() -> VendorLibs | None:
    """The libraries loaded so far in this process, if any."""
    return _loaded
