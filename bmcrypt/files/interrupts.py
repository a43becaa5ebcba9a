"""Holding interrupts back for the few instructions that must not be cut in two.

The CLI turns SIGINT, SIGTERM and SIGHUP into an exception (`bmcrypt.errors.Interrupted`), so an
interrupted run unwinds through every ``finally`` and deletes its temp files like any failure.
An exception can only land between two Python instructions, though: between the ``open`` that
creates a temp file and the ``try`` that would delete it there is one such gap. `signals_held`
closes it by blocking those signals for a moment; one that arrives meanwhile is delivered (and
raised) as soon as the block ends, inside the ``try``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: The signals a person or a supervisor sends to stop a run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def signals_held() -> Iterator[None]:
    """Block the stop signals in this thread for the ``with`` block (a no-op off the main thread,
    where Python never runs signal handlers anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
