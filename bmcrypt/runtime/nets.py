"""Typed, Python-owned copies of the runtime's net descriptions, and tensor dtypes.

``bm_net_info_t`` lives inside the runtime and dies with it; ``NetInfo`` is a frozen copy that
stays valid after ``Runtime.close()``.

bf16 has no numpy dtype: bf16 tensors travel as ``uint16`` bit patterns (the upper half of an
IEEE float32). ``bf16_from_f32`` / ``f32_from_bf16`` convert.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.runtime import _api


class DType(enum.IntEnum):
    """``bm_data_type_t``."""

    F32 = 0
    F16 = 1
    I8 = 2
    U8 = 3
    I16 = 4
    U16 = 5
    I32 = 6
    U32 = 7
    BF16 = 8
    I4 = 9
    U4 = 10

    @property
    def numpy(self) -> np.dtype[np.generic]:
        """The numpy dtype host buffers of this type use (bf16 -> uint16 bit patterns)."""
        try:
            return np.dtype(_NUMPY[self])
        except KeyError:
            raise VendorRuntimeError(
                f"{self.name} tensors have no host representation in bmcrypt"
            ) from None

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize


_NUMPY: dict[DType, str] = {
    DType.F32: "float32",
    DType.F16: "float16",
    DType.I8: "int8",
    DType.U8: "uint8",
    DType.I16: "int16",
    DType.U16: "uint16",
    DType.I32: "int32",
    DType.U32: "uint32",
    DType.BF16: "uint16",
}


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a net.

    ``shapes[s]`` is the shape in stage ``s`` (for dynamic nets: the largest shape allowed);
    ``max_bytes`` is the largest byte size over all stages.
    """

    name: str
    dtype: DType
    scale: float
    zero_point: int
    shapes: tuple[tuple[int, ...], ...]
    max_bytes: int

    def nbytes(self, stage: int = 0) -> int:
        """Byte size of this tensor at the shape of ``stage``."""
        return int(np.prod(self.shapes[stage], dtype=np.int64)) * self.dtype.itemsize


@dataclass(frozen=True)
class NetInfo:
    """What the runtime knows about one loaded net."""

    name: str
    dynamic: bool
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    stage_count: int
    addr_mode: int  # 0 basic, 1 io alone, 2 io tag, 3 io tag fuse, 4 io reloc

    def input_shapes(self, stage: int) -> list[tuple[int, ...]]:
        return [t.shapes[stage] for t in self.inputs]

    def output_shapes(self, stage: int) -> list[tuple[int, ...]]:
        return [t.shapes[stage] for t in self.outputs]


def net_info_from_c(info: _api.BmNetInfo) -> NetInfo:
    """Copy a ``bm_net_info_t`` into Python objects."""
    stages = [info.stages[s] for s in range(info.stage_num)]
    return NetInfo(
        name=info.name.decode(),
        dynamic=bool(info.is_dynamic),
        inputs=_tensors(info, stages, "input"),
        outputs=_tensors(info, stages, "output"),
        stage_count=int(info.stage_num),
        addr_mode=int(info.addr_mode),
    )


def _tensors(
    info: _api.BmNetInfo, stages: list[_api.BmStageInfo], side: str
) -> tuple[TensorInfo, ...]:
    # The struct keeps parallel arrays per side: input_names, input_dtypes, ... input_num long.
    def field(name: str) -> Any:
        return getattr(info, f"{side}_{name}")

    zero_points = field("zero_point")
    max_bytes = getattr(info, f"max_{side}_bytes")
    return tuple(
        TensorInfo(
            name=field("names")[i].decode(),
            dtype=DType(field("dtypes")[i]),
            scale=float(field("scales")[i]),
            zero_point=int(zero_points[i]) if zero_points else 0,
            shapes=tuple(getattr(st, f"{side}_shapes")[i].to_tuple() for st in stages),
            max_bytes=int(max_bytes[i]),
        )
        for i in range(field("num"))
    )


def bf16_from_f32(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), rounding to nearest even like the hardware."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    rounded = ((bits + rounding) >> 16).astype(np.uint16)
    # NaN must stay NaN: rounding could carry a NaN's payload into the exponent (-> inf).
    nan = np.isnan(x)
    if np.any(nan):
        rounded = np.where(nan, (bits >> 16).astype(np.uint16) | np.uint16(0x40), rounded)
    return rounded


def f32_from_bf16(x: np.ndarray) -> np.ndarray:
    """bf16 bit patterns (uint16) -> float32 (exact)."""
    return (np.ascontiguousarray(x, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
