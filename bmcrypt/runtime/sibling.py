"""More than one bmruntime instance on one opened device.

Several LLM builds cannot share one bmruntime: their nets have the same names, and libbmrt
skips a net whose name is already loaded ("Net[…] exist, does not load again"). The vendor's
answer is one ``bmrt_create`` per model on the same device handle; all of them share libbmrt's
per-device memory manager, which is what lets identical weights be uploaded once.

``Runtime`` opens its own device, and a second ``Runtime`` on one device is refused (two device
handles corrupt each other on the simulator). ``SiblingRuntime`` is a ``Runtime`` that borrows
the device handle of an open one and owns only its bmruntime instance, so everything written
for ``Runtime`` (``bmcrypt.loader.load_model``, ``launch_tensors``, ``alloc`` …) works on it.

It lives beside ``Runtime`` because it shares that class's internals (``_libs``, ``_handle``,
``_bmrt``, ``_buffers``, ``_info_cache``). Close every sibling before its parent; ``close()`` of
the parent does not know about them.
"""

from __future__ import annotations

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.runtime.device import Runtime
from bmcrypt.runtime.devmem import DeviceBuffer
from bmcrypt.runtime.nets import NetInfo


class SiblingRuntime(Runtime):
    """A bmruntime instance on the device of ``parent`` (which must stay open longer)."""

    def __init__(self, parent: Runtime) -> None:  # noqa: D107 - see the class docstring
        # Runtime.__init__ is deliberately not called: it would request a second device.
        if parent.closed:
            raise VendorRuntimeError("cannot add a runtime to a closed one")
        self.parent = parent
        self.lib_dir = parent.lib_dir
        self._libs = parent._libs
        self.devid = parent.devid
        self.quiet = parent.quiet
        self.log_path = parent.log_path
        self.last_vendor_output = ""
        self._handle = parent._handle
        self._bmrt: int | None = None
        self._buffers: set[DeviceBuffer] = set()
        self._info_cache: dict[str, NetInfo] = {}
        with self._vendor() as out:
            bmrt = self._libs.bmrt.bmrt_create(self._handle)
        if not bmrt:
            raise self._error("bmrt_create failed", out)
        self._bmrt = bmrt

    def close(self, *, keep_weights: bool = False) -> None:
        """Free this instance's buffers and destroy its bmruntime; the device stays open.

        ``keep_weights``: leave its weights on the device for the next model with the same
        weights (``bmrt_destroy_without_coeff``, see ``Runtime._destroy_bmrt``).
        """
        if self._bmrt is None:
            return
        if self.parent.closed:
            # The device is gone and everything on it; calling into it now would crash.
            self._bmrt = None
            self._buffers.clear()
            self._info_cache.clear()
            return
        self._destroy_bmrt(keep_weights=keep_weights)
