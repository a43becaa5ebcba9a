"""Turn a plain bmodel into a bmcrypt file (docs/FORMAT.md §2), streaming.

Memory stays bounded by the chunk size and the FlatBuffer: weights are read from a memory map
and written envelope segment by envelope segment. The header envelope E₁ and the FlatBuffer
envelope E₂ come first in the file but are written last (E₂ carries the digest of the clear
bytes, known only once they have streamed by); their lengths are known up front, so the binary
region is written at its final offset and the writer seeks back once.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from bmcrypt.bmodel.header import MAGIC
from bmcrypt.bmodel.reader import MappedBmodel
from bmcrypt.bmodel.writer import pack_flatbuffer
from bmcrypt.crypto import (
    DEFAULT_SEG_LOG2,
    MANIFEST_LEN,
    ClearDigest,
    FileKeys,
    Kind,
    Manifest,
    Sealer,
    envelope_length,
    seal,
)
from bmcrypt.errors import Corrupt, InputFileError
from bmcrypt.protect.plan import Plan, coeff_mems, plan_seal

CHUNK = 8 << 20  # bytes read per step: large enough for throughput, small for memory
TAIL_LEN = 56  # the header tail the runtime decrypts: u32 fb size, u64 binary size, 44 zeros

Progress = Callable[[int], None]  # called with the number of plaintext bytes just processed


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


def pack_tail(flatbuffers_size: int, binary_size: int) -> bytes:
    """The 56-byte header tail E₁ protects."""
    return struct.pack("<IQ", flatbuffers_size, binary_size) + bytes(44)


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
    plan = plan_seal(model, region_size, nets, lambda n: envelope_length(n, seg_log2))

    flatbuffer = pack_flatbuffer(model)
    e2_len = envelope_length(len(flatbuffer) + MANIFEST_LEN, seg_log2)
    e1_len = envelope_length(TAIL_LEN, seg_log2)
    header_size = 8 + e1_len
    binary_offset = header_size + e2_len

    out.seek(binary_offset)
    runs = plan.clear_runs()
    digest = ClearDigest(runs)
    _write_region(src, plan, out, keys, digest, seg_log2, progress)
    clear_len, clear_sha = digest.finish()

    manifest = Manifest(len(flatbuffer), clear_len, clear_sha).pack()
    e2 = seal(keys, Kind.FLATBUFFER, flatbuffer + manifest, seg_log2=seg_log2)
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
    )


def _write_region(src: MappedBmodel, plan: Plan, out: BinaryIO, keys: FileKeys,
                  digest: ClearDigest, seg_log2: int, progress: Progress | None) -> None:
    """Stream the pieces of the new binary region to `out` (positioned at its start)."""
    for piece in plan.pieces:
        if piece.kind == "zero":
            out.write(bytes(piece.size))
            digest.update(piece.dst, bytes(piece.size))
        elif piece.kind == "clear":
            for done in range(0, piece.size, CHUNK):
                chunk = src.binary(piece.src + done, min(CHUNK, piece.size - done))
                out.write(chunk)
                digest.update(piece.dst + done, chunk)
                if progress:
                    progress(len(chunk))
        else:
            sealer = Sealer(keys, Kind.WEIGHTS, piece.plain_size, seg_log2=seg_log2)
            sha = hashlib.sha256()
            for done in range(0, piece.plain_size, CHUNK):
                chunk = src.binary(piece.src + done, min(CHUNK, piece.plain_size - done))
                sha.update(chunk)
                out.write(sealer.update(chunk))
                if progress:
                    progress(len(chunk))
            out.write(sealer.finish())
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
