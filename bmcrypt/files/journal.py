"""Crash-safe in-place patches: rewrite a few hundred bytes at many offsets of a multi-GB file
without copying it (what ``rekey`` needs), through a roll-forward journal.

The journal ``.<name>.bmcrypt-journal`` sits next to the file (little-endian)::

    offset  size  field
    0       8     magic b"BMCJRNL" + format version 0x01
    8       8     u64 size of the file when the journal was written
    16      4     u32 number of patches N
    20      …     N × { u64 offset | u32 length L | L bytes old | L bytes new }
                  (offsets ascending, regions non-overlapping, inside the file)
    end-32  32    SHA-256 of everything before it

Protocol of `patch_in_place`: check that every region holds its old bytes (or already its new
ones) → write the journal to a temp file, fsync, rename it into place, fsync the directory →
pwrite the new bytes → fsync the file → delete the journal, fsync the directory.

So a journal that exists is complete: it only gets its name after it is on disk. Recovery rolls it
forward — writing the new bytes again is idempotent, so a crash during recovery is recovered the
same way — and the file ends up all-new. A crash before the rename leaves only a temp file and an
all-old file. A journal that fails its checksum cannot have come from a crash (media damage, a
foreign write); it is discarded, as there is nothing trustworthy to roll forward.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from bmcrypt.errors import Corrupt, Truncated

from .atomic import atomic_write
from .locking import file_lock
from .opening import open_input, read_derived, refuse_link, stat_input
from .paths import JOURNAL_SUFFIX, fsync_dir, real_path, sidecar

Patch = tuple[int, bytes, bytes]
"""(offset, old bytes, new bytes); old and new have the same, non-zero length."""

RecoveryOutcome = Literal["none", "rolled-forward", "discarded"]

_MAGIC = b"BMCJRNL\x01"
_HEADER = struct.Struct("<8sQI")
_ENTRY = struct.Struct("<QI")
_CHECK_BYTES = 32
#: Far above any real journal (a few hundred bytes per weight region): a bigger one is not ours.
_MAX_JOURNAL_BYTES = 64 << 20


def journal_path(path: str | os.PathLike[str]) -> Path:
    """The journal of `path`: ``.<name>.bmcrypt-journal`` next to the real (symlink-free) file."""
    return sidecar(real_path(path), JOURNAL_SUFFIX)


def _stale_hint(journal: Path) -> str:
    return (f"the file changed after its patch journal {journal.name} was written; if the file is "
            f"good, delete the journal, otherwise restore the backup")


def _normalise(patches: Sequence[Patch], size: int, path: Path) -> list[Patch]:
    """The patches sorted by offset; ValueError if malformed, Truncated if one ends past EOF."""
    ordered = sorted((int(o), bytes(old), bytes(new)) for o, old, new in patches)
    end_of_previous = 0
    for offset, old, new in ordered:
        if offset < 0 or not old or len(old) != len(new):
            raise ValueError(f"bad patch at offset {offset}: need offset >= 0 and equal, "
                             f"non-empty old/new ({len(old)} vs {len(new)} bytes)")
        if offset < end_of_previous:
            raise ValueError(f"patches overlap at offset {offset}")
        end_of_previous = offset + len(old)
        if end_of_previous > size:
            raise Truncated(f"{path} is {size} bytes, but a patch ends at byte {end_of_previous}")
    return ordered


def _pending(fd: int, patches: list[Patch], path: Path, hint: str | None = None) -> list[Patch]:
    """The patches whose region still holds the old bytes; Corrupt if one holds neither."""
    todo = []
    for offset, old, new in patches:
        current = os.pread(fd, len(old), offset)
        if current == new:
            continue
        if current != old:
            raise Corrupt(f"{path}: the {len(old)} bytes at offset {offset} are neither the "
                          f"expected old nor the new ones", hint=hint)
        todo.append((offset, old, new))
    return todo


def _apply(fd: int, patches: list[Patch]) -> None:
    for offset, _old, new in patches:
        view = memoryview(new)
        while view:
            view = view[os.pwrite(fd, view, offset + len(new) - len(view)):]
    os.fsync(fd)


def _encode(size: int, patches: list[Patch]) -> bytes:
    parts = [_HEADER.pack(_MAGIC, size, len(patches))]
    for offset, old, new in patches:
        parts += [_ENTRY.pack(offset, len(old)), old, new]
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def _decode(blob: bytes, path: Path) -> tuple[int, list[Patch]] | None:
    """(file size, patches) of a journal; None unless it is complete, intact and well-formed."""
    body, check = blob[:-_CHECK_BYTES], blob[-_CHECK_BYTES:]
    if len(body) < _HEADER.size or hashlib.sha256(body).digest() != check:
        return None
    magic, size, count = _HEADER.unpack_from(body)
    if magic != _MAGIC:
        return None
    patches, pos = [], _HEADER.size
    for _ in range(count):  # every entry takes >= 12 bytes, so a huge count fails fast
        if pos + _ENTRY.size > len(body):
            return None
        offset, length = _ENTRY.unpack_from(body, pos)
        pos += _ENTRY.size
        if pos + 2 * length > len(body):
            return None
        patches.append((offset, body[pos:pos + length], body[pos + length:pos + 2 * length]))
        pos += 2 * length
    if pos != len(body):
        return None
    try:
        return size, _normalise(patches, size, path)
    except (ValueError, Truncated):
        return None


def discard_journal(path: str | os.PathLike[str]) -> bool:
    """Delete the journal of `path` if there is one (durably); True if there was."""
    journal = journal_path(path)
    try:
        os.unlink(journal)
    except FileNotFoundError:
        return False
    fsync_dir(journal.parent)
    return True


def patch_in_place(path: str | os.PathLike[str], patches: Sequence[Patch]) -> int:
    """Overwrite byte regions of `path` in place, all or nothing across crashes.

    Each patch is (offset, old, new): the region must hold `old` (patched) or already `new`
    (skipped, so a rerun is harmless); anything else raises Corrupt before a byte is written.
    Takes the file's lock and recovers an earlier journal first. Returns how many regions changed.
    """
    target = real_path(path)
    stat_input(target)
    with file_lock(target):
        recover_journal(target)
        fd = open_input(target, writable=True)
        try:
            size = os.fstat(fd).st_size
            todo = _pending(fd, _normalise(patches, size, target), target)
            if not todo:
                return 0
            with atomic_write(journal_path(target), mode=0o600, through_link=False) as journal:
                journal.write(_encode(size, todo))
            _apply(fd, todo)
        finally:
            os.close(fd)
        discard_journal(target)
    return len(todo)


def recover_journal(path: str | os.PathLike[str]) -> RecoveryOutcome:
    """Finish or discard an interrupted `patch_in_place` on `path`; call before touching the file.

    Returns "none" (no journal), "rolled-forward" (the patches were completed, the file is all-new)
    or "discarded" (the journal was damaged, or its file is gone; nothing was written). Raises
    Corrupt, keeping the journal, if the file no longer matches it (other size, foreign bytes).
    """
    target = real_path(path)
    journal = journal_path(target)
    if refuse_link(journal, "the patch journal") is None:
        return "none"
    with file_lock(target):
        blob = read_derived(journal, "the patch journal", _MAX_JOURNAL_BYTES)
        if blob is None:  # another process recovered it while we waited for the lock
            return "none"
        decoded = _decode(blob, target) if len(blob) <= _MAX_JOURNAL_BYTES else None
        if decoded is None or not target.is_file():
            discard_journal(target)
            return "discarded"
        size, patches = decoded
        fd = open_input(target, writable=True)
        try:
            if os.fstat(fd).st_size != size:
                raise Corrupt(f"{target} is {os.fstat(fd).st_size} bytes, its patch journal says "
                              f"{size}", hint=_stale_hint(journal))
            _apply(fd, _pending(fd, patches, target, _stale_hint(journal)))
        finally:
            os.close(fd)
        discard_journal(target)
    return "rolled-forward"
