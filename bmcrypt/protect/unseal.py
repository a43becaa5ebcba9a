"""Authenticate every byte of an opened bmcrypt file, and optionally write it back as plain.

Verification and decryption are one pass over the binary region (docs/FORMAT.md §6 steps 5–6):
each weight envelope is authenticated segment by segment and its plaintext hashed against the
check_code; the clear runs between envelopes are hashed into the manifest's digest. When an
output stream is given, the plain model is written as it goes; the caller commits it only if
this returns (see files.atomic_write). `unseal_to_memory` decrypts into one buffer instead.

Like sealing (seal.py), the envelopes are opened in parallel, one job per envelope, each segment
read once into a small buffer (its tag makes reading it by `pread` safe), decrypted, and hashed
while the plaintext is still in the CPU cache; into memory, segments are decrypted straight to
their place in the buffer. The native core opens them when `bmcrypt._native` is installed,
pycryptodome otherwise (`crypto.segment_cipher`).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from typing import BinaryIO

from bmcrypt.bmodel.header import build_header
from bmcrypt.bmodel.writer import pack_flatbuffer
from bmcrypt.crypto import MAX_HEADER_LEN, Kind, parse_header, wipe
from bmcrypt.crypto.envelope_header import TAG_LEN, Buffer, Header
from bmcrypt.crypto.segment_cipher import Engine, engine_for
from bmcrypt.errors import Corrupt, Tampered
from bmcrypt.files.hashing import hash_from_disk
from bmcrypt.files.paths import reopen
from bmcrypt.protect.manifest import ClearDigest
from bmcrypt.protect.opened import Opened
from bmcrypt.protect.region_plan import Piece, Plan, plan_open
from bmcrypt.protect.restore import ENVELOPE, ClearPlacer, RestoreRecord, check_extents
from bmcrypt.protect.stream import CHUNK, Job, Progress, Source, Streamer, Writeback, copy_clear


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a full verification (raised errors say what failed; this says what held)."""

    key_id: str
    weight_regions: int
    weight_bytes: int
    encrypted_nets: tuple[str, ...]
    clear_bytes: int
    clear_covered: bool  # False for files written by `model_tool --encrypt -lib libbmcrypt.so`
    #: Version 2: the SHA-256 of the original plain file, which decrypting gives back byte for
    #: byte (checked when it is written); None for version 1 (an equivalent file).
    original_sha256: str | None = None


def unseal_file(opened: Opened, out: BinaryIO | None = None,
                progress: Progress | None = None) -> VerifyReport:
    """Verify `opened` completely; with `out`, also write the plain bmodel to it: the original
    file byte for byte when the file has a restore record (then checked against its SHA-256),
    else an equivalent one."""
    model = opened.unpack()
    plan = plan_open(model, opened.binary_size)
    record = opened.restore
    placer = _restore_plan(plan, record) if record is not None else None
    if out is not None:
        if record is not None:
            out.write(record.header)
            out.write(record.flatbuffer)
        else:
            flatbuffer = pack_flatbuffer(model)
            out.write(build_header(len(flatbuffer), plan.size))
            out.write(flatbuffer)
    streamer = Streamer(out, out.tell() if out is not None else 0, progress)
    clear_len, clear_sha = _open_region(opened, plan, streamer, None, placer)
    _check_digest(opened, clear_len, clear_sha)
    if out is not None:
        out.seek(0, io.SEEK_END)  # the pieces were written at their offsets, not in order
        if record is not None:
            _check_rebuilt(_hash_written(out), record)
    manifest = opened.manifest
    sealed = plan.seal_pieces()
    return VerifyReport(
        key_id=opened.keys.key_id.hex(),
        weight_regions=len(sealed),
        weight_bytes=sum(p.plain_size for p in sealed),
        encrypted_nets=tuple(sorted({n for p in sealed for n in p.nets})),
        clear_bytes=clear_len,
        clear_covered=manifest is not None,
        original_sha256=record.sha256.hex() if record is not None else None,
    )


def unseal_to_memory(opened: Opened) -> bytearray:
    """The plain bmodel of `opened` in one buffer, fully authenticated (or an exception).

    Weights are decrypted straight into their place in the buffer (in parallel, envelope by
    envelope); no other full-size copy is made.
    """
    model = opened.unpack()
    plan = plan_open(model, opened.binary_size)
    record = opened.restore
    placer = _restore_plan(plan, record) if record is not None else None
    if record is not None:
        head = record.header + record.flatbuffer
        size = record.length
    else:
        flatbuffer = pack_flatbuffer(model)
        head = build_header(len(flatbuffer), plan.size) + flatbuffer
        size = len(head) + plan.size
    out = bytearray(size)
    out[:len(head)] = head
    try:
        with memoryview(out) as whole, whole[len(head):] as view:
            _check_digest(opened, *_open_region(opened, plan, Streamer(None, 0, None), view,
                                                placer))
        if record is not None:
            _check_rebuilt((len(out), hashlib.sha256(out).digest()), record)
    except BaseException:
        wipe(out)
        raise
    return out


def _restore_plan(plan: Plan, record: RestoreRecord) -> ClearPlacer:
    """Point the opening plan at the original's places (FORMAT.md §8.4), after checking the
    extents against the sealed layout: envelopes go to their extent's offset, clear pieces keep
    their sealed offset (the placer maps those), padding goes nowhere."""
    clear = [(p.src, p.size) for p in plan.pieces if p.kind == "clear" and p.size]
    envelopes = {p.src: p.plain_size for p in plan.pieces if p.kind == "seal"}
    check_extents(record, clear, envelopes)
    at = {e.new_off: e.orig_off for e in record.extents if e.source == ENVELOPE}
    plan.pieces = [p for p in plan.pieces if p.kind != "zero"]
    for p in plan.pieces:
        p.dst = at[p.src] if p.kind == "seal" else p.src
    plan.size = record.body_len
    return ClearPlacer(record)


def _hash_written(out: BinaryIO) -> tuple[int, bytes]:
    """(length, SHA-256) of what was written to `out`, read back from the file."""
    out.flush()
    try:
        fd = out.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        out.seek(0)
        data = out.read()
        out.seek(0, io.SEEK_END)
        return len(data), hashlib.sha256(data).digest()
    # The stream may be write-only: read the same file through a descriptor of its own, from
    # the disk (most of it was written there directly, past the page cache).
    rfd = reopen(fd, os.O_RDONLY)
    try:
        digest, size = hash_from_disk(rfd)
    finally:
        os.close(rfd)
    return size, bytes.fromhex(digest)


def _check_rebuilt(result: tuple[int, bytes], record: RestoreRecord) -> None:
    if result != (record.length, record.sha256):
        raise Tampered("the rebuilt file does not match the original's SHA-256 "
                       "(its restore record was changed)")


def _check_digest(opened: Opened, clear_len: int, clear_sha: bytes) -> None:
    manifest = opened.manifest
    if manifest is not None and (manifest.clear_len, manifest.clear_digest) != (clear_len,
                                                                                 clear_sha):
        raise Tampered("the clear regions (commands, kernel module, gaps) were changed after "
                       "encryption")


# ---------------------------------------------------------------- the parallel pass


class _Plain:
    """Where plaintext goes: `memory` (a view of the plain binary region), else through the
    streamer (a file, or nowhere when only verifying). With a `placer` (a restore record),
    clear bytes go to the original's places instead of the plan's."""

    def __init__(self, streamer: Streamer, memory: memoryview | None,
                 placer: ClearPlacer | None = None) -> None:
        self.streamer, self.memory, self.placer = streamer, memory, placer

    def put_clear(self, offset: int, data: Buffer, writeback: Writeback | None = None) -> None:
        """Clear bytes of the sealed region at `offset` (its own offset, with a placer)."""
        if self.placer is None:
            self.put(offset, data, writeback)
            return
        view = memoryview(data)
        for body_off, at, n in self.placer.place(offset, len(view)):
            self.put(body_off, view[at:at + n], writeback)

    def target(self, offset: int, n: int, scratch: bytearray) -> memoryview:
        """Writable room for n plaintext bytes at `offset`: in place, or a scratch buffer."""
        if self.memory is not None:
            return self.memory[offset:offset + n]
        return memoryview(scratch)[:n]

    def put(self, offset: int, data: Buffer, writeback: Writeback | None = None) -> None:
        """`data` belongs at `offset` (a no-op for a target that already is in place)."""
        if self.memory is not None:
            if not (isinstance(data, memoryview) and data.obj is self.memory.obj):
                self.memory[offset:offset + len(data)] = data
            return
        kick = writeback.next(offset, len(data)) if writeback else None
        self.streamer.write(offset, data, kick)


def _open_region(opened: Opened, plan: Plan, streamer: Streamer,
                 memory: memoryview | None,
                 placer: ClearPlacer | None = None) -> tuple[int, bytes]:
    """Authenticate (and place) the whole binary region; returns the clear digest's result."""
    source = Source(memoryview(opened.mm), opened.path)
    plain = _Plain(streamer, memory, placer)
    # The digest covers the sealed file's clear runs, by their place in it (FORMAT §5).
    digest = ClearDigest([(p.src, p.size) for p in plan.pieces if p.kind == "clear"])
    engine = engine_for(opened.keys)
    base = opened.binary_offset

    def clear_job(pieces: list[Piece]) -> Job:
        return lambda s: copy_clear(source, base, pieces, digest,
                                    lambda p: p.src if p.kind == "clear" else None,
                                    plain.put_clear, s)

    def envelope_job(piece: Piece) -> Job:
        return lambda s: _open_piece(opened, source, piece, engine, plain, s)

    try:
        streamer.run(streamer.jobs(plan.pieces, clear_job, envelope_job))
    finally:
        source.close()
    return digest.finish()


def _envelope_header(opened: Opened, piece: Piece) -> Header:
    net = piece.nets[0]
    header = parse_header(opened.binary(piece.src, min(MAX_HEADER_LEN, piece.src_size)),
                          whole=False)
    header.check_length(piece.src_size)
    if header.kind not in (Kind.WEIGHTS, Kind.GENERIC):
        raise Corrupt(f"the weights of net {net!r} are not a weight envelope")
    if header.version != opened.keys.version:  # FORMAT.md §8: one version per file
        raise Corrupt(f"the weights of net {net!r}: the file mixes envelopes of format "
                      "versions 1 and 2")
    if not opened.keys.owns(header):
        raise Tampered(f"the weights of net {net!r} belong to another encrypted file")
    if header.plaintext_len != piece.plain_size:
        raise Corrupt(f"the weights of net {net!r} do not have their declared size")
    return header


def _open_piece(opened: Opened, source: Source, piece: Piece, engine: Engine, plain: _Plain,
                s: Streamer) -> None:
    """Authenticate (and place) one weight envelope; name the net when it fails."""
    net = piece.nets[0]
    header = _envelope_header(opened, piece)
    at = opened.binary_offset + piece.src
    segment = header.segment_size
    record = segment + TAG_LEN
    sha = hashlib.sha256()
    wb = Writeback()
    head_len = header.header_len
    records_buf = bytearray(min(piece.src_size - head_len, record))
    scratch = bytearray(min(piece.plain_size, segment))
    chunk = max(CHUNK, record)
    body = piece.src_size - head_len
    try:
        for i, done in enumerate(range(0, body, record)):
            if done % chunk < record:  # about once a chunk: read ahead, let go behind
                source.read_ahead(at + head_len + done, at + piece.src_size, chunk)
                source.release(at + head_len + done - chunk, chunk if done else 0)
            records = source.checked(at + head_len + done, min(record, body - done), records_buf)
            text = plain.target(piece.dst + i * segment, len(records) - TAG_LEN, scratch)
            engine.open_segments(header.public, i, records, text)
            sha.update(text)
            plain.put(piece.dst + i * segment, text, wb)
            s.report(len(text))
    except Tampered:
        raise Tampered(f"the weights of net {net!r} were changed after encryption") from None
    finally:
        source.release(at, piece.src_size)
    if sha.digest() != piece.check_code:
        raise Tampered(f"the weights of net {net!r} do not match their check_code")
