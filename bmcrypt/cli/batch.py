"""Many models in one command: expand the paths, run each file on its own, report, conclude.

Every file-taking command (encrypt, decrypt, verify, rekey, inspect, backup, restore) hands its
per-file work to :func:`run` and its results to :func:`conclude`:

- each file is processed independently: its failure is recorded and the others go on. The work
  itself never leaves a file half-done (workflow.py: temp file, then rename);
- a one-line result per file as it completes, then a summary (text), or one JSON document;
- the exit code is 0 when every file succeeded, else that of the first failing file (in the
  order given); the summary says how many failed;
- one progress bar over the whole batch, only when a person watches stderr;
- ``--jobs N`` runs N files at a time on threads (the crypto and hashing release the GIL).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from bmcrypt.cli import jsondoc, mode, output
from bmcrypt.errors import BmcryptError, NotRegularFile, UsageError

if TYPE_CHECKING:
    from concurrent.futures import Future

T = TypeVar("T")
#: Called with the bytes a phase will process; returns that phase's progress callback.
ProgressFactory = Callable[[str, int], Callable[[int], None] | None]
#: The per-file work of a command: one path in, one result out (or a BmcryptError raised).
Work = Callable[[Path, ProgressFactory], T]


@dataclass
class Outcome(Generic[T]):
    """What happened to one file: its result, or the error that stopped it."""

    path: Path
    result: T | None = None
    error: BmcryptError | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class FilesFailed(BmcryptError):
    """Some files of a batch failed; each was reported, the others succeeded."""

    def __init__(self, failed: int, total: int, exit_code: int) -> None:
        if failed == total:
            super().__init__(f"all {total} files failed (see above)")
        else:
            super().__init__(f"{failed} of {total} files failed (see above)",
                             hint="the others are done; fix or leave out the failing ones")
        self.exit_code = exit_code


# ---------------------------------------------------------------- which files


def expand(paths: Sequence[Path], recursive: bool) -> list[Path]:
    """The files to process: the paths as given, and with -r a directory standing for every
    ``*.bmodel`` under it, sorted. A file found under a directory that is already in the list
    (named, or under another directory given) is not added again."""
    found: list[Path] = []
    seen: set[str] = set()
    for path in paths:
        if recursive and path.is_dir():
            models = sorted(p for p in path.rglob("*.bmodel") if p.is_file())
            if not models:
                raise UsageError(f"no *.bmodel files under {path}",
                                 hint="-r takes directories that hold .bmodel files")
            fresh = [m for m in models if os.path.realpath(m) not in seen]
        else:
            fresh = [path]
        seen.update(os.path.realpath(m) for m in fresh)
        found.extend(fresh)
    return found


def one_at_most(paths: Sequence[Path], flag: str) -> None:
    """Options that name one output (`-o OUT`) make no sense for several models."""
    if len(paths) > 1:
        raise UsageError(f"{flag} takes a single model, {len(paths)} were given",
                         hint=f"leave out {flag} to work in place, or run once per model")


# ---------------------------------------------------------------- running


def run(paths: Sequence[Path], work: Work[T], *, jobs: int = 1,
        show: Callable[[Path, T], None] | None = None,
        stop_on: tuple[type[BmcryptError], ...] = ()) -> list[Outcome[T]]:
    """Apply `work` to every path; `show` prints a success's line (not in quiet or JSON mode).

    A failing file of a batch is reported at once on stderr (one error line naming it, and its
    hint); a single file's error is left to the caller (:func:`conclude` raises it). Errors of
    the `stop_on` classes are not about one file (a key that cannot be had): they stop the
    batch and propagate.
    """
    if jobs < 1:
        raise UsageError("--jobs must be at least 1", hint="--jobs N runs N files at a time")
    talk = not (mode.current.quiet or mode.current.json)
    if len(paths) == 1:
        with output.progress_bars() as bars:
            outcome = _one(paths[0], work, bars if talk else _no_bars, stop_on)
        if outcome.ok and show is not None and talk:
            show(outcome.path, outcome.result)  # type: ignore[arg-type]
        _timing(outcome)
        return [outcome]
    from concurrent.futures import ThreadPoolExecutor, as_completed  # only for batches

    done: dict[int, Outcome[T]] = {}
    with _batch_bar(len(paths), talk) as advance, \
            ThreadPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        futures: dict[Future[Outcome[T]], int] = {
            pool.submit(_one, p, work, _no_bars, stop_on): i for i, p in enumerate(paths)}
        try:
            for future in as_completed(futures):
                outcome = done[futures[future]] = future.result()
                if outcome.error is not None:
                    output.error(_naming(outcome.error, outcome.path))
                elif show is not None and talk:
                    show(outcome.path, outcome.result)  # type: ignore[arg-type]
                _timing(outcome)
                advance()
        except BaseException:
            # Ctrl-C: files not started stay untouched; running ones finish (or roll back).
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return [done[i] for i in range(len(paths))]


def _one(path: Path, work: Work[T], bars: ProgressFactory,
         stop_on: tuple[type[BmcryptError], ...] = ()) -> Outcome[T]:
    start = time.perf_counter()
    try:
        if path.is_dir():  # the one message for what is not a regular file, with the way out
            raise NotRegularFile(f"{path} is a directory, not a regular file",
                                 hint="pass -r to process every *.bmodel under it")
        return Outcome(path, result=work(path, bars), seconds=time.perf_counter() - start)
    except BmcryptError as exc:
        if isinstance(exc, stop_on):
            raise
        return Outcome(path, error=exc, seconds=time.perf_counter() - start)
    except OSError as exc:  # the OS said no for this file; the others may still be fine
        where = f" ({exc.filename})" if exc.filename else ""
        error = BmcryptError(f"{exc.strerror or exc}{where}".lower(),
                             hint="check the path, its permissions and free disk space")
        return Outcome(path, error=error, seconds=time.perf_counter() - start)


def _no_bars(_what: str, _total: int) -> None:
    return None


def _naming(exc: BmcryptError, path: Path) -> BmcryptError:
    """The error as a batch prints it: its message names the file."""
    if str(path) in exc.message:
        return exc
    return BmcryptError(f"{path}: {exc.message}", hint=exc.hint)


def _timing(outcome: Outcome[Any]) -> None:
    if mode.current.verbose and not mode.current.quiet:
        state = "ok" if outcome.ok else "failed"
        output.note(f"{outcome.path}: {state} in {outcome.seconds:.3f} s")


@contextmanager
def _batch_bar(total: int, talk: bool) -> Iterator[Callable[[], None]]:
    """One bar over the batch, counting files, only on a terminal."""
    if not (talk and output.on_terminal()):
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("files"), TimeElapsedColumn())
    with Progress(*columns, console=output.err, transient=True) as bar:
        task = bar.add_task(mode.current.command or "files", total=total)
        yield lambda: bar.advance(task)


# ---------------------------------------------------------------- concluding


def conclude(outcomes: Sequence[Outcome[T]], to_json: Callable[[T], dict[str, Any]], *,
             verb: str = "done", **extra: Any) -> None:
    """Print the summary (text) or the document (JSON); raise the batch's error, if any.

    `extra` are further top-level JSON fields (inspect's ``comparison``).
    """
    failed = [o for o in outcomes if o.error is not None]
    error: BmcryptError | None = None
    if len(outcomes) == 1 and failed:
        error = failed[0].error
    elif failed:
        error = FilesFailed(len(failed), len(outcomes), failed[0].error.exit_code)  # type: ignore[union-attr]
    if mode.current.json:
        files = [{"path": str(o.path), "ok": True, **to_json(o.result)} if o.ok  # type: ignore[arg-type]
                 else {"path": str(o.path), "ok": False,
                       "error": jsondoc.error_json(o.error)}  # type: ignore[arg-type]
                 for o in outcomes]
        summary = {"total": len(outcomes), "succeeded": len(outcomes) - len(failed),
                   "failed": len(failed)}
        jsondoc.emit(not failed, jsondoc.error_json(error) if error else None,
                     files=files, summary=summary, **extra)
    elif len(outcomes) > 1 and not failed and not mode.current.quiet:
        output.note(f"{len(outcomes)} files {verb}")
    if error is not None:
        raise error
