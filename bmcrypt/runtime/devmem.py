"""Device memory: buffers that live on the TPU (or the simulator's model of it).

Host-side ``Runtime.run`` copies every input in and every output out on each call. A chat
runtime cannot afford that for its KV cache, so it keeps tensors in device memory and launches
nets on them with ``bmrt_launch_tensor_ex``: ``DeviceBuffer`` owns (or views) such memory, and
``launch_tensors`` runs a net on buffers without touching the host.

Buffers from ``Runtime.alloc`` are owned: freed by ``free()``, by ``with``, or at the latest
by ``Runtime.close()`` (device memory must go back before the device is released). Views from
``DeviceBuffer.view`` or ``Runtime.io_buffers`` borrow memory someone else frees.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.runtime import _api
from bmcrypt.runtime.nets import DType, NetInfo


class DeviceOwner(Protocol):
    """What device memory needs of the runtime that owns it (``Runtime`` is one): the layer
    above implements it, so this module never imports it."""

    _libs: _api.VendorLibs

    def _bmlib_call(self, name: str, *args: Any) -> None: ...

    def _release(self, buf: DeviceBuffer) -> None: ...

    def _launch_tensor_ex(self, net: str, inputs: Any, n_in: int, outputs: Any,
                          n_out: int) -> None: ...


class DeviceBuffer:
    """A span of device memory: ``size`` bytes at device address ``address``."""

    def __init__(self, runtime: DeviceOwner, mem: _api.BmDeviceMem, *, owned: bool) -> None:
        self._rt = runtime
        self._mem = mem
        self._owned = owned
        self._freed = False

    # ------------------------------------------------------------------ identity

    @property
    def address(self) -> int:
        """Device address of the first byte."""
        return int(self._mem.device_addr)

    @property
    def size(self) -> int:
        """Size in bytes."""
        return int(self._mem.size)

    @property
    def owned(self) -> bool:
        return self._owned

    def __repr__(self) -> str:
        kind = "owned" if self._owned else "view"
        return f"DeviceBuffer(0x{self.address:x}, {self.size} bytes, {kind})"

    def __enter__(self) -> DeviceBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

    # ------------------------------------------------------------------ copies

    def view(self, offset: int, size: int) -> DeviceBuffer:
        """A non-owning buffer over ``[offset, offset + size)`` of this one."""
        self._check_range(offset, size)
        mem = _api.BmDeviceMem.from_buffer_copy(self._mem)  # keep flags, move the window
        mem.device_addr = self._mem.device_addr + offset
        mem.size = size
        return DeviceBuffer(self._rt, mem, owned=False)

    def upload(self, data: np.ndarray | bytes | bytearray | memoryview, offset: int = 0) -> None:
        """Copy host bytes into this buffer at ``offset`` (``data`` may be smaller)."""
        raw = isinstance(data, (bytes, bytearray, memoryview))
        host = np.ascontiguousarray(np.frombuffer(data, np.uint8) if raw else data)
        n = host.nbytes
        self._check_range(offset, n)
        if n == 0:
            return
        dst = self.view(offset, n) if (offset or n != self.size) else self
        self._rt._bmlib_call("bm_memcpy_s2d_partial", dst._mem, host.ctypes.data, n)

    def download(
        self, dtype: np.dtype[np.generic] | type | str, shape: Sequence[int], offset: int = 0
    ) -> np.ndarray:
        """Copy ``prod(shape)`` elements of ``dtype`` starting at ``offset`` into a new array."""
        out = np.empty(tuple(shape), dtype=dtype)
        self._check_range(offset, out.nbytes)
        if out.nbytes:
            src = self.view(offset, out.nbytes) if (offset or out.nbytes != self.size) else self
            self._rt._bmlib_call("bm_memcpy_d2s_partial", out.ctypes.data, src._mem, out.nbytes)
        return out

    def copy_from(
        self, src: DeviceBuffer, *, size: int | None = None, dst_offset: int = 0,
        src_offset: int = 0,
    ) -> None:
        """Device-to-device copy (e.g. a new k/v row into the KV-cache history)."""
        n = src.size - src_offset if size is None else size
        self._check_range(dst_offset, n)
        src._check_range(src_offset, n)
        self._rt._bmlib_call("bm_memcpy_d2d_byte", self._mem, dst_offset, src._mem, src_offset, n)

    def fill(self, value: int = 0, width: int = 1) -> None:
        """Fill the buffer with a repeated ``width``-byte little-endian ``value`` (1..4 bytes)."""
        if width not in (1, 2, 3, 4):
            raise ValueError("width must be 1, 2, 3 or 4 bytes")
        pattern = ctypes.c_uint32(value & ((1 << (8 * width)) - 1))
        self._rt._bmlib_call("bm_memset_device_ext", ctypes.byref(pattern), width, self._mem)

    # ------------------------------------------------------------------ lifetime

    def free(self) -> None:
        """Give owned memory back to the device; a no-op for views and on repeat."""
        if self._owned and not self._freed:
            self._freed = True
            self._rt._release(self)

    def _check_range(self, offset: int, size: int) -> None:
        if self._freed:
            raise VendorRuntimeError("device buffer used after free()")
        if offset < 0 or size < 0 or offset + size > self.size:
            raise VendorRuntimeError(
                f"device range [{offset}, {offset + size}) is outside a {self.size}-byte buffer"
            )


def launch_tensors(
    rt: DeviceOwner,
    info: NetInfo,
    inputs: Sequence[DeviceBuffer],
    outputs: Sequence[DeviceBuffer],
    stage: int,
    input_shapes: Sequence[Sequence[int]] | None,
) -> list[tuple[int, ...]]:
    """Run ``info`` on device buffers; return the output shapes the runtime reports."""
    if len(inputs) != len(info.inputs) or len(outputs) != len(info.outputs):
        raise VendorRuntimeError(
            f"net {info.name!r} takes {len(info.inputs)} inputs and {len(info.outputs)} outputs, "
            f"got {len(inputs)} and {len(outputs)} device buffers"
        )
    if not 0 <= stage < info.stage_count:
        raise VendorRuntimeError(f"net {info.name!r} has no stage {stage}")
    shapes = [tuple(s) for s in input_shapes] if input_shapes else info.input_shapes(stage)
    in_tensors = (_api.BmTensor * max(1, len(inputs)))()
    out_tensors = (_api.BmTensor * max(1, len(outputs)))()
    for i, (t, buf, shape) in enumerate(zip(info.inputs, inputs, shapes, strict=True)):
        _fill_tensor(rt, in_tensors[i], buf, t.dtype, shape, f"input {t.name!r}")
    for i, (t, buf) in enumerate(zip(info.outputs, outputs, strict=True)):
        # Outputs must hold the largest shape the stage can produce, not the smallest.
        need = max(t.nbytes(stage), t.max_bytes if info.dynamic else 0)
        if buf.size < need:
            raise VendorRuntimeError(
                f"net {info.name!r}: output {t.name!r} needs {need} bytes, buffer has {buf.size}"
            )
        _fill_tensor(rt, out_tensors[i], buf, t.dtype, t.shapes[stage], f"output {t.name!r}")
    rt._launch_tensor_ex(info.name, in_tensors, len(inputs), out_tensors, len(outputs))
    return [out_tensors[i].shape.to_tuple() for i in range(len(outputs))]


def _fill_tensor(
    rt: DeviceOwner, tensor: _api.BmTensor, buf: DeviceBuffer, dtype: int,
    shape: Sequence[int], what: str,
) -> None:
    need = int(np.prod(shape, dtype=np.int64)) * DType(dtype).itemsize
    if buf.size < need:
        raise VendorRuntimeError(f"{what} needs {need} bytes, device buffer has {buf.size}")
    rt._libs.bmrt.bmrt_tensor_with_device(
        ctypes.byref(tensor), buf._mem, int(dtype), _api.BmShape.of(list(shape))
    )
