"""Write plain bmodels: header + FlatBuffer (packed from the generated object API) + binary region.

Two layouts:

* aligned (``align=4096``, like the vendor tool): the FlatBuffer is zero-padded so that the
  binary region starts on a 4 KiB boundary, every blob added with :meth:`BinaryRegion.add`
  starts on one, and the region is padded to a multiple of 4 KiB;
* compact (``align=1``): no padding anywhere. The runtime needs no alignment.

The FlatBuffer must already point at the right places: ``Binary.start`` is relative to the
binary region. :class:`BinaryRegion` hands out those ``BinaryT`` values as blobs are added.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from bmcrypt.bmodel.header import HEADER_SIZE, build_header

if TYPE_CHECKING:  # flatbuffers and the generated code (numpy with them) load on first use
    from bmcrypt.bmodel._fbs.bmodel.Binary import BinaryT
    from bmcrypt.bmodel._fbs.bmodel.Model import ModelT

VENDOR_ALIGN = 4096
_ZEROS = bytes(1 << 20)

Buffer = bytes | bytearray | memoryview


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align


def make_binary(start: int, size: int) -> BinaryT:
    """A ``Binary`` struct for the object API."""
    from bmcrypt.bmodel._fbs.bmodel.Binary import BinaryT

    b = BinaryT()
    b.start, b.size = start, size
    return b


@dataclass
class BinaryRegion:
    """The binary region under construction: blobs at offsets, zeros in between.

    Blobs are kept by reference (bytes, memoryview of an mmap, ...) and only copied when the
    file is written, so a multi-GiB region costs no extra memory.
    """

    align: int = 1
    size: int = 0
    _pieces: list[tuple[int, Buffer]] = field(default_factory=list)

    def add(self, data: Buffer, *, align: int | None = None) -> BinaryT:
        """Append ``data`` (at the next ``align`` boundary) and return its ``Binary``."""
        start = _round_up(self.size, align or self.align)
        return self.place(start, data)

    def place(self, start: int, data: Buffer) -> BinaryT:
        """Put ``data`` at a fixed offset (used when rewriting a file keeps its layout)."""
        n = memoryview(data).nbytes
        if start < 0:
            raise ValueError("negative start")
        if n:
            self._pieces.append((start, data))
        self.size = max(self.size, start + n)
        return make_binary(start, n)

    def reserve(self, size: int) -> None:
        """Grow the region to at least ``size`` bytes (the tail is zero-filled)."""
        self.size = max(self.size, size)

    def chunks(self) -> Iterator[Buffer]:
        """The region's bytes in order, gaps as zeros. Overlapping blobs are an error."""
        pos = 0
        for start, data in sorted(self._pieces, key=lambda p: p[0]):
            if start < pos:
                raise ValueError(f"binary blobs overlap at offset {start}")
            yield from _zeros(start - pos)
            yield data
            pos = start + memoryview(data).nbytes
        yield from _zeros(self.size - pos)


def _zeros(n: int) -> Iterator[bytes]:
    while n > 0:
        k = min(n, len(_ZEROS))
        yield _ZEROS[:k]
        n -= k


def pack_flatbuffer(model: ModelT) -> bytes:
    """Serialize a ``ModelT`` (generated object API) into FlatBuffer bytes."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder))
    return bytes(builder.Output())


def _layout(flatbuffer: bytes, region: BinaryRegion, align: int) -> tuple[bytes, bytes, int]:
    """Header bytes, padded FlatBuffer, binary size."""
    if align < 1:
        raise ValueError("align must be >= 1")
    fb_size = _round_up(HEADER_SIZE + len(flatbuffer), align) - HEADER_SIZE
    # The region is padded to a multiple of the alignment, as the vendor tool does.
    bin_size = _round_up(region.size, align)
    padded = flatbuffer + bytes(fb_size - len(flatbuffer))
    return build_header(fb_size, bin_size), padded, bin_size


def iter_bmodel(model: ModelT | bytes, region: BinaryRegion, *, align: int = VENDOR_ALIGN,
                trailing: bytes = b"") -> Iterator[Buffer]:
    """The file's bytes in chunks. ``model`` is a ``ModelT`` or already packed FlatBuffer bytes.

    ``trailing`` is appended after the declared binary region (for tests of odd files).
    """
    flatbuffer = model if isinstance(model, bytes) else pack_flatbuffer(model)
    header, padded, bin_size = _layout(flatbuffer, region, align)
    yield header
    yield padded
    yield from region.chunks()
    yield from _zeros(bin_size - region.size)
    if trailing:
        yield trailing


def build_bmodel(model: ModelT | bytes, region: BinaryRegion, *, align: int = VENDOR_ALIGN,
                 trailing: bytes = b"") -> bytes:
    """The whole file in memory (for tests and small models)."""
    return b"".join(bytes(c) for c in iter_bmodel(model, region, align=align, trailing=trailing))


def write_bmodel(dest: str | os.PathLike[str] | BinaryIO, model: ModelT | bytes,
                 region: BinaryRegion, *, align: int = VENDOR_ALIGN) -> int:
    """Stream the file to a path or an open binary file; returns the number of bytes written.

    Writing to a path overwrites it in place: callers that need atomic replacement pass a
    file object for a temporary file and rename it themselves.
    """
    if isinstance(dest, (str, os.PathLike)):
        with open(Path(dest), "wb") as f:
            return write_bmodel(f, model, region, align=align)
    total = 0
    for chunk in iter_bmodel(model, region, align=align):
        dest.write(chunk)
        total += memoryview(chunk).nbytes
    return total
