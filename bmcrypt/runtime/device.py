"""``Runtime``: one opened device (or simulator) with one bmruntime instance on it.

    with Runtime() as rt:                       # finds the runtime dir, opens device 0
        rt.load("model.bmodel")
        (y,) = rt.run("mlp", [x])

Every failure of the vendor runtime becomes a ``VendorRuntimeError`` here and nowhere else; its
message is one line (with the vendor's most telling log lines), and the full vendor output is
attached as an exception note.

Vendor code may call ``exit()`` or crash on malformed files. Loading untrusted or deliberately
broken files belongs in a child process: see ``bmcrypt.runtime.isolate.run_isolated``.

``close()`` always runs ``bmrt_destroy`` + ``bm_dev_free``; what happens around process exit,
and why only one ``Runtime`` per device may be open at a time, is in ``lifecycle``.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.runtime import _api, lifecycle
from bmcrypt.runtime.capture import Captured, captured, vendor_summary
from bmcrypt.runtime.devmem import DeviceBuffer, launch_tensors
from bmcrypt.runtime.locate import find_lib_dir
from bmcrypt.runtime.nets import DType, NetInfo, net_info_from_c
from bmcrypt.runtime.stages import check_inputs, pick_stage

_LOAD_HINT = (
    "the file may be damaged, encrypted, or built for another chip; "
    "`model_tool --info FILE` shows whether the vendor tools can read it"
)
_RUN_HINT = "compare the inputs with Runtime.net_info(net); the vendor's log is in the error notes"
_DEVICE_HINT = "device memory may be exhausted or the device busy; the vendor's log is in the notes"
_TRACE_TOTAL = re.compile(r"Total\s+(\d+)\s+errors")


HostInputs = Sequence[np.ndarray] | Mapping[str, np.ndarray]


class Runtime:
    """The vendor runtime on device ``devid``; a context manager.

    ``runtime_dir``: see ``bmcrypt.runtime.locate`` (CLI ``--runtime``). ``quiet`` (default)
    keeps the vendor's own output off the terminal; it is logged at DEBUG on
    ``bmcrypt.runtime.vendor``, appended to ``log_path`` if given, and the text of the latest
    call is in ``last_vendor_output``. ``exclusive=False`` allows another open ``Runtime`` on
    the same device (unsafe on the simulator; see the module docstring).
    """

    def __init__(
        self,
        runtime_dir: str | os.PathLike[str] | None = None,
        *,
        devid: int = 0,
        quiet: bool = True,
        log_path: str | os.PathLike[str] | None = None,
        exclusive: bool = True,
    ) -> None:
        self.lib_dir = find_lib_dir(runtime_dir)
        if exclusive:
            lifecycle.refuse_second_runtime(devid)
        self._libs = _api.load_vendor_libs(self.lib_dir)
        self.devid = devid
        self.quiet = quiet
        self.log_path = Path(log_path) if log_path is not None else None
        self.last_vendor_output = ""
        self._handle = ctypes.c_void_p()
        self._bmrt: int | None = None
        self._buffers: set[DeviceBuffer] = set()
        self._info_cache: dict[str, NetInfo] = {}

        with self._vendor() as out:
            rc = self._libs.bmlib.bm_dev_request(ctypes.byref(self._handle), devid)
        if rc != _api.BM_SUCCESS or not self._handle.value:
            raise self._error(f"cannot open device {devid} (bm_dev_request returned {rc})", out)
        with self._vendor() as out:
            bmrt = self._libs.bmrt.bmrt_create(self._handle)
        if not bmrt:
            self._libs.bmlib.bm_dev_free(self._handle)
            raise self._error("bmrt_create failed", out)
        self._bmrt = bmrt
        lifecycle.track(self)

    # ------------------------------------------------------------------ lifetime

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._bmrt is None

    def close(self) -> None:
        """Free device buffers, destroy the runtime, release the device. Idempotent."""
        if self._bmrt is None:
            return
        self._destroy_bmrt()
        with self._vendor():
            self._libs.bmlib.bm_dev_free(self._handle)
        lifecycle.untrack(self)

    def _destroy_bmrt(self, *, keep_weights: bool = False) -> None:
        """Free this instance's device buffers and destroy its bmruntime (not the device).

        ``keep_weights``: ``bmrt_destroy_without_coeff``: the weights stay on the device in
        libbmrt's per-device registry, and the next load of the same weights (same check_code
        and size) finds them there instead of uploading them again.
        """
        for buf in list(self._buffers):
            buf.free()
        bmrt, self._bmrt = self._bmrt, None
        self._info_cache.clear()
        destroy = (self._libs.bmrt.bmrt_destroy_without_coeff
                   if keep_weights and self._libs.has_mem_api else self._libs.bmrt.bmrt_destroy)
        with self._vendor():
            destroy(bmrt)

    def device_sn(self) -> bytes | None:
        """The device's serial number (libbmlib's ``bm_get_sn``), None when it reports none, as
        the simulator never does (``bmcrypt.runtime.serial``)."""
        from bmcrypt.runtime.serial import sn_of_handle

        self._require_open()
        with self._vendor():
            return sn_of_handle(self._libs.bmlib, self._handle)

    # ------------------------------------------------------------------ loading

    def load(self, path: str | os.PathLike[str]) -> None:
        """Load a plain bmodel file (``bmrt_load_bmodel``)."""
        self._load(os.fspath(path), self._libs.bmrt.bmrt_load_bmodel, os.fsencode(path))

    def load_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Load a plain bmodel from memory (``bmrt_load_bmodel_data``); ``data`` is not copied."""
        buf = np.frombuffer(data, dtype=np.uint8)
        self._load(f"{buf.size} bytes from memory", self._libs.bmrt.bmrt_load_bmodel_data,
                   buf.ctypes.data, buf.size)

    def load_with_decrypt(self, path: str | os.PathLike[str], func_addr: int | Any) -> None:
        """Load an encrypted bmodel, decrypting through a C function.

        ``func_addr`` is the address of ``uint8_t* f(const uint8_t*, uint64_t, uint64_t*)``
        as an int (what a native plugin hands out), or a ``ctypes`` function pointer such as an
        ``_api.DECRYPT_FUNC`` callback, which the caller keeps alive for the call.
        """
        addr = func_addr if isinstance(func_addr, int) else ctypes.cast(
            func_addr, ctypes.c_void_p).value
        if not addr:
            raise VendorRuntimeError("decrypt function address is NULL")
        self._load(os.fspath(path), self._libs.bmrt.bmrt_load_bmodel_with_decrypt,
                   os.fsencode(path), ctypes.c_void_p(addr))

    def load_with_decrypt_lib(
        self, path: str | os.PathLike[str], lib_path: str | os.PathLike[str]
    ) -> None:
        """Load an encrypted bmodel; the runtime ``dlopen``s ``lib_path``, calls its ``decrypt``."""
        self._load(os.fspath(path), self._libs.bmrt.bmrt_load_bmodel_with_decrypt_lib,
                   os.fsencode(path), os.fsencode(lib_path))

    @property
    def has_mem_api(self) -> bool:
        """This libbmrt has the memory-controlled loads (``load_with_mem``)."""
        return bool(self._libs.has_mem_api)

    def load_with_mem(self, source: str | os.PathLike[str] | bytes | bytearray | memoryview,
                      ) -> dict[str, DeviceBuffer]:
        """Load a plain bmodel (a path, or its bytes in memory) into device memory we allocate.

        ``bmrt_get_bmodel_info`` (``…_data_info``) says what the model needs; instruction,
        neuron and io memory are allocated here (owned by this instance: freed with it) and
        handed to ``bmrt_load_bmodel_with_mem`` (``…_data_with_mem``). The weights are left to
        libbmrt (coeff address -1): its per-device registry keeps one copy of equal weights
        across bmruntime instances. Handing it a coeff address of ours does not work on
        tpu_mlir 1.30.2's libbmrt: it places every weight region of the model at that one
        address (``bmrt_trace`` then fails all but one; docs/chat.md). Returns the buffers by
        part name.
        """
        if not self.has_mem_api:
            raise VendorRuntimeError("this libbmrt has no memory-controlled loading",
                                     hint="load the model with Runtime.load instead")
        bmrt = self._require_open()
        info = _api.MemInfoT()
        data = None if isinstance(source, (str, os.PathLike)) else np.frombuffer(source, np.uint8)
        if data is None:
            what = os.fspath(source)
            ok = self._libs.bmrt.bmrt_get_bmodel_info(os.fsencode(source), ctypes.byref(info))
        else:
            what = f"{data.size} bytes from memory"
            ok = self._libs.bmrt.bmrt_get_bmodel_data_info(data.ctypes.data, data.size,
                                                          ctypes.byref(info))
        if not ok:
            raise VendorRuntimeError(f"the vendor runtime cannot size {what}", hint=_LOAD_HINT)
        buffers = {}
        for part in _api.MEM_INFO_PARTS:
            mem = getattr(info, part)
            if part == "coeff_mem":
                mem.addr = -1  # libbmrt's registry holds the weights
            elif mem.size:
                buffers[part] = self.alloc(int(mem.size))
                mem.addr = buffers[part].address
        self._libs.bmrt.bmrt_set_flags(bmrt, _api.BM_RUNTIME_SHARE_MEM)
        if data is None:
            self._load(what, self._libs.bmrt.bmrt_load_bmodel_with_mem, os.fsencode(source),
                       ctypes.byref(info))
        else:
            self._load(what, self._libs.bmrt.bmrt_load_bmodel_data_with_mem, data.ctypes.data,
                       data.size, ctypes.byref(info))
        return buffers

    def _load(self, what: str, fn: Any, *args: Any) -> None:
        bmrt = self._require_open()
        with self._vendor() as out:
            ok = fn(bmrt, *args)
        self._info_cache.clear()
        if not ok:
            raise self._error(f"vendor runtime could not load {what}", out, hint=_LOAD_HINT)

    # ------------------------------------------------------------------ nets

    def net_names(self) -> list[str]:
        """Names of all loaded nets, in load order."""
        bmrt = self._require_open()
        count = self._libs.bmrt.bmrt_get_network_number(bmrt)
        if count <= 0:
            return []
        names = ctypes.POINTER(ctypes.c_char_p)()
        self._libs.bmrt.bmrt_get_network_names(bmrt, ctypes.byref(names))
        try:
            return [names[i].decode() for i in range(count)]
        finally:
            # The array is malloc'ed for us (the strings are not ours).
            self._libs.libc.free(ctypes.cast(names, ctypes.c_void_p))

    def net_info(self, net: str) -> NetInfo:
        """Inputs, outputs, dtypes and per-stage shapes of ``net``."""
        if net in self._info_cache:
            return self._info_cache[net]
        bmrt = self._require_open()
        with self._vendor():
            ptr = self._libs.bmrt.bmrt_get_network_info(bmrt, net.encode())
        if not ptr:
            raise VendorRuntimeError(
                f"no net named {net!r} is loaded (loaded: {', '.join(self.net_names()) or 'none'})",
                hint="`bmcrypt inspect FILE` or `model_tool --info FILE` lists a file's nets",
            )
        info = net_info_from_c(ptr.contents)
        self._info_cache[net] = info
        return info

    # ------------------------------------------------------------------ running

    def run(self, net: str, inputs: HostInputs, stage: int | None = None) -> list[np.ndarray]:
        """Run ``net`` on host arrays (``bmrt_launch_data``) and return its outputs.

        ``inputs`` is a list in the net's input order or a dict by input name. Dtypes must
        match exactly (bf16 as uint16 bit patterns, see ``bf16_from_f32``); the stage is the one
        whose input shapes fit, unless given.
        """
        info = self.net_info(net)
        arrays = check_inputs(info, inputs)
        stage = pick_stage(info, [a.shape for a in arrays], stage)
        n_in, n_out = len(arrays), len(info.outputs)
        in_ptrs = (ctypes.c_void_p * max(1, n_in))(*[a.ctypes.data for a in arrays])
        in_shapes = (_api.BmShape * max(1, n_in))(*[_api.BmShape.of(a.shape) for a in arrays])
        flats = [_output_buffer(t.dtype, max(t.nbytes(stage), t.max_bytes)) for t in info.outputs]
        out_ptrs = (ctypes.c_void_p * max(1, n_out))(*[f.ctypes.data for f in flats])
        out_shapes = (_api.BmShape * max(1, n_out))()
        bmrt = self._require_open()
        with self._vendor() as out:
            ok = self._libs.bmrt.bmrt_launch_data(
                bmrt, net.encode(), in_ptrs, in_shapes, n_in, out_ptrs, out_shapes, n_out, True
            )
        if not ok:
            raise self._error(f"running net {net!r} failed", out, hint=_RUN_HINT)
        results = []
        for flat, shape in zip(flats, out_shapes[:n_out], strict=True):
            dims = shape.to_tuple()
            results.append(flat[: int(np.prod(dims, dtype=np.int64))].reshape(dims))
        return results

    def trace(self) -> int:
        """Re-check every loaded coeff against its SHA-256 (``bmrt_trace``); return the error count.

        0 proves that the weights on the device are byte-exact. The vendor prints its report
        from C; we capture it (even when not quiet) and parse ``Total N errors``.
        """
        bmrt = self._require_open()
        with captured(self._libs.flush_stdio, enabled=True, log_path=self.log_path) as out:
            self._libs.bmrt.bmrt_trace(bmrt)
        self.last_vendor_output = out.text
        if not self.quiet:
            os.write(2, out.text.encode())
        m = _TRACE_TOTAL.search(out.text)
        if m is None:
            raise self._error("bmrt_trace printed no error count", out,
                              hint="this runtime build reports differently; check its output")
        return int(m.group(1))

    # ------------------------------------------------------------------ device memory

    def alloc(self, nbytes: int) -> DeviceBuffer:
        """Allocate ``nbytes`` of device memory (freed at the latest by ``close()``)."""
        if not 0 < nbytes < 1 << 32:
            raise VendorRuntimeError(f"cannot allocate {nbytes} bytes of device memory at once")
        self._require_open()
        mem = _api.BmDeviceMem()
        self._bmlib_call("bm_malloc_device_byte", ctypes.byref(mem), nbytes)
        buf = DeviceBuffer(self, mem, owned=True)
        self._buffers.add(buf)
        return buf

    def io_buffers(self, net: str, stage: int = 0) -> tuple[list[DeviceBuffer], list[DeviceBuffer]]:
        """Views of the device memory the runtime itself keeps for ``net``'s inputs and outputs.

        What the vendor's chat demos use for "io alone" nets (``addr_mode`` 1): write the inputs
        there, launch with them, read the outputs; valid until ``close()``.
        """
        info = self.net_info(net)
        if not 0 <= stage < info.stage_count:
            raise VendorRuntimeError(f"net {net!r} has no stage {stage}")
        with self._vendor():
            c_info = self._libs.bmrt.bmrt_get_network_info(self._require_open(), net.encode())
        st = c_info.contents.stages[stage]
        if not st.input_mems or not st.output_mems:
            raise VendorRuntimeError(f"the runtime keeps no io memory for net {net!r}")
        ins = [DeviceBuffer(self, _api.BmDeviceMem.from_buffer_copy(st.input_mems[i]), owned=False)
               for i in range(len(info.inputs))]
        outs = [DeviceBuffer(self, _api.BmDeviceMem.from_buffer_copy(st.output_mems[i]),
                             owned=False) for i in range(len(info.outputs))]
        return ins, outs

    def launch_tensors(
        self,
        net: str,
        inputs: Sequence[DeviceBuffer],
        outputs: Sequence[DeviceBuffer],
        *,
        stage: int = 0,
        input_shapes: Sequence[Sequence[int]] | None = None,
    ) -> list[tuple[int, ...]]:
        """Run ``net`` on device buffers (``bmrt_launch_tensor_ex``, outputs in caller memory).

        Input shapes default to the stage's shapes; returns the output shapes. Blocks until the
        device is done.
        """
        return launch_tensors(self, self.net_info(net), inputs, outputs, stage, input_shapes)

    # ------------------------------------------------------------------ internals

    def _launch_tensor_ex(self, net: str, ins: Any, n_in: int, outs: Any, n_out: int) -> None:
        bmrt = self._require_open()
        with self._vendor() as out:
            ok = self._libs.bmrt.bmrt_launch_tensor_ex(
                bmrt, net.encode(), ins, n_in, outs, n_out, True, False
            )
            # Launches are asynchronous on a real device; sync before anyone reads outputs.
            rc = self._libs.bmlib.bm_thread_sync(self._handle) if ok else 0
        if not ok or rc != _api.BM_SUCCESS:
            raise self._error(f"running net {net!r} on device buffers failed", out, hint=_RUN_HINT)

    def _bmlib_call(self, name: str, *args: Any) -> None:
        self._require_open()
        with self._vendor() as out:
            rc = getattr(self._libs.bmlib, name)(self._handle, *args)
        if rc != _api.BM_SUCCESS:
            raise self._error(f"{name} failed with status {rc}", out, hint=_DEVICE_HINT)

    def _release(self, buf: DeviceBuffer) -> None:
        self._buffers.discard(buf)
        if self._bmrt is not None:
            self._libs.bmlib.bm_free_device(self._handle, buf._mem)

    def _require_open(self) -> int:
        if self._bmrt is None:
            raise VendorRuntimeError("the runtime is closed")
        return self._bmrt

    @contextmanager
    def _vendor(self) -> Iterator[Captured]:
        out = Captured()
        try:
            with captured(self._libs.flush_stdio, enabled=self.quiet,
                          log_path=self.log_path) as out:
                yield out
        finally:
            self.last_vendor_output = out.text

    @staticmethod
    def _error(message: str, out: Captured, hint: str | None = None) -> VendorRuntimeError:
        summary = vendor_summary(out.text)
        err = VendorRuntimeError(f"{message}: {summary}" if summary else message, hint=hint)
        if out.text.strip():
            err.add_note("vendor runtime output:\n" + out.text.rstrip())
        return err


def _output_buffer(dtype: DType, nbytes: int) -> np.ndarray:
    return np.empty(-(-nbytes // dtype.itemsize), dtype=dtype.numpy)
