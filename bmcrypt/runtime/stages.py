"""Match host inputs to a net: order, dtypes, and which compiled stage fits their shapes.

Checked in Python because the vendor runtime's own answer to a wrong dtype is silent garbage,
and to a wrong shape a log line and ``false``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bmcrypt.errors import VendorRuntimeError
from bmcrypt.runtime.nets import DType, NetInfo

_INPUT_HINT = "compare the inputs with Runtime.net_info(net)"


def check_inputs(
    info: NetInfo, inputs: Sequence[np.ndarray] | Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    """Return the inputs as C-contiguous arrays in the net's order, checking count and dtypes."""
    names = [t.name for t in info.inputs]
    if isinstance(inputs, Mapping):
        unknown = sorted(set(inputs) - set(names))
        missing = [n for n in names if n not in inputs]
        if unknown or missing:
            raise VendorRuntimeError(
                f"net {info.name!r} takes inputs {names}; "
                f"missing {missing}, unknown {unknown}", hint=_INPUT_HINT)
        ordered = [inputs[n] for n in names]
    else:
        ordered = list(inputs)
        if len(ordered) != len(names):
            raise VendorRuntimeError(
                f"net {info.name!r} takes {len(names)} inputs {names}, got {len(ordered)}",
                hint=_INPUT_HINT)
    arrays = []
    for t, a in zip(info.inputs, ordered, strict=True):
        a = np.asarray(a)
        want = t.dtype.numpy
        if a.dtype != want:
            bf16 = " (bf16 travels as uint16 bit patterns: use bf16_from_f32)" \
                if t.dtype is DType.BF16 else ""
            raise VendorRuntimeError(
                f"net {info.name!r}: input {t.name!r} must be {t.dtype.name} "
                f"({want}), got {a.dtype}{bf16}", hint=_INPUT_HINT)
        arrays.append(np.ascontiguousarray(a))
    return arrays


def pick_stage(info: NetInfo, shapes: Sequence[tuple[int, ...]], stage: int | None) -> int:
    """The stage whose input shapes fit ``shapes``: equal for static nets, within the
    compiled maximum (same rank) for dynamic ones. ``stage`` forces one and is checked."""
    candidates = range(info.stage_count) if stage is None else [stage]
    if stage is not None and not 0 <= stage < info.stage_count:
        raise VendorRuntimeError(
            f"net {info.name!r} has {info.stage_count} stage(s), no stage {stage}",
            hint=_INPUT_HINT)
    for s in candidates:
        if all(_fits(tuple(shape), t.shapes[s], info.dynamic)
               for shape, t in zip(shapes, info.inputs, strict=True)):
            return s
    expected = "; ".join(
        f"stage {s}: {info.input_shapes(s)}" for s in candidates)
    rule = "at most" if info.dynamic else "exactly"
    raise VendorRuntimeError(
        f"net {info.name!r}: input shapes {[tuple(s) for s in shapes]} fit no stage "
        f"(need {rule} {expected})", hint=_INPUT_HINT)


def _fits(shape: tuple[int, ...], compiled: tuple[int, ...], dynamic: bool) -> bool:
    if len(shape) != len(compiled):
        return False
    if not dynamic:
        return shape == compiled
    return all(0 < d <= c for d, c in zip(shape, compiled, strict=True))
