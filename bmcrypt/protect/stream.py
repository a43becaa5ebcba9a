"""The streaming machinery `seal` and `unseal` share: jobs on threads, in-place writes, the input.

- `Streamer` runs one job per envelope (and one for the clear bytes) on as many threads as there
  are cores, writes each result where it belongs with `pwrite`, and reports progress from the
  calling thread; the first failure stops every job.
- `copy_clear` is the clear bytes' job: copied in order, hashed into the clear digest.
- `Writeback` hands what was written to the kernel's writeback every few MiB, so the final
  fsync has little left to do (buffered writes only).
- `_Coalescer` gathers each thread's consecutive writes into whole aligned blocks that go to the
  disk directly (`O_DIRECT`), past the page cache.
- `Source` is the mapped input with read-ahead advice and per-chunk bounds checks.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import queue
import stat
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from bmcrypt.crypto.envelope_header import Buffer
from bmcrypt.errors import Corrupt
from bmcrypt.files.atomic import start_writeback
from bmcrypt.files.paths import reopen

if TYPE_CHECKING:
    from bmcrypt.protect.manifest import ClearDigest
    from bmcrypt.protect.region_plan import Piece

CHUNK = 8 << 20  # bytes per step: large enough for throughput, small for memory
AHEAD = 32 << 20  # bytes of the input the kernel is kept reading ahead of each job
#: Direct writes are whole blocks of this size at offsets and addresses that are multiples of it.
#: A memory page at least, so that no page of the file is written both ways.
ALIGN = max(4096, mmap.PAGESIZE)
STAGE = 8 << 20  # bytes each thread gathers before a direct write (a multiple of ALIGN)

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

    Where the output is a regular file that accepts `O_DIRECT` (`direct`), each thread's
    consecutive writes are gathered into whole aligned blocks written straight to the disk, past
    the page cache (`_Coalescer`); only the partial blocks at the two ends of each run of writes
    go through the page cache. A file just written is needed on the disk, not in memory: the
    copy into the page cache was a quarter of encrypt's CPU time, every fresh page of it is
    costly on a virtual machine, and a large model written through it crowds out everything
    else on a small device. The final fsync still makes it all durable. Otherwise written
    ranges are handed to the kernel's writeback early (`start_writeback`), so that the disk
    works while the data is produced and the final fsync has little left to do.
    """

    WRITEBACK = 32 << 20  # bytes a job writes between two writeback kicks

    def __init__(self, out: BinaryIO | None, out_base: int, progress: Progress | None, *,
                 direct: bool = True) -> None:
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
        self._want_direct = direct
        self._direct: int | None = None  # the output opened again with O_DIRECT, during run
        self._direct_refused = False  # a direct write failed with EINVAL: no more of them
        self._io: ThreadPoolExecutor | None = None  # the thread that makes the direct writes
        self._local = threading.local()  # each thread's _Coalescer
        self._coalescers: list[_Coalescer] = []

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
        if self._fd is not None and self._want_direct:
            self._direct = _open_direct(self._fd)
        if self._direct is not None:
            self._io = ThreadPoolExecutor(1, thread_name_prefix="bmcrypt-io")
        try:
            if workers <= 1:
                for job in jobs:
                    self._guarded(job)
                    self._progress_from_queue(stop_at=0)
                for c in self._coalescers:
                    c.settle()
                return
            with ThreadPoolExecutor(workers, thread_name_prefix="bmcrypt") as pool:
                futures = [pool.submit(self._guarded, job) for job in jobs]
                try:
                    self._progress_from_queue(stop_at=len(jobs))
                except BaseException:  # e.g. KeyboardInterrupt: stop the workers before leaving
                    self._stop.set()
                    raise
            if not self._stop.is_set():
                for c in self._coalescers:
                    c.settle()  # every direct write is done (a failed one fails the run)
        finally:
            self._end_direct()
        errors = [f.exception() for f in futures]  # in job order: the first failure names it
        real = [e for e in errors if e is not None and not isinstance(e, _Stopped)]
        if real:
            raise real[0]

    def _end_direct(self) -> None:
        for c in self._coalescers:
            c.close()
        self._coalescers.clear()
        self._local = threading.local()
        if self._io is not None:
            self._io.shutdown(wait=True)
            self._io = None
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None

    def _guarded(self, job: Job) -> None:
        try:
            job(self)
            if (coalescer := getattr(self._local, "coalescer", None)) is not None:
                coalescer.finish()  # the job's last run of writes
        except BaseException:
            self._stop.set()
            if (coalescer := getattr(self._local, "coalescer", None)) is not None:
                coalescer.drop()  # the output is thrown away
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
        if self._direct is not None:
            self._coalescer().add(at, view)
            return
        self.write_buffered(at, view)
        if kick_from is not None:
            start_writeback(self._fd, self._base + kick_from, offset + len(data) - kick_from)

    def _coalescer(self) -> _Coalescer:
        c: _Coalescer | None = getattr(self._local, "coalescer", None)
        if c is None:
            c = self._local.coalescer = _Coalescer(self)
            with self._writing:
                self._coalescers.append(c)
        return c

    def write_buffered(self, at: int, view: memoryview) -> None:
        """Write through the page cache at file offset `at` (one writer at a time: a waiting
        thread sleeps instead of spinning on the file's lock in the kernel)."""
        assert self._fd is not None
        with self._writing:
            while view:
                n = os.pwrite(self._fd, view, at)
                view, at = view[n:], at + n

    def write_direct_later(self, at: int, buf: mmap.mmap, start: int, end: int) -> Future[None]:
        """Write `buf[start:end]` (whole aligned blocks) at `at`, on the I/O thread."""
        assert self._io is not None

        def write() -> None:
            with memoryview(buf) as view:
                self.write_direct(at, view[start:end])
        return self._io.submit(write)

    def write_direct(self, at: int, view: memoryview) -> None:
        """Write whole aligned blocks past the page cache; through it if the file refuses."""
        while view and self._direct is not None and not self._direct_refused:
            try:
                n = os.pwrite(self._direct, view, at)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                n = 0  # this file system wants another alignment: buffered from here on
                self._direct_refused = True
            view, at = view[n:], at + n
            if n % ALIGN:  # a short write that is no longer aligned
                break
        if view:
            self.write_buffered(at, view)


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


class _Coalescer:
    """One thread's run of consecutive writes, gathered in aligned buffers of `STAGE` bytes.

    Buffer index i holds file offset `base + i`; `base` is a multiple of ALIGN, so every whole
    block of a buffer is aligned in memory and in the file, and is written directly. The bytes
    before `lo` belong to someone else's writes: a partial block at either end of a run goes
    through the page cache, so no block is ever written both ways. There are two buffers: while
    the streamer's I/O thread writes one, the job fills the other (it waits only if the disk is
    slower than the job); a failed write is raised by the next wait."""

    def __init__(self, streamer: Streamer) -> None:
        self._s = streamer
        self._bufs = [mmap.mmap(-1, STAGE), mmap.mmap(-1, STAGE)]
        self._writes: list[Future[None] | None] = [None, None]
        self._cur = 0
        self._base: int | None = None
        self._lo = self._n = 0

    def add(self, at: int, view: memoryview) -> None:
        if self._base is not None and at != self._base + self._n:
            self.finish()
        if self._base is None:
            self._base = at - at % ALIGN
            self._lo = self._n = at - self._base
        buf = self._bufs[self._cur]
        while view:
            k = min(len(view), STAGE - self._n)
            buf[self._n:self._n + k] = view[:k]
            self._n += k
            view = view[k:]
            if self._n == STAGE:
                self._flush(last=False)
                buf = self._bufs[self._cur]

    def finish(self) -> None:
        """Write what is gathered: the run ends here."""
        if self._base is not None:
            self._flush(last=True)

    def settle(self) -> None:
        """Wait for this thread's writes; raise the first that failed."""
        for i in (0, 1):
            self._wait(i)

    def drop(self) -> None:
        """The output is thrown away: forget what is gathered, let the writes end."""
        self._base = None
        with contextlib.suppress(Exception):
            self.settle()

    def close(self) -> None:
        self.drop()
        for buf in self._bufs:
            # A failed write's traceback may still hold a view of it: then it is unmapped when
            # that goes, not now.
            with contextlib.suppress(BufferError):
                buf.close()

    def _wait(self, i: int) -> None:
        write, self._writes[i] = self._writes[i], None
        if write is not None:
            write.result()

    def _flush(self, last: bool) -> None:
        assert self._base is not None
        lo, n, base, cur = self._lo, self._n, self._base, self._cur
        whole_from = -(-lo // ALIGN) * ALIGN
        whole_to = n - n % ALIGN  # all of it when the buffer is full
        with memoryview(self._bufs[cur]) as buf:
            if whole_from >= whole_to:  # not one whole block
                self._s.write_buffered(base + lo, buf[lo:n])
            else:
                if lo < whole_from:
                    self._s.write_buffered(base + lo, buf[lo:whole_from])
                if whole_to < n:
                    self._s.write_buffered(base + whole_to, buf[whole_to:n])
        if whole_from < whole_to:
            self._writes[cur] = self._s.write_direct_later(base + whole_from,
                                                           self._bufs[cur], whole_from, whole_to)
        self._cur = cur ^ 1
        self._wait(self._cur)  # the next buffer must be written out before it is filled again
        if last:
            self._base = None
        else:
            self._base, self._lo, self._n = base + n, 0, 0


def _open_direct(fd: int) -> int | None:
    """The regular file open at `fd`, opened again for writing with O_DIRECT (a descriptor of
    its own: the flag must not reach `fd`'s buffered writes); None where that is refused."""
    flag = getattr(os, "O_DIRECT", 0)
    if not flag:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return reopen(fd, os.O_WRONLY | flag)
    except OSError:
        return None


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
