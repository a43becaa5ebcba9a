"""Process-wide bookkeeping of open runtimes, and a clean (and quick) way out.

Facts of the vendor runtime on its simulator that shape this module:

- An open device at interpreter exit segfaults in the vendor's own destructors, so an
  ``atexit`` hook closes every ``Runtime`` callers forgot.
- Two live runtimes on one device in one process corrupt each other (a net of one returns
  garbage, or hangs, once the other has loaded a different model), so a second ``Runtime`` on
  the same ``devid`` is refused unless asked for: load several files into one, or close first.
- ``close()`` is not the whole story: the first load creates a per-device memory manager inside
  libbmrt (a process-lifetime singleton with its own device handle). After any load the
  simulator's threads keep spinning (about half a core) until the process ends, and normal exit
  then spends about 1.3 s in the vendor's teardown (a fixed ``sleep(1)``) while printing
  "BMLIB Send Quit Message" / "cmodel_deinit complete" on stdout. Our atexit hook points
  stdout at /dev/null first (when every runtime was quiet); ``exit_now`` skips the teardown.
- Weights kept on the device by ``bmrt_destroy_without_coeff`` (``resident="active"``) stay
  there for the life of the process: libbmrt leaks the bmruntime object that holds them, by
  design. The simulator's teardown then finds device memory still allocated and ends the
  process with 255. Programs that switch models this way end through ``exit_now``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn, Protocol

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.runtime import _api
from bmcrypt.runtime.capture import silence_stdout_for_exit


class Tracked(Protocol):
    """An open runtime as this module sees it (``Runtime`` is one)."""

    devid: int
    quiet: bool

    def close(self) -> None: ...


_open_runtimes: set[Tracked] = set()
_open_lock = threading.Lock()
_all_quiet = True  # every Runtime so far was quiet: the vendor's exit chatter may be hidden


def close_all() -> None:
    """Close every open ``Runtime`` of this process (what the atexit hook does)."""
    with _open_lock:
        leftovers = list(_open_runtimes)
    for rt in leftovers:
        # Closing the rest matters more than one failure (and we may be exiting anyway).
        with contextlib.suppress(Exception):
            rt.close()


def runtime_used() -> bool:
    """Whether this process has loaded the vendor runtime (and so will run its teardown)."""
    return _api.loaded_libs() is not None


def exit_now(code: int = 0) -> NoReturn:
    """Close all runtimes, flush every stream, and end the process without the vendor teardown.

    After a load, normal interpreter exit runs libbmrt's static destructors: about 1.3 s on the
    simulator (a fixed sleep) plus chatter on stdout. For a command that is done, that is pure
    latency. Python ``atexit`` hooks and C destructors do *not* run: call this only from a
    program's top level, never from a library.
    """
    close_all()
    libs = _api.loaded_libs()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to keep
                stream.flush()
    if libs is not None:
        libs.flush_stdio()
    os._exit(code)


def refuse_second_runtime(devid: int) -> None:
    """Raise if a ``Runtime`` is already open on ``devid`` in this process."""
    with _open_lock:
        busy = any(rt.devid == devid for rt in _open_runtimes)
    if busy:
        raise VendorRuntimeError(
            f"another Runtime is already open on device {devid} in this process",
            hint="load all files into one Runtime, or close() the other one first",
        )


def track(rt: Tracked) -> None:
    """Remember an opened runtime (for the exit hook and the one-per-device rule)."""
    global _all_quiet
    with _open_lock:
        _open_runtimes.add(rt)
        _all_quiet = _all_quiet and rt.quiet


def untrack(rt: Tracked) -> None:
    """Forget a closed runtime."""
    with _open_lock:
        _open_runtimes.discard(rt)


# Registered at import, i.e. early: atexit runs hooks last-in first-out, so ours runs after the
# hooks of everything imported later and silences stdout only once they have printed.
@atexit.register
def _at_exit() -> None:
    # Safety net: an open simulator at interpreter exit segfaults in its own destructors.
    close_all()
    libs = _api.loaded_libs()
    if libs is not None and _all_quiet:
        silence_stdout_for_exit(libs.flush_stdio)
