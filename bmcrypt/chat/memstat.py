"""How much device memory is in use: measured, so that weight sharing can be seen to happen.

Two ways, the first that works:

- ``heap``: libbmlib's heap statistics (``bm_get_gmem_heap_stat_byte_by_id``, summed over
  ``bm_get_gmem_total_heap_num`` heaps): exact, on real devices;
- ``probe``: the CPU simulator's build compiles those calls to no-ops (they succeed and fill
  nothing). Its allocator is first-fit from the bottom of device memory, so the address of a
  fresh small allocation is the end of what is in use; we allocate one, read its address and
  free it. Exact as long as nothing below the top was freed (loads only allocate); an
  under-estimate otherwise.

Readings are relative to the meter's creation: "used since the runtime opened".
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Literal

from bmcrypt.runtime import Runtime

Method = Literal["heap", "probe"]
_PROBE_BYTES = 4096


class _HeapStat(ctypes.Structure):
    """``bm_heap_stat_byte_t`` (libsophon bmlib_runtime.h)."""

    _fields_ = [
        ("heap_id", ctypes.c_uint),
        ("mem_total", ctypes.c_ulonglong),
        ("mem_avail", ctypes.c_ulonglong),
        ("mem_used", ctypes.c_ulonglong),
        ("mem_start_addr", ctypes.c_ulonglong),
    ]


@dataclass(frozen=True)
class MemoryReading:
    """Device memory in use since the meter started, and how it was measured."""

    used: int
    method: Method


class DeviceMemoryMeter:
    """Measures device memory in use on ``rt``'s device."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._declare()
        self.method: Method = "heap" if self._heap_used() is not None else "probe"
        self._baseline = self._absolute()

    def read(self) -> MemoryReading:
        """Bytes in use now, minus those in use when the meter was created."""
        return MemoryReading(self._absolute() - self._baseline, self.method)

    def _absolute(self) -> int:
        if self.method == "heap":
            return self._heap_used() or 0
        probe = self._rt.alloc(_PROBE_BYTES)
        try:
            return probe.address
        finally:
            probe.free()

    def _declare(self) -> None:
        bmlib = self._rt._libs.bmlib
        bmlib.bm_get_gmem_total_heap_num.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint)]
        bmlib.bm_get_gmem_total_heap_num.restype = ctypes.c_int
        bmlib.bm_get_gmem_heap_stat_byte_by_id.argtypes = [
            ctypes.c_void_p, ctypes.POINTER(_HeapStat), ctypes.c_uint]
        bmlib.bm_get_gmem_heap_stat_byte_by_id.restype = ctypes.c_int

    def _heap_used(self) -> int | None:
        """Sum of ``mem_used`` over all heaps, or None where the statistics are not kept."""
        bmlib, handle = self._rt._libs.bmlib, self._rt._handle
        count = ctypes.c_uint(0)
        if bmlib.bm_get_gmem_total_heap_num(handle, ctypes.byref(count)) != 0 or not count.value:
            return None
        used = total = 0
        for heap in range(count.value):
            stat = _HeapStat()
            if bmlib.bm_get_gmem_heap_stat_byte_by_id(handle, ctypes.byref(stat), heap) != 0:
                return None
            used += int(stat.mem_used)
            total += int(stat.mem_total)
        return used if total else None  # all zero: statistics not kept by this build
