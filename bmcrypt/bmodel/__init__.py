"""The bmodel file format: header, FlatBuffer metadata, binary region. No crypto, no CLI.

    from bmcrypt.bmodel import read_bmodel
    m = read_bmodel("model.bmodel")
    m.nets[0].stages[0].inputs, m.device_mem, m.layout

Names are imported on first use: the FlatBuffers runtime (and numpy, which it imports) loads
only when a command reads a FlatBuffer, not when it merely probes a header.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bmcrypt._lazy import lazy_names

_HOME = {
    "header": ("EncryptionState", "Header", "HeaderProbe", "build_header", "parse_header",
               "probe_header"),
    "model": ("BModel", "CoeffRegion", "DeviceMem", "HostMem", "LayoutPart", "Module", "Net",
              "Span", "Stage", "Tensor", "dtype_name"),
    "reader": ("MAX_FLATBUFFER_SIZE", "MappedBmodel", "RawBmodel", "open_mapped", "probe_file",
               "read_bmodel", "read_raw"),
    "schema": ("BinaryT", "CoeffMemT", "ModelT", "decode_flatbuffer", "is_schema_table",
               "unpack_flatbuffer"),
    "writer": ("BinaryRegion", "build_bmodel", "iter_bmodel", "make_binary", "pack_flatbuffer",
               "write_bmodel"),
}

__all__ = [
    "BModel", "BinaryRegion", "BinaryT", "CoeffMemT", "CoeffRegion", "DeviceMem",
    "EncryptionState", "Header", "HeaderProbe", "HostMem", "LayoutPart", "MAX_FLATBUFFER_SIZE",
    "MappedBmodel", "ModelT", "Module", "Net", "RawBmodel", "Span", "Stage", "Tensor",
    "build_bmodel", "build_header", "decode_flatbuffer", "dtype_name", "is_schema_table",
    "iter_bmodel", "make_binary", "open_mapped", "pack_flatbuffer", "parse_header", "probe_file",
    "probe_header", "read_bmodel", "read_raw", "unpack_flatbuffer", "write_bmodel",
]


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOME)


if TYPE_CHECKING:
    from bmcrypt.bmodel.header import (
        EncryptionState,
        Header,
        HeaderProbe,
        build_header,
        parse_header,
        probe_header,
    )
    from bmcrypt.bmodel.model import (
        BModel,
        CoeffRegion,
        DeviceMem,
        HostMem,
        LayoutPart,
        Module,
        Net,
        Span,
        Stage,
        Tensor,
        dtype_name,
    )
    from bmcrypt.bmodel.reader import (
        MAX_FLATBUFFER_SIZE,
        MappedBmodel,
        RawBmodel,
        open_mapped,
        probe_file,
        read_bmodel,
        read_raw,
    )
    from bmcrypt.bmodel.schema import (
        BinaryT,
        CoeffMemT,
        ModelT,
        decode_flatbuffer,
        is_schema_table,
        unpack_flatbuffer,
    )
    from bmcrypt.bmodel.writer import (
        BinaryRegion,
        build_bmodel,
        iter_bmodel,
        make_binary,
        pack_flatbuffer,
        write_bmodel,
    )
