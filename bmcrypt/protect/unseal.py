"""Authenticate every byte of an opened bmcrypt file, and optionally write it back as plain.

Verification and decryption are one pass over the binary region (docs/FORMAT.md §6 steps 5–6):
each weight envelope is authenticated segment by segment and its plaintext hashed against the
check_code; the clear runs between envelopes are hashed into the manifest's digest. When an
output stream is given, the plain model is written as it goes; the caller commits it only if
this returns (see files.atomic_write).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from bmcrypt.bmodel.header import build_header
from bmcrypt.crypto import HEADER_LEN, ClearDigest, Kind, Unsealer, parse_header
from bmcrypt.errors import Corrupt, Tampered
from bmcrypt.protect.opened import Opened
from bmcrypt.protect.plan import Piece, plan_open
from bmcrypt.bmodel.writer import pack_flatbuffer
from bmcrypt.protect.seal import CHUNK

Progress = Callable[[int], None]


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a full verification (raised errors say what failed; this says what held)."""

    key_id: str
    weight_regions: int
    weight_bytes: int
    encrypted_nets: tuple[str, ...]
    clear_bytes: int
    clear_covered: bool  # False for files written by `model_tool --encrypt -lib libbmcrypt.so`


def unseal_file(opened: Opened, out: BinaryIO | None = None,
                progress: Progress | None = None) -> VerifyReport:
    """Verify `opened` completely; with `out`, also write the plain bmodel to it."""
    model = opened.unpack()
    plan = plan_open(model, opened.binary_size)
    clear = [p for p in plan.pieces if p.kind == "clear"]
    digest = ClearDigest([(p.src, p.size) for p in clear])
    if out is not None:
        flatbuffer = pack_flatbuffer(model)
        out.write(build_header(len(flatbuffer), plan.size))
        out.write(flatbuffer)
    for piece in plan.pieces:
        if piece.kind == "zero":
            if out is not None:
                out.write(bytes(piece.size))
        elif piece.kind == "clear":
            for done in range(0, piece.size, CHUNK):
                chunk = opened.binary(piece.src + done, min(CHUNK, piece.size - done))
                digest.update(piece.src + done, chunk)
                if out is not None:
                    out.write(chunk)
                if progress:
                    progress(len(chunk))
        else:
            _open_weights(opened, piece, out, progress)
    clear_len, clear_sha = digest.finish()
    _check_digest(opened, clear_len, clear_sha)
    manifest = opened.manifest
    sealed = plan.seal_pieces()
    return VerifyReport(
        key_id=opened.keys.key_id.hex(),
        weight_regions=len(sealed),
        weight_bytes=sum(p.plain_size for p in sealed),
        encrypted_nets=tuple(sorted({n for p in sealed for n in p.nets})),
        clear_bytes=clear_len,
        clear_covered=manifest is not None,
    )


def _open_weights(opened: Opened, piece: Piece, out: BinaryIO | None,
                  progress: Progress | None) -> None:
    """Authenticate (and maybe write) one weight envelope; name the net when it fails."""
    net = piece.nets[0]
    envelope = opened.binary(piece.src, piece.src_size)
    header = parse_header(envelope[:HEADER_LEN], whole=False)
    header.check_length(piece.src_size)
    if header.kind not in (Kind.WEIGHTS, Kind.GENERIC):
        raise Corrupt(f"the weights of net {net!r} are not a weight envelope")
    if header.file_id != opened.keys.file_id or header.key_block != opened.key_block:
        raise Tampered(f"the weights of net {net!r} belong to another encrypted file")
    if header.plaintext_len != piece.plain_size:
        raise Corrupt(f"the weights of net {net!r} do not have their declared size")
    unsealer = Unsealer(opened.keys, envelope_len=piece.src_size)
    sha = hashlib.sha256()
    try:
        for done in range(0, piece.src_size, CHUNK):
            plain = unsealer.update(envelope[done:done + CHUNK])
            sha.update(plain)
            if out is not None:
                out.write(plain)
            if progress:
                progress(len(plain))
        unsealer.finish()
    except Tampered:
        raise Tampered(f"the weights of net {net!r} were changed after encryption") from None
    if sha.digest() != piece.check_code:
        raise Tampered(f"the weights of net {net!r} do not match their check_code")


def unseal_to_memory(opened: Opened) -> bytearray:
    """The plain bmodel of `opened` in one buffer, fully authenticated (or an exception).

    Weights are decrypted by the native core straight into their place in the buffer (in
    parallel for large envelopes) when it is available; no other full-size copy is made.
    """
    try:
        from bmcrypt import _native
    except ImportError:  # a source tree without the extension: the pure-Python path
        buf = io.BytesIO()
        unseal_file(opened, buf)
        return bytearray(buf.getbuffer())
    model = opened.unpack()
    plan = plan_open(model, opened.binary_size)
    flatbuffer = pack_flatbuffer(model)
    head = build_header(len(flatbuffer), plan.size) + flatbuffer
    out = bytearray(len(head) + plan.size)
    out[:len(head)] = head
    view = memoryview(out)[len(head):]
    clear = [p for p in plan.pieces if p.kind == "clear"]
    digest = ClearDigest([(p.src, p.size) for p in clear])
    keys = _native.FileKeys.from_parts(opened.keys.file_id, opened.key_block,
                                       opened.keys._dk)
    try:
        for piece in plan.pieces:
            if piece.kind == "clear":
                chunk = opened.binary(piece.src, piece.size)
                digest.update(piece.src, chunk)
                view[piece.dst:piece.dst + piece.size] = chunk
            elif piece.kind == "seal":
                _open_weights_native(opened, piece, keys, view[piece.dst:piece.dst + piece.size])
        _check_digest(opened, *digest.finish())
    except BaseException:
        out[:] = bytes(len(out))
        raise
    return out


def _open_weights_native(opened: Opened, piece: Piece, keys: object, dst: memoryview) -> None:
    net = piece.nets[0]
    envelope = opened.binary(piece.src, piece.src_size)
    header = parse_header(envelope[:HEADER_LEN], whole=False)
    header.check_length(piece.src_size)
    if header.file_id != opened.keys.file_id or header.key_block != opened.key_block:
        raise Tampered(f"the weights of net {net!r} belong to another encrypted file")
    if header.plaintext_len != piece.plain_size:
        raise Corrupt(f"the weights of net {net!r} do not have their declared size")
    try:
        dst[:] = keys.open(envelope)  # type: ignore[attr-defined]
    except Tampered:
        raise Tampered(f"the weights of net {net!r} were changed after encryption") from None
    if hashlib.sha256(dst).digest() != piece.check_code:
        raise Tampered(f"the weights of net {net!r} do not match their check_code")


def _check_digest(opened: Opened, clear_len: int, clear_sha: bytes) -> None:
    manifest = opened.manifest
    if manifest is not None and (manifest.clear_len, manifest.clear_digest) != (clear_len,
                                                                                 clear_sha):
        raise Tampered("the clear regions (commands, kernel module, gaps) were changed after "
                       "encryption")
