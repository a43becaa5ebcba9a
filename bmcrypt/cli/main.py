"""Entry point of the `bmcrypt` console script: the one place that maps errors to messages."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

from bmcrypt.cli.version import is_version_request, version_line
from bmcrypt.errors import BmcryptError, Interrupted

# Typer, rich and the commands are imported inside `main` and `_run`: `bmcrypt --version` needs
# none of them, and start-up is most of what a small command costs (issue 17).

#: The signals that stop a run: each becomes `Interrupted`, so the run unwinds like a failure.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    # A second signal during the clean-up must not cut the clean-up short: the first one wins.
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise `Interrupted` for the ``with`` block (main thread only;
    a signal whose disposition was "ignore" when we started, as under nohup, stays ignored)."""
    if threading.current_thread() is not threading.main_thread():  # only it may set handlers
        yield
        return
    old = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        for sig, handler in old.items():
            if handler is not signal.SIG_IGN:
                signal.signal(sig, _raise_interrupted)
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the process exit code (the console script exits with it).

    Never 0 unless the command finished: an interrupt exits 128 + its signal's number (130 for
    SIGINT, 143 for SIGTERM, 129 for SIGHUP) after the same clean-up a failure gets.
    """
    if is_version_request(sys.argv[1:] if argv is None else list(argv)):
        return _print_version(argv)
    from bmcrypt._lazy import avoid_numpy
    from bmcrypt.cli import mode, output

    avoid_numpy()  # for the flatbuffers runtime; a command that needs numpy still imports it
    mode.reset()
    try:
        with _signals_unwind():
            return _run(argv)
    except Interrupted as exc:
        output.err.print(f"bmcrypt: {exc}", markup=False)
        return exc.exit_code


def _print_version(argv: list[str] | None) -> int:
    """What Typer's eager ``--version`` option prints, without loading Typer or rich."""
    try:
        sys.stdout.write(version_line() + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left (`| head -0`): exit 1 quietly, as click does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # stdout full or gone: the one-line error, as in `_run`
        from bmcrypt.cli import failure, output

        return failure.bmcrypt_error(output.os_error_of(exc), argv)
    return 0


def _run(argv: list[str] | None) -> int:
    import typer

    from bmcrypt.cli import failure, output
    from bmcrypt.cli.app import app

    try:
        returned = app(args=argv, prog_name="bmcrypt", standalone_mode=False)
    except BmcryptError as exc:
        return failure.bmcrypt_error(exc, argv)
    except typer.Abort:
        output.err.print("bmcrypt: aborted", markup=False)
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: the house format, exit 2
        return failure.usage_error(exc, argv)
    except OSError as exc:  # disk full, I/O error, …: the OS said no; say it in one line
        return failure.bmcrypt_error(output.os_error_of(exc), argv)
    except KeyboardInterrupt:  # raised by code that installs its own SIGINT handling
        output.err.print("bmcrypt: interrupted (SIGINT)", markup=False)
        return 130
    # Without standalone mode Typer *returns* the code of an Exit it caught (130 for an
    # interrupt it turned into one): dropping it would report success for a run that failed.
    if isinstance(returned, int) and returned:
        if returned == 130:
            output.err.print("bmcrypt: interrupted (SIGINT)", markup=False)
        return returned
    return 0


def entry() -> NoReturn:
    """The console script: run `main`, and end the process with its code.

    When the vendor runtime was used, the process ends through `exit_now`: libbmrt's own
    teardown costs about 1.3 s on the simulator, and it ends the process with 255 when weights
    were kept on the device for the next model (`bmcrypt chat --resident active`): libbmrt keeps
    them for the life of the process, by design, and its simulator counts them as a leak.
    """
    code = main()
    if "bmcrypt.runtime.lifecycle" in sys.modules:  # never imported: no runtime was used
        from bmcrypt.runtime.lifecycle import exit_now, runtime_used

        if runtime_used():
            exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
