"""Streaming SHA-256 and the hashing copy that backups and restores are built on.

Memory stays bounded by a few reusable 1 MiB buffers. A read → hash → write loop keeps the
property that matters: the bytes we hash are exactly the bytes we write, with no second read of
the source that could see different data. What makes it fast (the in-place rows of
docs/benchmarks.md):

- 1 MiB chunks stay in the CPU cache between the read that fills them and the hash and the write
  that use them; SHA-256 over 8 MiB chunks ran at about half the speed on the 2-core benchmark
  machine, reading memory twice;
- the writes run on a second thread, overlapping the read and the hash of the next chunks, and
  hand what they wrote to the kernel's writeback early (`start_writeback`), so the disk writes
  while we copy and the fsync that follows has little left to do;
- reads ask the kernel to read ahead (POSIX_FADV_SEQUENTIAL, and WILLNEED 8 MiB in front), so
  the disk works while we hash.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import mmap
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from .atomic import start_writeback
from .opening import open_input_file

CHUNK_SIZE = 1 << 20
IN_FLIGHT = 4  # chunks between the reading and the writing (or hashing) thread
WRITEBACK = 32 << 20  # bytes written between two writeback kicks
READ_AHEAD = 8 << 20  # bytes the kernel is asked to read ahead of what is being hashed
DIRECT_CHUNK = 8 << 20  # bytes per O_DIRECT read of a file checked from the disk
KERNEL_CHUNK = 8 << 20  # bytes per copy_file_range call (progress and writeback steps)

Progress = Callable[[int], None]
"""Called with the number of bytes just processed (an increment, as everywhere in bmcrypt)."""


def _readinto(src: BinaryIO, view: memoryview) -> int:
    n = src.readinto(view)  # type: ignore[attr-defined]
    return n or 0


def hash_stream(src: BinaryIO, progress: Progress | None = None) -> tuple[str, int]:
    """Hash `src` from its current position to EOF; return (hex digest, bytes read).

    `progress` receives the size of every chunk once it is hashed.
    """
    digest = hashlib.sha256()
    view = memoryview(bytearray(CHUNK_SIZE))
    done = 0
    while n := _readinto(src, view):
        digest.update(view[:n])
        done += n
        if progress:
            progress(n)
    return digest.hexdigest(), done


class _Writer:
    """Writes chunks to `dst` in order on its own thread, starting their writeback as it goes;
    a hole is skipped over (a seek), so it stays a hole in `dst`."""

    def __init__(self, dst: BinaryIO) -> None:
        self._dst = dst
        self._fd: int | None = None
        with contextlib.suppress(AttributeError, OSError, ValueError):
            fd = dst.fileno()
            self._kicked = self._at = dst.tell()
            self._fd = fd
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bmcrypt-copy")

    def submit(self, chunk: memoryview) -> Future[None]:
        return self._pool.submit(self._write, chunk)

    def skip(self, length: int) -> Future[None]:
        return self._pool.submit(self._skip, length)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _skip(self, length: int) -> None:
        self._dst.seek(length, os.SEEK_CUR)
        if self._fd is not None:
            self._at += length
            self._kicked = self._at

    def _write(self, chunk: memoryview) -> None:
        while chunk:  # raw writes may be partial
            written = self._dst.write(chunk)
            if not written:
                raise OSError(f"short write to {getattr(self._dst, 'name', 'file')}")
            chunk = chunk[written:]
            if self._fd is not None:
                self._at += written
        if self._fd is not None and self._at - self._kicked >= WRITEBACK:
            start_writeback(self._fd, self._kicked, self._at - self._kicked)
            self._kicked = self._at


def _segments(fd: int, start: int, end: int) -> Iterator[tuple[bool, int, int]]:
    """(is data, offset, length) runs of the file from `start` to `end`, holes found with
    SEEK_DATA/SEEK_HOLE; all data where the filesystem cannot say."""
    pos = start
    while pos < end:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole from here to the end
                yield False, pos, end - pos
                return
            yield True, pos, end - pos  # no SEEK_DATA here: copy it all
            return
        data = min(data, end)
        if data > pos:
            yield False, pos, data - pos
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        if hole > data:
            yield True, data, hole - data
        pos = hole


def copy_hashing(src: BinaryIO, dst: BinaryIO,
                 progress: Progress | None = None) -> tuple[str, int]:
    """Copy `src` to `dst` (both unbuffered) to EOF, hashing what is written.

    Holes of a sparse `src` (SEEK_DATA/SEEK_HOLE) are hashed as the zeros they read as but not
    written: `dst` gets the same holes, so a sparse model's backup stays sparse. Returns (hex
    digest, bytes copied); `progress` as for `hash_stream`.
    """
    digest = hashlib.sha256()
    writer = _Writer(dst)
    done = 0
    try:
        try:
            src_fd, at = src.fileno(), src.tell()
            end = os.fstat(src_fd).st_size
        except (AttributeError, OSError, ValueError):  # not a file: copy what it reads
            done = _pump(src, writer, digest, progress, -1, 0, None)
        else:
            with contextlib.suppress(OSError):  # a larger readahead
                os.posix_fadvise(src_fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            for is_data, offset, length in list(_segments(src_fd, at, end)):
                if is_data:
                    src.seek(offset)  # finding the segments moved the file offset
                    n = _pump(src, writer, digest, progress, src_fd, offset, length)
                else:
                    _hash_zeros(digest, length, progress)
                    writer.skip(length).result()
                    n = length
                done += n
                if n < length:  # it shrank under us: the caller's size check will say so
                    break
            else:  # and whatever was appended meanwhile, which the caller's check catches too
                src.seek(at + done)
                done += _pump(src, writer, digest, progress, src_fd, at + done, None)
    finally:
        writer.close()
    dst.truncate()  # after a trailing hole the size is the position, not the last write
    return digest.hexdigest(), done


def copy_in_kernel(src: BinaryIO, dst: BinaryIO,
                   progress: Progress | None = None) -> int | None:
    """Copy `src` to `dst` (both files, at offset 0) inside the kernel, without hashing.

    For a caller that already knows the digest of `src` and verifies `dst` against it from the
    disk afterwards (an in-place encrypt hashed the model while it sealed it): one pass of
    `copy_file_range` costs what `cp` costs, where read → hash → write costs a SHA-256 pass
    and two copies through user space more (issue 17). Returns the bytes copied, or None
    (nothing written) where the kernel cannot copy these files or `src` has holes (their copy
    keeps them, see `copy_hashing`).
    """
    try:
        src_fd, dst_fd = src.fileno(), dst.fileno()
        st = os.fstat(src_fd)
    except (AttributeError, OSError, ValueError):
        return None
    if st.st_blocks * 512 < st.st_size:  # sparse (or compressed): keep the holes
        return None
    done = kicked = 0
    while True:
        try:
            n = os.copy_file_range(src_fd, dst_fd, KERNEL_CHUNK, done, done)
        except OSError as exc:
            if done == 0 and exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP,
                                           errno.EINVAL, errno.EBADF):
                return None  # this kernel or filesystem cannot: the caller copies itself
            raise
        if not n:
            break
        done += n
        if done - kicked >= WRITEBACK:
            start_writeback(dst_fd, kicked, done - kicked)
            kicked = done
        if progress:
            progress(n)
    return done


def _hash_zeros(digest: Any, length: int, progress: Progress | None) -> None:
    zeros = memoryview(bytes(min(CHUNK_SIZE, length)))
    while length:
        n = min(length, len(zeros))
        digest.update(zeros[:n])
        length -= n
        if progress:
            progress(n)


def _pump(src: BinaryIO, writer: _Writer, digest: Any, progress: Progress | None,
          src_fd: int, at: int, limit: int | None) -> int:
    """Read `limit` bytes (None: to EOF) from `src` at its position, hash them, hand them to
    `writer`; returns how many there were. Up to IN_FLIGHT chunks are being written at once."""
    free = [memoryview(bytearray(CHUNK_SIZE)) for _ in range(IN_FLIGHT)]
    pending: deque[tuple[Future[None], memoryview]] = deque()
    done = 0
    while limit is None or done < limit:
        if free:
            view = free.pop()
        else:  # the oldest write must finish before its buffer is read into again
            written, view = pending.popleft()
            written.result()
        if src_fd >= 0 and done % READ_AHEAD < CHUNK_SIZE:  # the disk reads while we hash
            _will_need(src_fd, at + done + READ_AHEAD, READ_AHEAD)
        want = view if limit is None else view[:min(CHUNK_SIZE, limit - done)]
        n = _readinto(src, want)
        if not n:
            break
        chunk = view[:n]
        digest.update(chunk)
        pending.append((writer.submit(chunk), view))
        done += n
        if progress:
            progress(n)
    while pending:
        pending.popleft()[0].result()
    return done


def hash_from_disk(fd: int, progress: Progress | None = None,
                   stop: threading.Event | None = None) -> tuple[str, int]:
    """Re-read a just-written file from the device (not the page cache) and hash it.

    The file is fsynced, then read with O_DIRECT: straight from the disk into two reused
    buffers, one read while the other is hashed. That checks what reached the disk without
    evicting the file's pages first and allocating a model's worth of page cache again to read
    it back (which cost several seconds of system time per GiB on the benchmark's virtual
    machine, issue 17). Where O_DIRECT is refused (some filesystems) the pages are evicted with
    POSIX_FADV_DONTNEED and read through the cache instead; where fadvise is missing too this
    degrades to a cached read. `stop`, once set, ends the reading early (the result is then
    of no use: its caller gave up).
    """
    os.fsync(fd)
    direct = _direct_reads(fd)
    if direct is not None:
        with direct:
            return _hash_direct(fd, progress, stop)
    with contextlib.suppress(AttributeError, OSError):  # without it the re-read may be cached
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    digest = hashlib.sha256()
    view = memoryview(bytearray(CHUNK_SIZE))
    done = 0
    while True:
        if done % READ_AHEAD < CHUNK_SIZE:  # keep the disk busy while we hash
            _will_need(fd, done + READ_AHEAD, READ_AHEAD)
        n = os.preadv(fd, [view], done)  # positional reads: the fd's offset is left alone
        if not n or (stop is not None and stop.is_set()):
            break
        digest.update(view[:n])
        done += n
        if progress:
            progress(n)
    return digest.hexdigest(), done


@contextlib.contextmanager
def _o_direct(fd: int, flags: int) -> Iterator[None]:
    try:
        yield
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


def _direct_reads(fd: int) -> contextlib.AbstractContextManager[None] | None:
    """Switch `fd` to O_DIRECT (Linux allows it with F_SETFL) for the ``with`` block, or None
    where this platform or filesystem refuses it (the first read would fail with EINVAL)."""
    direct = getattr(os, "O_DIRECT", 0)
    if not direct:
        return None
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | direct)
        probe = mmap.mmap(-1, mmap.PAGESIZE)
        try:
            os.preadv(fd, [memoryview(probe)], 0)
        finally:
            probe.close()
    except OSError:
        with contextlib.suppress(OSError, UnboundLocalError):
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)
        return None
    return _o_direct(fd, flags)


def _hash_direct(fd: int, progress: Progress | None,
                 stop: threading.Event | None) -> tuple[str, int]:
    """Hash the file through O_DIRECT reads, reading the next chunk while hashing this one.
    The buffers are anonymous maps: page-aligned, as O_DIRECT needs."""
    digest = hashlib.sha256()
    maps = [mmap.mmap(-1, DIRECT_CHUNK) for _ in range(2)]
    views = [memoryview(m) for m in maps]

    def read(i: int, at: int) -> int:
        n = os.preadv(fd, [views[i]], at)
        while 0 < n < DIRECT_CHUNK and n % mmap.PAGESIZE == 0:  # a short read mid-file
            more = os.preadv(fd, [views[i][n:]], at + n)
            if not more:
                break
            n += more
        return n

    done = 0
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="bmcrypt-verify") as pool:
            pending = pool.submit(read, 0, 0)
            i = 0
            while (n := pending.result()) and not (stop is not None and stop.is_set()):
                pending = pool.submit(read, 1 - i, done + n)
                digest.update(views[i][:n])
                done += n
                if progress:
                    progress(n)
                i = 1 - i
    finally:
        for v in views:
            v.release()
        for m in maps:
            m.close()
    return digest.hexdigest(), done


def _will_need(fd: int, offset: int, length: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_WILLNEED)


def sha256_file(path: str | os.PathLike[str], progress: Progress | None = None) -> str:
    """The hex SHA-256 of a file's content, streamed in 8 MiB chunks.

    `progress(bytes_done)` is called after every chunk. Raises InputFileError if `path` is missing,
    a directory or unreadable.
    """
    with open_input_file(path) as src:
        return hash_stream(src, progress)[0]
