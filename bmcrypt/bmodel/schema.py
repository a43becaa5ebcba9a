"""The bmodel FlatBuffer schema as code: the generated object API and the verifying decoder.

What code outside ``bmcrypt.bmodel`` may use of the generated classes (``_fbs``, made by
scripts/gen-schema.sh from schemas/bmodel.fbs) and of the hostile-input walker (``_walk``):

- ``decode_flatbuffer(fb)``: verify a FlatBuffer from an untrusted file and decode it into plain
  values (dicts, tuples, bytes); raises Corrupt. Nothing may trust an offset in ``fb`` before.
- ``unpack_flatbuffer(fb)``: the mutable object tree (``ModelT``) of a FlatBuffer that
  ``decode_flatbuffer`` has already accepted; ``bmcrypt.bmodel.pack_flatbuffer`` writes it back.
- ``ModelT``, ``BinaryT``, ``CoeffMemT``: the object API's classes that callers rewrite.
- ``is_schema_table(obj)``: whether a value of the object tree is a table (to walk it generically).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bmcrypt.bmodel._walk import decode as decode_flatbuffer

if TYPE_CHECKING:
    from bmcrypt.bmodel._fbs.bmodel.Binary import BinaryT
    from bmcrypt.bmodel._fbs.bmodel.CoeffMem import CoeffMemT
    from bmcrypt.bmodel._fbs.bmodel.Model import ModelT

_GENERATED = "bmcrypt.bmodel._fbs."
#: The generated classes load on first use: they import the flatbuffers runtime, and numpy with
#: it, which `inspect` and every command that only reads (through ``decode_flatbuffer``) skip.
_CLASSES = {"BinaryT": "Binary", "CoeffMemT": "CoeffMem", "ModelT": "Model"}

__all__ = ["BinaryT", "CoeffMemT", "ModelT", "decode_flatbuffer", "is_schema_table",
           "unpack_flatbuffer"]


def __getattr__(name: str) -> Any:
    if name not in _CLASSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{_GENERATED}bmodel.{_CLASSES[name]}"), name)
    globals()[name] = value
    return value


def unpack_flatbuffer(fb: bytes) -> ModelT:
    """The object tree of a FlatBuffer that ``decode_flatbuffer`` verified."""
    from bmcrypt.bmodel._fbs.bmodel.Model import Model, ModelT

    return ModelT.InitFromObj(Model.GetRootAs(fb, 0))


def is_schema_table(value: Any) -> bool:
    """True for a table object of the generated object API (ModelT, NetT, …)."""
    return type(value).__module__.startswith(_GENERATED) and hasattr(value, "Pack")

