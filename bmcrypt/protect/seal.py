"""Turn a plain bmodel into a bmcrypt file (docs/FORMAT.md §2), streaming.

Memory stays bounded by a few segments per thread and the FlatBuffer: weights are read and
written envelope segment by envelope segment. The header envelope E₁ and the FlatBuffer envelope
E₂ come first in the file but are written last (E₂ carries the digest of the clear bytes, known
only once they have streamed by); their lengths are known up front, so the binary region is
written at its final offsets and the header once at the end.

Speed (numbers in docs/benchmarks.md): the envelopes are sealed in parallel, one job per
envelope on as many threads as there are cores (hashing, the native core, pycryptodome and file
writes all release the GIL), and one job copies the clear bytes in order. Within a job each
segment is read once into a small buffer, then hashed against the check_code and encrypted while
it is still in the CPU cache, then written where it belongs. The native core seals when
`bmcrypt._native` is installed, pycryptodome otherwise (`crypto.segment_cipher`): the same
envelopes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from bmcrypt.bmodel.header import MAGIC
from bmcrypt.bmodel.reader import MappedBmodel
from bmcrypt.bmodel.writer import pack_flatbuffer
from bmcrypt.crypto import DEFAULT_SEG_LOG2, FileKeys, Kind, seal
from bmcrypt.crypto.envelope_header import ID_LEN, TAG_LEN, Buffer
from bmcrypt.crypto.segment_cipher import Engine, engine_for
from bmcrypt.errors import Corrupt, InputFileError
from bmcrypt.protect.container import TAIL_LEN, pack_tail
from bmcrypt.protect.manifest import MANIFEST_LEN, ClearDigest, Manifest
from bmcrypt.protect.region_plan import Piece, Plan, coeff_mems, plan_seal
from bmcrypt.protect.restore import CLEAR, ENVELOPE, ORIGINAL_HEADER_LEN, Extent, RestoreRecord
from bmcrypt.protect.stream import CHUNK, Job, Progress, Source, Streamer, Writeback, copy_clear


@dataclass(frozen=True)
class SealReport:
    """What `seal_bmodel` did: sizes and which nets' weights are now encrypted."""

    header_size: int
    flatbuffer_envelope: int
    binary_size: int
    file_size: int
    sealed_regions: int
    sealed_bytes: int
    sealed_nets: tuple[str, ...]
    key_id: str
    original_sha256: str  # of the plain file; decrypting a version-2 file gives it back
    key_ids: tuple[str, ...] = ()  # every recipient's key id, in key-area order


def seal_bmodel(src: MappedBmodel, out: BinaryIO, keys: FileKeys, *,
                nets: set[str] | None = None, seg_log2: int = DEFAULT_SEG_LOG2,
                progress: Progress | None = None) -> SealReport:
    """Write the bmcrypt form of the plain model `src` to the seekable stream `out`.

    `nets`: whose weights to encrypt (None: all). Unknown names are an error (the vendor tool
    silently ignores them, which leaves weights in clear that the user meant to protect).
    The weights are checked against their check_code while they stream; a mismatch raises
    Corrupt (a damaged model is never sealed). `out` must be discarded on any exception.
    """
    model = src.raw.unpack()
    known = {n.name.decode() if isinstance(n.name, bytes) else n.name for n in model.net or []}
    if nets is not None and (unknown := sorted(nets - known)):
        raise InputFileError(f"no net named {', '.join(map(repr, unknown))} in this model",
                             hint=f"nets in this model: {', '.join(sorted(known))}")
    header = src.raw.header
    # Bytes after the declared binary region are kept (clear, covered by the digest).
    region_size = src.raw.file_size - header.binary_offset
    plan = plan_seal(model, region_size, nets,
                     lambda n: keys.envelope_length(Kind.WEIGHTS, n, seg_log2))

    flatbuffer = pack_flatbuffer(model)
    # Version 2 keeps what the exact round trip needs (FORMAT.md §8.4): all of it is known now
    # but the original's SHA-256, which is hashed while the region streams; its length is fixed.
    record = _restore_record(src, plan, bytes(32)) if keys.version >= 2 else None
    restore = record.pack() if record is not None else b""
    e2_len = keys.envelope_length(Kind.FLATBUFFER,
                                  len(flatbuffer) + len(restore) + MANIFEST_LEN, seg_log2)
    e1_len = keys.envelope_length(Kind.HEADER_TAIL, TAIL_LEN, seg_log2)
    header_size = 8 + e1_len
    binary_offset = header_size + e2_len

    out.seek(binary_offset)
    runs = plan.clear_runs()
    digest = ClearDigest(runs)
    original = hashlib.sha256()
    _write_region(src, plan, out, keys, digest, seg_log2, progress, original)
    clear_len, clear_sha = digest.finish()

    if record is not None:
        record = _restore_record(src, plan, original.digest())
        restore = record.pack()
        manifest = Manifest(len(flatbuffer), clear_len, clear_sha, len(restore), 2).pack()
    else:
        manifest = Manifest(len(flatbuffer), clear_len, clear_sha).pack()
    e2 = seal(keys, Kind.FLATBUFFER, flatbuffer + restore + manifest, seg_log2=seg_log2)
    e1 = seal(keys, Kind.HEADER_TAIL, pack_tail(e2_len, plan.size), seg_log2=seg_log2)
    assert len(e1) == e1_len and len(e2) == e2_len
    out.seek(0)
    out.write(struct.pack("<II", MAGIC, header_size))
    out.write(e1)
    out.write(e2)
    sealed = plan.seal_pieces()
    return SealReport(
        header_size=header_size,
        flatbuffer_envelope=e2_len,
        binary_size=plan.size,
        file_size=binary_offset + plan.size,
        sealed_regions=len(sealed),
        sealed_bytes=sum(p.plain_size for p in sealed),
        sealed_nets=tuple(sorted({n for p in sealed for n in p.nets})),
        key_id=keys.key_id.hex(),
        original_sha256=original.hexdigest(),
        key_ids=tuple(keys.area().key_ids) if keys.version >= 2 else (keys.key_id.hex(),),
    )


def _restore_record(src: MappedBmodel, plan: Plan, sha256: bytes) -> RestoreRecord:
    """How to rebuild `src` from the sealed file: its header and FlatBuffer verbatim, and one
    extent per clear run or envelope of the plan, in the original's order (FORMAT.md §8.4)."""
    header = src.raw.header
    if header.header_size != ORIGINAL_HEADER_LEN:
        raise Corrupt(f"the plain model's header is {header.header_size} bytes, not 64")
    extents = []
    for p in sorted((p for p in plan.pieces if p.kind != "zero"), key=lambda p: p.src):
        if p.kind == "clear" and p.size:
            extents.append(Extent(p.src, p.size, p.dst, CLEAR))
        elif p.kind == "seal":
            extents.append(Extent(p.src, p.src_size, p.dst, ENVELOPE))
    with src.whole() as whole:
        head = bytes(whole[:ORIGINAL_HEADER_LEN])
    return RestoreRecord(sha256, src.raw.file_size, head, bytes(src.raw.flatbuffer),
                         tuple(extents))


# ---------------------------------------------------------------- one envelope, streamed


class _Envelope:
    """One weight envelope, sealed segment by segment into one reused buffer by the engine."""

    def __init__(self, engine: Engine, keys: FileKeys, kind: int, plaintext_len: int,
                 seg_log2: int) -> None:
        self._public = keys.public_header(kind, seg_log2, plaintext_len, os.urandom(ID_LEN))
        self.head = self._public + keys.key_material(kind)
        self._engine, self._seg_log2 = engine, seg_log2
        self._buf = bytearray(min(plaintext_len, 1 << seg_log2) + TAG_LEN)

    def update(self, done: int, plain: memoryview) -> memoryview:
        n = self._engine.seal_segments(self._public, done >> self._seg_log2, plain, self._buf)
        return memoryview(self._buf)[:n]


def _write_region(src: MappedBmodel, plan: Plan, out: BinaryIO, keys: FileKeys,
                  digest: ClearDigest, seg_log2: int, progress: Progress | None,
                  original: hashlib._Hash) -> None:
    """Stream the pieces of the new binary region to `out` (positioned at its start).

    One job writes the clear pieces in order (the digest needs them in order), one job per
    envelope seals the weights: hashing a segment and then encrypting it on the same thread
    finds it still in the CPU's cache, which reading it once for each on two threads did not.
    """
    streamer = Streamer(out, out.tell(), progress)
    source = Source(src.binary(0, 0), src.raw.path)
    engine = engine_for(keys)
    base = src.raw.header.binary_offset  # file offset of the binary region

    def put(offset: int, data: Buffer, wb: Writeback | None) -> None:
        streamer.write(offset, data, wb.next(offset, len(data)) if wb else None)

    def clear_job(pieces: list[Piece]) -> Job:
        # The digest covers the new region's clear runs, padding included (FORMAT §5).
        return lambda s: copy_clear(source, base, pieces, digest, lambda p: p.dst, put, s)

    def seal_job(piece: Piece) -> Job:
        return lambda s: _seal_piece(source, base, piece, engine, keys, seg_log2, s)

    def hash_job(s: Streamer) -> None:
        # The whole original, in order, on its own thread: the restore record's SHA-256.
        with src.whole() as whole:
            for at in range(0, len(whole), CHUNK):
                original.update(whole[at:at + CHUNK])
                src.drop_pages(at, CHUNK)
                if s.stopped:
                    return

    try:
        jobs = streamer.jobs(plan.pieces, clear_job, seal_job, biggest_first=True)
        streamer.run([hash_job] + jobs)
    finally:
        source.close()


def _seal_piece(source: Source, base: int, piece: Piece, engine: Engine, keys: FileKeys,
                seg_log2: int, s: Streamer) -> None:
    envelope = _Envelope(engine, keys, Kind.WEIGHTS, piece.plain_size, seg_log2)
    pos = piece.dst
    s.write(pos, envelope.head)
    pos += len(envelope.head)
    sha = hashlib.sha256()
    size, segment = piece.plain_size, 1 << seg_log2
    at = base + piece.src  # file offset of the weights
    buf = bytearray(min(size, segment))
    wb = Writeback()
    chunk = max(CHUNK, segment)  # whole segments
    for done in range(0, max(size, 1), segment):
        if done % chunk == 0:  # the input a chunk at a time: read ahead, let go behind
            source.read_ahead(at + done, at + size, chunk)
            source.release(at + done - chunk, chunk if done else 0)
        # Read once, then hashed and encrypted while still in the CPU cache. The check_code
        # check below is what makes reading them by `pread` safe (see Source).
        view = source.checked(at + done, min(segment, size - done), buf)
        sha.update(view)
        sealed = envelope.update(done, view)
        s.write(pos, sealed, wb.next(pos, len(sealed)))
        pos += len(sealed)
        s.report(len(view))
    last = (max(size, 1) - 1) // chunk * chunk
    source.release(at + last, size - last)
    if sha.digest() != piece.check_code:
        raise Corrupt(f"the weights of net {piece.nets[0]!r} do not match their "
                      "check_code: the model is damaged, nothing was encrypted")


def sealed_nets(model: object) -> list[str]:
    """Names of the nets that have encrypted weights, in file order."""
    names: list[str] = []
    for net, _stage, cm in coeff_mems(model):  # type: ignore[arg-type]
        if cm.encryptMode == 1 and net not in names:
            names.append(net)
    return names
