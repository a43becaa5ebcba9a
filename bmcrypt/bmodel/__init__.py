"""The bmodel file format: header, FlatBuffer metadata, binary region. No crypto, no CLI.

    from bmcrypt.bmodel import read_bmodel
    m = read_bmodel("model.bmodel")
    m.nets[0].stages[0].inputs, m.device_mem, m.layout
"""

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
from bmcrypt.bmodel.writer import (
                                   BinaryRegion,
                                   build_bmodel,
                                   iter_bmodel,
                                   make_binary,
                                   pack_flatbuffer,
                                   write_bmodel,
)

__all__ = [
    "BModel", "BinaryRegion", "CoeffRegion", "DeviceMem", "EncryptionState", "Header",
    "HeaderProbe", "HostMem", "LayoutPart", "MAX_FLATBUFFER_SIZE", "MappedBmodel", "Module",
    "Net", "RawBmodel", "Span", "Stage", "Tensor", "build_bmodel", "build_header", "dtype_name",
    "iter_bmodel", "make_binary", "open_mapped", "pack_flatbuffer", "parse_header",
    "probe_file", "probe_header", "read_bmodel", "read_raw", "write_bmodel",
]
