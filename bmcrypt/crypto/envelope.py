"""Sealing and opening envelopes (FORMAT.md §3.3): the plaintext is cut into segments of
S = 2^seg_log2 bytes, each one AES-256-GCM under the envelope's payload key PK with the 48-byte
public header as associated data and the nonce

    nonce_i = i as 11-byte big-endian || last      (last = 0x01 for i = n−1, else 0x00)

so no segment can be moved, dropped, or made final early without failing its tag.

Two ways through, byte-identical for the same random bytes:

- `seal` / `unseal` take and return whole buffers. `unseal` returns nothing until every
  segment has authenticated.
- `Sealer` / `Unsealer` take chunks of any size and return output as it becomes ready, holding
  at most one segment. `Unsealer` necessarily returns each segment once *it* authenticates, so
  a truncated or tampered stream is only reported after earlier segments were returned: a
  caller writing them out must write to a temporary file and commit it only after `finish()`
  returns.
"""

from __future__ import annotations

from bmcrypt.crypto.envelope_header import (
    DEFAULT_SEG_LOG2,
    ID_LEN,
    PUBLIC_HEADER_LEN,
    TAG_LEN,
    V1,
    V2_PUBLIC_LEN,
    Buffer,
    Header,
    byte_view,
    header_length_needed,
    parse_header,
    segment_count,
)
from bmcrypt.crypto.filekeys import FileKeys, Keyring, open_file_keys
from bmcrypt.crypto.kdf import Rng, default_rng
from bmcrypt.errors import BmcryptError, Corrupt, Tampered, Truncated


def seal(keys: FileKeys, kind: int, plaintext: Buffer, *, seg_log2: int = DEFAULT_SEG_LOG2,
         rng: Rng | None = None) -> bytearray:
    """The envelope of `plaintext`, of kind `kind`, for the file of `keys`."""
    src = byte_view(plaintext)
    sealer = Sealer(keys, kind, len(src), seg_log2=seg_log2, rng=rng)
    out = sealer.update(src)
    out += sealer.finish()
    return out


def unseal(envelope: Buffer, keys: FileKeys | Keyring) -> bytearray:
    """The plaintext of a whole envelope, once all of it has authenticated.

    `keys` is the file's `FileKeys` (the envelope must then be of that file: Tampered
    otherwise), or a keyring to open the envelope's key block (v1) or key area (v2 E₁) with.
    Raises Truncated, Corrupt, UnsupportedVersion, WrongKey or Tampered.
    """
    src = byte_view(envelope)
    unsealer = Unsealer(keys, envelope_len=len(src))
    out = unsealer.update(src)
    out += unsealer.finish()
    return out


class Sealer:
    """Encrypt a plaintext of known length chunk by chunk.

    `update` returns the envelope bytes that are ready (the header with the first call, then
    every segment as soon as its last byte arrives); `finish` checks that exactly
    `plaintext_len` bytes came in. Concatenated, the outputs are `seal`'s result.
    """

    def __init__(self, keys: FileKeys, kind: int, plaintext_len: int, *,
                 seg_log2: int = DEFAULT_SEG_LOG2, rng: Rng | None = None) -> None:
        region_salt = (rng or default_rng)(ID_LEN)
        public = keys.public_header(kind, seg_log2, plaintext_len, region_salt)
        self.header = public + keys.key_material(kind)
        self.envelope_len = keys.envelope_length(kind, plaintext_len, seg_log2)
        self._aad = public
        self._pk = keys.payload_key(region_salt)
        self._segments = _Segments(plaintext_len, seg_log2)
        self._header_sent = False
        self._finished = False

    def update(self, data: Buffer) -> bytearray:
        """Take the next plaintext bytes; return the envelope bytes now complete."""
        if self._finished:
            raise ValueError("update() after finish()")
        segs = self._segments
        src = byte_view(data)
        if segs.consumed + len(src) > segs.total:
            raise ValueError(f"more than the announced {segs.total} plaintext bytes")
        head = b"" if self._header_sent else self.header
        self._header_sent = True
        first, end = segs.advance(len(src))
        out = bytearray(len(head) + segs.span_len(first, end) + TAG_LEN * (end - first))
        out[:len(head)] = head
        dst = memoryview(out)[len(head):]
        for i in range(first, end):
            size = segs.segment_len(i)
            seg, src = segs.take(src, size)
            _seal_segment(self._pk, self._aad, i, i == segs.count - 1, seg,
                          dst[:size + TAG_LEN])
            dst = dst[size + TAG_LEN:]
        segs.keep(src)
        return out

    def finish(self) -> bytearray:
        """Return the last envelope bytes; ValueError if fewer plaintext bytes came in."""
        segs = self._segments
        if segs.consumed != segs.total:
            raise ValueError(f"got {segs.consumed} of the announced {segs.total} plaintext bytes")
        out = self.update(b"") if not self._header_sent else bytearray()
        self._finished = True
        return out


class Unsealer:
    """Decrypt an envelope chunk by chunk, authenticating segment by segment.

    `update` returns the plaintext of the segments that completed *and authenticated* in this
    call; `finish` raises Truncated if the envelope stopped short. Pass `envelope_len` when it
    is known (a file region): the length is then checked before anything is decrypted, as
    FORMAT.md §3.1 asks; without it, a short stream is only noticed at `finish`.
    See the module docstring: commit output only after `finish` returns.
    """

    def __init__(self, keys: FileKeys | Keyring, *, envelope_len: int | None = None) -> None:
        self.header: Header | None = None
        self.file_keys: FileKeys | None = None  # set with the header: reuse for the same file
        self._keys = keys
        self._envelope_len = envelope_len
        self._head = bytearray()
        self._aad = b""
        self._pk = b""
        self._records: _Segments | None = None
        self._finished = False
        self._failure: BmcryptError | None = None

    def update(self, data: Buffer) -> bytearray:
        """Take the next envelope bytes; return the plaintext now authenticated."""
        if self._finished:
            raise ValueError("update() after finish()")
        if self._failure is not None:
            raise self._failure  # once failed, always failed: the state is not resumable
        try:
            return self._update(byte_view(data))
        except BmcryptError as exc:
            self._failure = exc
            raise

    def _update(self, src: memoryview) -> bytearray:
        while self._records is None:  # the header's length shows as its bytes come in
            need = header_length_needed(self._head)
            take = need - len(self._head)
            self._head += src[:take]
            src = src[take:]
            if len(self._head) < need:
                return bytearray()
            if header_length_needed(self._head) == len(self._head):
                self._start()
        recs = self._records
        assert recs is not None and self.header is not None
        if recs.consumed + len(src) > recs.total:
            raise Corrupt(f"envelope goes on past the {self.header.envelope_len} bytes "
                          "its header says")
        first, end = recs.advance(len(src))
        out = bytearray(recs.span_len(first, end) - TAG_LEN * (end - first))
        dst = memoryview(out)
        for i in range(first, end):
            size = recs.segment_len(i)
            rec, src = recs.take(src, size)
            _open_segment(self._pk, self._aad, i, i == recs.count - 1, rec,
                          dst[:size - TAG_LEN])
            dst = dst[size - TAG_LEN:]
        recs.keep(src)
        return out

    def finish(self) -> bytearray:
        """Raise Truncated (or the header's own error) unless the whole envelope came in."""
        if self._failure is not None:
            raise self._failure
        if self._records is None:
            parse_header(self._head, whole=False)  # a partial header: says what is wrong
        assert self._records is not None
        if self._records.consumed != self._records.total:
            assert self.header is not None
            raise Truncated(f"envelope ends after {self.header.header_len + self._records.consumed}"
                            f" of {self.header.envelope_len} bytes")
        self._finished = True
        return bytearray()

    def _start(self) -> None:
        header = parse_header(self._head, whole=False)
        if self._envelope_len is not None:
            header.check_length(self._envelope_len)
        keys = open_file_keys(header, self._keys)  # the same file's FileKeys, or opened
        self.header, self.file_keys = header, keys
        self._aad = header.public
        self._pk = keys.payload_key(header.region_salt)
        # The segment records (ciphertext || tag) as a stream of fixed-size pieces.
        self._records = _Segments(header.envelope_len - header.header_len, header.seg_log2,
                                  overhead=TAG_LEN, count=header.segment_count)


class _Segments:
    """Cuts a stream of known length into pieces of S(+overhead) bytes, the last one shorter,
    buffering at most one incomplete piece between calls."""

    def __init__(self, total: int, seg_log2: int, overhead: int = 0,
                 count: int | None = None) -> None:
        self.total = total
        self.count = segment_count(total, seg_log2) if count is None else count
        self.piece = (1 << seg_log2) + overhead
        self.consumed = 0
        self._next = 0
        self._buf: bytearray | None = None
        self._fill = 0

    def segment_len(self, i: int) -> int:
        return self.piece if i < self.count - 1 else self.total - self.piece * (self.count - 1)

    def span_len(self, first: int, end: int) -> int:
        """Bytes in pieces first..end."""
        return min(end * self.piece, self.total) - min(first * self.piece, self.total)

    def advance(self, n: int) -> tuple[int, int]:
        """Count n more bytes in; return the range of pieces that are now complete."""
        self.consumed += n
        first = self._next
        # Before the end, only whole pieces are complete (the last is never one of them); at the
        # end all are, including an empty last piece.
        self._next = self.count if self.consumed == self.total else self.consumed // self.piece
        return first, self._next

    def take(self, src: memoryview, size: int) -> tuple[memoryview, memoryview]:
        """The next complete piece: straight from `src` when nothing is buffered (no copy)."""
        if not self._fill:
            return src[:size], src[size:]
        assert self._buf is not None
        need = size - self._fill
        self._buf[self._fill:size] = src[:need]
        self._fill = 0
        return memoryview(self._buf)[:size], src[need:]

    def keep(self, src: memoryview) -> None:
        """Buffer the start of an incomplete piece."""
        if not src:
            return
        if self._buf is None:
            self._buf = bytearray(min(self.piece, self.total))
        self._buf[self._fill:self._fill + len(src)] = src
        self._fill += len(src)


def seal_segment_run(keys: FileKeys, public: Buffer, first: int, plain: Buffer,
                     out: Buffer) -> int:
    """Seal whole segments (or the envelope's rest) from number `first` of the envelope whose
    public header is `public`, into `out`; return the bytes written (the engine API)."""
    header, pk = _run_keys(keys, public)
    src, dst = byte_view(plain), byte_view(out)
    seg, n = header.segment_size, header.segment_count
    written = 0
    for i, at in enumerate(range(0, max(len(src), 1), seg)):
        chunk = src[at:at + seg]
        _seal_segment(pk, header.public, first + i, first + i == n - 1, chunk,
                      dst[written:written + len(chunk) + TAG_LEN])
        written += len(chunk) + TAG_LEN
    return written


def open_segment_run(keys: FileKeys, public: Buffer, first: int, records: Buffer,
                     out: Buffer) -> int:
    """Open segment records from number `first` into `out`; return the plaintext length.
    Tampered, with what was written wiped, when one fails (the engine API)."""
    header, pk = _run_keys(keys, public)
    src, dst = byte_view(records), byte_view(out)
    rec, n = header.segment_size + TAG_LEN, header.segment_count
    done = 0
    try:
        for i, at in enumerate(range(0, max(len(src), 1), rec)):
            record = src[at:at + rec]
            size = len(record) - TAG_LEN
            _open_segment(pk, header.public, first + i, first + i == n - 1, record,
                          dst[done:done + size])
            done += size
    except Tampered:
        dst[:done] = bytes(done)
        raise
    return done


def _run_keys(keys: FileKeys, public: Buffer) -> tuple[Header, bytes]:
    head = bytes(byte_view(public))
    if len(head) != (PUBLIC_HEADER_LEN if keys.version == V1 else V2_PUBLIC_LEN):
        raise ValueError("not the public header of an envelope of this format version")
    # The key material is not needed here: a placeholder of its length lets the header parse.
    header = parse_header(head + keys.key_material(head[6]), whole=False)
    if header.file_id != keys.file_id:
        raise ValueError("the envelope is of another file")
    return header, keys.payload_key(header.region_salt)


def _nonce(i: int, last: bool) -> bytes:
    return i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _seal_segment(pk: bytes, aad: bytes, i: int, last: bool, src: memoryview,
                  dst: memoryview) -> None:
    from Crypto.Cipher import AES  # on first use (see kdf.py)

    cipher = AES.new(pk, AES.MODE_GCM, nonce=_nonce(i, last), mac_len=TAG_LEN)
    cipher.update(aad)
    n = len(src)
    cipher.encrypt(src, output=dst[:n])
    dst[n:] = cipher.digest()


def _open_segment(pk: bytes, aad: bytes, i: int, last: bool, src: memoryview,
                  dst: memoryview) -> None:
    from Crypto.Cipher import AES  # on first use (see kdf.py)

    cipher = AES.new(pk, AES.MODE_GCM, nonce=_nonce(i, last), mac_len=TAG_LEN)
    cipher.update(aad)
    n = len(dst)
    cipher.decrypt(src[:n], output=dst)
    try:
        cipher.verify(src[n:])
    except ValueError:
        raise Tampered("the payload failed authentication") from None
