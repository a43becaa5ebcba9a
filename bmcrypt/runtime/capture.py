"""Keep the vendor libraries' chatter off the terminal, and keep it for error messages.

libbmlib / libbmrt / the simulator print straight to file descriptors 1 and 2 from C and C++
(``printf``, ``std::cout``, ``fprintf(stderr)``), so ``sys.stdout`` tricks do not reach them:
we point fds 1 and 2 at a temporary file for the duration of a call and restore them afterwards.

Two details matter:

- C stdio buffers: when fd 1 is a pipe or file, ``printf`` output sits in a libc buffer and
  would be written *after* we restore the fd, i.e. to the wrong place. ``fflush(NULL)`` runs
  before redirecting (so earlier output is not captured by mistake) and before restoring.
- The redirection is process-wide: output from other threads during a captured call lands in
  the capture too. Captured calls are serialised by a lock so nested redirects cannot tangle.

In a child process started by ``isolate.run_isolated`` fds 1 and 2 already point at a log file
that the parent reads even if the child crashes; there ``captured`` does not redirect again but
reads back what the call appended, so a crash mid-call still leaves its output for the parent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("bmcrypt.runtime.vendor")

_lock = threading.RLock()
_process_sink: str | None = None  # set in isolated children: fds 1/2 already go to this file


@dataclass
class Captured:
    """What the vendor code printed during one captured block (filled in when the block ends)."""

    text: str = ""


def _flush_python() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to keep
                stream.flush()


@contextmanager
def captured(
    flush_c: Callable[[], object], *, enabled: bool = True, log_path: Path | None = None
) -> Iterator[Captured]:
    """Redirect fds 1 and 2 into a buffer for the duration of the block.

    ``flush_c`` flushes C stdio (``libc.fflush(None)``). With ``enabled=False`` output goes where
    it always goes and ``text`` stays empty. The captured text is logged at DEBUG on
    ``bmcrypt.runtime.vendor`` and, if ``log_path`` is given, appended to that file.
    """
    cap = Captured()
    if not enabled:
        yield cap
        return
    with _lock:
        _flush_python()
        flush_c()
        if _process_sink is not None:
            start = os.lseek(1, 0, os.SEEK_END)
            try:
                yield cap
            finally:
                flush_c()
                cap.text = _read_from(_process_sink, start)
                _record(cap.text, log_path)
            return
        with tempfile.TemporaryFile() as sink:
            saved = _redirect(sink.fileno())
            try:
                yield cap
            finally:
                flush_c()
                _restore(saved)
                sink.seek(0)
                cap.text = sink.read().decode("utf-8", errors="replace")
                _record(cap.text, log_path)


def _redirect(fd: int) -> list[tuple[int, int]]:
    saved = []
    for target in (1, 2):
        try:
            saved.append((target, os.dup(target)))
        except OSError:  # fd not open (daemonised parent): nothing to restore later
            continue
        os.dup2(fd, target)
    return saved


def _restore(saved: list[tuple[int, int]]) -> None:
    for target, copy in saved:
        os.dup2(copy, target)
        os.close(copy)


def _read_from(path: str, start: int) -> str:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", errors="replace")


def _record(text: str, log_path: Path | None) -> None:
    if not text:
        return
    logger.debug("%s", text.rstrip("\n"))
    if log_path is not None:
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(text)


def send_process_output_to(path: str) -> None:
    """Point this process's fds 1 and 2 at ``path`` for good (used by isolated children)."""
    global _process_sink
    _flush_python()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    _process_sink = path


def silence_stdout_for_exit(flush_c: Callable[[], object]) -> None:
    """Send fd 1 to /dev/null for the rest of the process's life.

    libbmrt keeps a static per-device memory manager that holds its own device handle; its C++
    destructor runs after Python is gone and prints "BMLIB Send Quit Message" and
    "cmodel_deinit complete" on stdout, which would corrupt a command's data output. Only
    called from our atexit hook, after Python's own output is flushed.
    """
    if _process_sink is not None:  # isolated child: that chatter belongs in its log
        return
    _flush_python()
    flush_c()
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


_STRONG = ("broken", "fail", "error", "invalid", "wrong", "assert", "mismatch", "not found")
_TAGS = re.compile(r"^(\[[^\]]*\]\s*)+|^(FATAL|ERROR|WARNING)\s*:\s*", re.IGNORECASE)


def vendor_summary(text: str, limit: int = 2) -> str:
    """The one or two lines of vendor output worth putting in a one-line error message.

    Prefers lines that say what broke ("... is broken", "... failed") over the vendor's other
    FATAL lines (version banners and the like); drops the ``[BMODEL][ModelCtx:547] FATAL:``
    tags. The full text belongs in the exception's notes, not here.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    strong = [ln for ln in lines if any(k in ln.lower() for k in _STRONG)
              and "total 0 errors" not in ln.lower()]
    picked = strong or [ln for ln in lines if "fatal" in ln.lower()]
    return "; ".join(_untag(ln) for ln in picked[:limit])


def _untag(line: str) -> str:
    while True:
        stripped = _TAGS.sub("", line, count=1).strip()
        if stripped == line:
            return line
        line = stripped
