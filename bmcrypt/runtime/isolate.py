"""Run risky vendor calls in a child process, so a crash or ``exit()`` cannot take us down.

The vendor loader calls ``exit()``, asserts, or dereferences NULL on some malformed files (and
on encrypted files loaded without a decryptor). Anything that loads a file we did not make
ourselves, or a decrypt callback that might fail half-way, should go through
``run_isolated``:

    report = run_isolated(check_load, "suspect.bmodel")

The child is a fresh ``sys.executable -m bmcrypt.runtime._child``, never a fork (the parent may
already run the simulator, whose threads do not survive a fork) and not ``multiprocessing``
(whose spawn mode re-runs the caller's main script in the child). The call travels as a pickle
in a file, the answer comes back the same way; the child's fds 1 and 2 go to a log file, so
even a segfault leaves the vendor's last words for the error message.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import bmcrypt
from bmcrypt import errors
from bmcrypt.errors import BmcryptError, VendorRuntimeError
from bmcrypt.runtime.capture import vendor_summary

logger = logging.getLogger(__name__)
T = TypeVar("T")

_CRASH_HINT = "the file is probably malformed; `bmcrypt inspect FILE` checks its structure"


@dataclass(frozen=True)
class LoadReport:
    """What ``check_load`` found: the nets the runtime saw and the ``bmrt_trace`` error count."""

    nets: list[str]
    trace_errors: int


def check_load(
    path: str,
    *,
    runtime_dir: str | None = None,
    decrypt_lib: str | None = None,
) -> LoadReport:
    """Load ``path`` into a fresh runtime (optionally via a decrypt library) and verify it.

    Runs in the current process; wrap it in ``run_isolated`` for files you do not trust.
    """
    from bmcrypt.runtime.device import Runtime  # lazy: keeps this module light for the parent

    with Runtime(runtime_dir) as rt:
        if decrypt_lib is None:
            rt.load(path)
        else:
            rt.load_with_decrypt_lib(path, decrypt_lib)
        return LoadReport(nets=rt.net_names(), trace_errors=rt.trace())


def run_isolated(
    fn: Callable[..., T], *args: Any, timeout: float | None = 600.0, **kwargs: Any
) -> T:
    """Call ``fn(*args, **kwargs)`` in a child process and return its result.

    ``fn`` (a module-level function), its arguments and its result must be picklable. A
    ``BmcryptError`` raised in the child is raised here with the same class, message and hint.
    A crash, ``exit()``, or timeout becomes a ``VendorRuntimeError`` quoting the child's vendor
    output.
    """
    with tempfile.TemporaryDirectory(prefix="bmcrypt-child-") as tmp:
        job, answer, log = Path(tmp, "job"), Path(tmp, "answer"), Path(tmp, "log")
        job.write_bytes(pickle.dumps((fn, args, kwargs)))
        with open(log, "ab") as log_file:
            try:
                proc = subprocess.run(
                    [sys.executable, "-P", "-m", "bmcrypt.runtime._child", str(job), str(answer),
                     str(log)],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                    env=_child_env(fn), timeout=timeout, check=False,
                )
                exitcode: int | None = proc.returncode
            except subprocess.TimeoutExpired:  # run() has killed the child already
                exitcode = None
        text = log.read_text(encoding="utf-8", errors="replace")
        message = pickle.loads(answer.read_bytes()) if answer.is_file() else None
    return cast(T, _outcome(message, exitcode, text, timeout))


def _child_env(fn: Callable[..., Any]) -> dict[str, str]:
    # The child must import the same bmcrypt as we did, installed or from a source tree, and
    # the module `fn` lives in when that is a top-level module (a script's or a test's helper).
    env = dict(os.environ)
    paths = [str(Path(bmcrypt.__file__).resolve().parent.parent)]
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    if module is not None and "." not in module.__name__ and getattr(module, "__file__", None):
        paths.append(str(Path(module.__file__).resolve().parent))  # type: ignore[arg-type]
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*paths, env.get("PYTHONPATH")) if p)
    return env


def _outcome(message: tuple[Any, ...] | None, exitcode: int | None, text: str,
             timeout: float | None) -> Any:
    if message is not None and message[0] == "ok":
        return message[1]
    if message is not None and message[0] == "error":
        raise _rebuild(message)
    if message is not None:  # ("failure", class name, message): not one of our errors
        err = VendorRuntimeError(f"isolated call failed with {message[1]}: {message[2]}")
    elif exitcode is None:
        err = VendorRuntimeError(f"isolated call did not finish within {timeout} s")
    else:
        summary = vendor_summary(text)
        err = VendorRuntimeError(
            f"the vendor runtime {describe_exit(exitcode)}" + (f": {summary}" if summary else ""),
            hint=_CRASH_HINT,
        )
    if text.strip():
        err.add_note("child process output:\n" + text.rstrip())
    raise err


def _rebuild(message: tuple[Any, ...]) -> BmcryptError:
    # ("error", class name, message, hint, notes): same class, message and hint as in the child.
    _, cls_name, msg, hint, notes = message
    cls = getattr(errors, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BmcryptError)):
        cls = VendorRuntimeError
    err: BmcryptError = cls(msg, hint=hint)
    for note in notes:
        err.add_note(note)
    return err


def describe_exit(exitcode: int | None) -> str:
    """Human words for a child's exit status (negative = killed by that signal)."""
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"crashed with {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"
