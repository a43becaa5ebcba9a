"""The streaming machinery `seal` and `unseal` share: jobs on threads, in-place writes, the input.

- `Streamer` runs one job per envelope (and one for the clear bytes) on as many threads as there
  are cores, writes each result where it belongs with `pwrite`, and reports progress from the
  calling thread; the first failure stops every job.
- `copy_clear` is the clear bytes' job: copied in order, hashed into the clear digest.
- `Writeback` hands what was written to the kernel's writeback every few MiB, so the final
  fsync has little left to do.
- `Source` is the mapped input with read-ahead advice and per-chunk bounds checks.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from bmcrypt.crypto.envelope_header import Buffer
from bmcrypt.errors import Corrupt
from bmcrypt.files.atomic import start_writeback

if TYPE_CHECKING:
    from bmcrypt.protect.manifest import ClearDigest
    from bmcrypt.protect.region_plan import Piece

CHUNK = 8 << 20  # bytes per step: large enough for throughput, small for memory
AHEAD = 32 << 20  # bytes of the input the kernel is kept reading ahead of each job

Progress = Callable[[int], None]  # called with the number of plaintext bytes just processed
Job = Callable[["Streamer"], None]  # work one thread does in order
#: Where output bytes go: (offset in the new region, bytes, the job's writeback or None).
Put = Callable[[int, Buffer, "Writeback | None"], None]


class Streamer:
    """Runs jobs on worker threads; each job is a sequence of work done in order by one thread.

    Pieces of the new binary region have known offsets, so jobs write wherever their bytes go
    (`pwrite`) in any order; without a file descriptor to write to, the jobs run one after the
    other and their writes must come in file order. The work itself (hashing, the native core,
    pycryptodome, file writes) releases the GIL, so the threads really run in parallel.

    Written ranges are handed to the kernel's writeback early (`start_writeback`), so that the
    disk works while the data is produced and the final fsync has little left to do.
    """

    WRITEBACK = 32 << 20  # bytes a job writes between two writeback kicks

    def __init__(self, out: BinaryIO | None, out_base: int, progress: Progress | None) -> None:
        self._out = out
        self._base = out_base
        self._fd: int | None = None
        if out is not None:
            out.flush()
            with contextlib.suppress(AttributeError, OSError, ValueError):
                self._fd = out.fileno()
        self._progress = progress
        self._reports: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._writing = threading.Lock()

    @property
    def parallel(self) -> bool:
        return self._out is None or self._fd is not None

    def jobs(self, pieces: Sequence[Piece], clear_job: Callable[[list[Piece]], Job],
             envelope_job: Callable[[Piece], Job], *, biggest_first: bool = False) -> list[Job]:
        """The jobs for a plan's pieces: with one output stream, every piece in file order;
        otherwise one job for all clear pieces (the digest needs them in order) and one per
        envelope (the biggest first when asked, so the longest job starts early)."""
        if not self.parallel:
            return [clear_job([p]) if p.kind != "seal" else envelope_job(p) for p in pieces]
        envelopes = [p for p in pieces if p.kind == "seal"]
        if biggest_first:
            envelopes.sort(key=lambda p: -p.plain_size)
        return [clear_job([p for p in pieces if p.kind != "seal"])] + [
            envelope_job(p) for p in envelopes]

    def run(self, jobs: Sequence[Job]) -> None:
        """Run every job (in parallel when `parallel`); raise the first failing job's error."""
        workers = min(len(jobs), _cpu_count()) if self.parallel else 1
        if workers <= 1:
            for job in jobs:
                job(self)
                self._progress_from_queue(stop_at=0)
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="bmcrypt") as pool:
            futures = [pool.submit(self._guarded, job) for job in jobs]
            try:
                self._progress_from_queue(stop_at=len(jobs))
            except BaseException:  # e.g. KeyboardInterrupt: stop the workers before leaving
                self._stop.set()
                raise
        errors = [f.exception() for f in futures]  # in job order: the first failure names it
        real = [e for e in errors if e is not None and not isinstance(e, _Stopped)]
        if real:
            raise real[0]

    def _guarded(self, job: Job) -> None:
        try:
            job(self)
        except BaseException:
            self._stop.set()
            raise
        finally:
            self._reports.put(-1)  # this job is over

    def _progress_from_queue(self, stop_at: int) -> None:
        """Pass the jobs' reports on to `progress` until `stop_at` jobs are over (0: drain)."""
        over = 0
        while over < stop_at or (stop_at == 0 and not self._reports.empty()):
            n = self._reports.get()
            if n < 0:
                over += 1
            elif self._progress:
                self._progress(n)

    # ------------------------------------------------------------ for the jobs

    @property
    def stopped(self) -> bool:
        """Another job failed: a job that reports no progress stops when this is set."""
        return self._stop.is_set()

    def report(self, n: int) -> None:
        """Count n bytes as processed (progress is reported from the calling thread of run)."""
        if self._stop.is_set():
            raise _Stopped
        self._reports.put(n)

    def write(self, offset: int, data: Buffer, kick_from: int | None = None) -> None:
        """Write `data` at `offset` of the region; with `kick_from`, start the writeback of the
        bytes from there to the end of this write."""
        view = memoryview(data)
        if self._fd is None:
            if self._out is not None:
                self._out.write(view)
            return
        at = self._base + offset
        with self._writing:
            while view:
                n = os.pwrite(self._fd, view, at)
                view, at = view[n:], at + n
        if kick_from is not None:
            start_writeback(self._fd, self._base + kick_from, offset + len(data) - kick_from)


def copy_clear(source: Source, base: int, pieces: Sequence[Piece], digest: ClearDigest,
               digest_at: Callable[[Piece], int | None], put: Put, s: Streamer) -> None:
    """The clear pieces' job: copy each (zero padding made, not read) to `put`, in order,
    hashing it into `digest` at the offset `digest_at` names (None: not covered)."""
    wb = Writeback()
    for piece in pieces:
        at_digest = digest_at(piece)
        if piece.kind == "zero":
            zeros = bytes(piece.size)
            if at_digest is not None:
                digest.update(at_digest, zeros)
            put(piece.dst, zeros, None)
            continue
        at = base + piece.src
        for done in range(0, piece.size, CHUNK):
            view = source.view(at + done, min(CHUNK, piece.size - done))
            source.read_ahead(at + done, at + piece.size, CHUNK)
            if at_digest is not None:
                digest.update(at_digest + done, view)
            put(piece.dst + done, view, wb)
            source.release(at + done, len(view))
            s.report(len(view))


class _Stopped(Exception):
    """Another job failed: this one stops early (its own result no longer matters)."""


class Writeback:
    """Tracks how much a job wrote since its last writeback kick (see `Streamer.write`)."""

    def __init__(self) -> None:
        self._since: int | None = None

    def next(self, offset: int, length: int) -> int | None:
        if self._since is None:
            self._since = offset
        if offset + length - self._since < Streamer.WRITEBACK:
            return None
        start, self._since = self._since, None
        return start


class Source:
    """The input file, read two ways: views of its memory map, or `pread` into a reused buffer.

    `pread` is for bytes that are checked afterwards (weights against their check_code, envelope
    segments against their tags): it costs no page-table work and leaves the bytes in a buffer
    that stays in the CPU cache for the hash and the cipher that follow (a third less CPU than
    faulting the map in). It reads the file by its path again, so a file swapped meanwhile could
    be read, but not undetected: its bytes would fail the check. Everything else is read from
    the map, whose pages are let go once used so they do not pile up in the resident set.
    """

    def __init__(self, mapped: memoryview, path: str | os.PathLike[str]) -> None:
        self._map = mapped.obj if isinstance(mapped.obj, mmap.mmap) else None
        self._started: dict[int, int] = {}  # read_ahead: where each run (by its end) began
        self._view = memoryview(mapped.obj) if self._map is not None else mapped
        self.fd: int | None = None
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size == len(self._view):
                self.fd = fd
                with contextlib.suppress(AttributeError, OSError):
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            else:
                os.close(fd)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self._view.release()

    def view(self, offset: int, length: int) -> memoryview:
        """Bytes of the map (unchecked bytes: what the map says is what gets used)."""
        return self._view[offset:offset + length]

    def checked(self, offset: int, length: int, buf: bytearray | None) -> memoryview:
        """Bytes the caller checks before trusting them, read into `buf` when possible."""
        if self.fd is None or buf is None:
            return self.view(offset, length)
        out = memoryview(buf)[:length]
        done = 0
        while done < length:
            n = os.preadv(self.fd, [out[done:]], offset + done)
            if n <= 0:
                raise Corrupt("the file got shorter while it was being read")
            done += n
        return out

    def read_ahead(self, pos: int, end: int, chunk: int) -> None:
        """At `pos`, a chunk boundary of a run of reads ending at `end`: keep the kernel reading
        `AHEAD` bytes in front of it, so that a cold file streams while the bytes are used. (The
        run's first call asks for the whole window, the others for one chunk at its far end.)"""
        if self._started.get(end) is None:
            self._started[end] = pos
            self.prefetch(pos, min(AHEAD, end - pos))
        else:
            far = pos + AHEAD - chunk
            self.prefetch(far, min(chunk, end - far))

    def prefetch(self, offset: int, length: int) -> None:
        """Ask the kernel to read these bytes now (a cold file then streams)."""
        if length <= 0:
            return
        if self.fd is not None:
            with contextlib.suppress(AttributeError, OSError):
                os.posix_fadvise(self.fd, offset, length, os.POSIX_FADV_WILLNEED)
        else:
            self._advise(mmap.MADV_WILLNEED, offset, length)

    def release(self, offset: int, length: int) -> None:
        """Done with these bytes of the map: drop them from this process's mapping (they stay in
        the page cache)."""
        self._advise(mmap.MADV_DONTNEED, offset, length)

    def _advise(self, advice: int, offset: int, length: int) -> None:
        if self._map is None or length <= 0:
            return
        start = offset - offset % mmap.PAGESIZE
        with contextlib.suppress(OSError, ValueError):  # advice only
            self._map.madvise(advice, start, offset + length - start)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
