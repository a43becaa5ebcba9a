"""Run risky vendor calls in a child process, so a crash or ``exit()`` cannot take us down.

The vendor loader calls ``exit()``, asserts, or dereferences NULL on some malformed files (and
on encrypted files loaded without a decryptor). Anything that loads a file we did not make
ourselves, or a decrypt callback that might fail half-way, should go through
``run_isolated``:

    report = run_isolated(check_load, "suspect.bmodel")

The child is *spawned* (a fresh ``sys.executable``), never forked: the parent may already run
the simulator, whose threads do not survive a fork. Its fds 1 and 2 go to a log file that the
parent reads afterwards, so even a segfault leaves the vendor's last words for the error
message.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from bmcrypt import errors
from bmcrypt.errors import BmcryptError, VendorRuntimeError
from bmcrypt.runtime.capture import send_process_output_to, vendor_summary

logger = logging.getLogger(__name__)
T = TypeVar("T")


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
    from bmcrypt.runtime.device import Runtime  # imported here: the child needs only this

    with Runtime(runtime_dir) as rt:
        if decrypt_lib is None:
            rt.load(path)
        else:
            rt.load_with_decrypt_lib(path, decrypt_lib)
        return LoadReport(nets=rt.net_names(), trace_errors=rt.trace())


def run_isolated(
    fn: Callable[..., T], *args: Any, timeout: float | None = 600.0, **kwargs: Any
) -> T:
    """Call ``fn(*args, **kwargs)`` in a spawned child process and return its result.

    ``fn``, its arguments and its result must be picklable (``fn`` a module-level function).
    A ``BmcryptError`` raised in the child is raised here with the same class, message and
    hint. A crash, ``exit()``, or timeout becomes a ``VendorRuntimeError`` quoting the child's
    vendor output.
    """
    ctx = multiprocessing.get_context("spawn")
    with tempfile.NamedTemporaryFile(prefix="bmcrypt-child-", suffix=".log") as log:
        reader, writer = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_child_main, args=(writer, log.name, fn, args, kwargs),
                            daemon=True)
        child.start()
        writer.close()  # so that recv() sees EOF when the child dies
        try:
            message = reader.recv() if reader.poll(timeout) else ("timeout",)
        except EOFError:
            message = ("died",)
        finally:
            reader.close()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()
        text = open(log.name, encoding="utf-8", errors="replace").read()
    return _outcome(message, child.exitcode, text, timeout)


def _outcome(message: tuple[Any, ...], exitcode: int | None, text: str,
             timeout: float | None) -> Any:
    kind = message[0]
    if kind == "ok":
        if exitcode:
            # The work is done; only the vendor's teardown misbehaved. Worth a log line only.
            logger.warning("isolated child finished but exited with %s", _describe(exitcode))
        return message[1]
    if kind == "error":
        _, cls_name, text_msg, hint, notes = message
        cls = getattr(errors, cls_name, None)
        if not (isinstance(cls, type) and issubclass(cls, BmcryptError)):
            cls = VendorRuntimeError
        err = cls(text_msg, hint=hint)
        for note in notes:
            err.add_note(note)
        raise err
    if kind == "failure":
        _, cls_name, text_msg = message
        err = VendorRuntimeError(f"isolated call failed with {cls_name}: {text_msg}")
    elif kind == "timeout":
        err = VendorRuntimeError(f"isolated call did not finish within {timeout} s")
    else:
        summary = vendor_summary(text)
        err = VendorRuntimeError(
            f"the vendor runtime {_describe(exitcode)}" + (f": {summary}" if summary else ""),
            hint="the file is probably malformed; `bmcrypt inspect FILE` checks its structure",
        )
    if text.strip():
        err.add_note("child process output:\n" + text.rstrip())
    raise err


def _describe(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"crashed with {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _child_main(conn: Connection, log_path: str, fn: Callable[..., Any],
                args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    send_process_output_to(log_path)
    try:
        result = fn(*args, **kwargs)
    except BmcryptError as e:
        conn.send(("error", type(e).__name__, e.message, e.hint, list(getattr(e, "__notes__", []))))
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as a message
        conn.send(("failure", type(e).__name__, str(e)))
    else:
        conn.send(("ok", result))
    finally:
        conn.close()
