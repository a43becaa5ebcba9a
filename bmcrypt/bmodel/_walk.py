"""A verifying decoder for the bmodel FlatBuffer: hostile bytes in, plain Python values out.

The Python ``flatbuffers`` package has no verifier: its accessors trust every offset and fail
with IndexError/struct.error deep inside, or silently read garbage. So the reader decodes the
buffer with this walker first. Every offset, vector, string and table is bounds- and
alignment-checked the way the C++ verifier (which the vendor runtime runs) checks them, and
any failure becomes :class:`Corrupt` with a short path to the bad field. Only after the
walk succeeds may other code use the generated accessors on the same bytes.

Tables decode to dicts keyed by field name (absent fields get the schema default), structs to
tuples, strings and ``[ubyte]`` to bytes, other scalar vectors to tuples. A table or vector
referenced from several places is decoded once and shared, and the cost of the expanded tree
is capped, so a small buffer cannot make anyone walk an exponential DAG.

``SCHEMA`` mirrors schemas/bmodel.fbs field by field (a test checks they agree).
"""

from __future__ import annotations

import struct
from typing import Any

from bmcrypt.errors import Corrupt

# Field order is the field id. Type notation: scalar (u8 i32 u32 u64 f32, optional "=default"),
# struct name, "string", table name, "[T]" vector; a trailing "!" marks (required).
SCHEMA: dict[str, list[tuple[str, str]]] = {
    "Shape": [("dim", "[u64]")],
    "CmdGroup": [("bdc_num", "u32"), ("gdma_num", "u32"), ("binary_bdc", "Binary"),
                 ("binary_gdma", "Binary"), ("bdc_cmd_byte", "u32"), ("gdma_cmd_byte", "u32"),
                 ("reloc_entries", "[RelEntry]")],
    "CoreCommands": [("gdma_tiu_commands", "[CmdGroup]"), ("sdma_commands", "[Binary]"),
                     ("hau_commands", "[Binary]"), ("cdma_commands", "[Binary]")],
    "StageIR": [("ir_info_len", "u32"), ("height_high", "i32"), ("height_low", "i32"),
                ("width_high", "i32"), ("width_low", "i32")],
    "Location": [("name", "string!"), ("offset", "u64"), ("size", "u64")],
    "CoeffMem": [("address", "u64"), ("check_code", "[u8]"), ("binary_coeff", "Binary"),
                 ("location", "[Location]"), ("encrypt_mode", "i32"), ("decrypt_size", "u64")],
    "Tensor": [("name", "string!"), ("data_type", "u32"), ("gmem_stmode", "i32"),
               ("device_addr", "u64"), ("size", "u64"), ("shape", "[Shape]"), ("mem_type", "u32"),
               ("scale", "f32=1.0"), ("cpu_addr", "u32"), ("pad_h", "u32"), ("zero_point", "i32"),
               ("hidden", "i32"), ("index", "i32"), ("relentry", "RelEntry")],
    "CpuConst": [("name", "string"), ("const_data", "Binary"), ("check_code", "[u8]")],
    "CpuParam": [("op_type", "i32"), ("binary_param", "Binary"), ("cpu_const", "[CpuConst]"),
                 ("is_custom", "i32")],
    "OutputFrom": [("indice", "[i32]")],
    "MergeParam": [("output_from", "[OutputFrom]")],
    "SwitchParam": [("output_from", "[i32]"), ("output_branch", "[i32]")],
    "SubNet": [("subnet_mode", "i32"), ("cmd_group", "[CmdGroup]"), ("cpu_param", "[CpuParam]"),
               ("input_tensor", "[Tensor]"), ("output_tensor", "[Tensor]"), ("is_dynamic", "i32"),
               ("ir_offset", "u32"), ("ir_len", "u32"), ("n_dynamic", "i32"),
               ("h_w_dynamic", "i32"), ("id", "i32=-1"), ("next_subnet_ids", "[i32]"),
               ("merge_param", "MergeParam"), ("switch_param", "SwitchParam"),
               ("core_commands", "[CoreCommands]"), ("run_core", "u32")],
    "NetStatic": [],
    "NetDynamic": [],
    "NetParameter": [("input_tensor", "[Tensor]!"), ("output_tensor", "[Tensor]!"),
                     ("ctx_addr", "u64"), ("ctx_size", "u64"), ("coeff_mem", "CoeffMem"),
                     ("is_dynamic", "i32"), ("n_dynamic", "i32"), ("h_w_dynamic", "i32"),
                     ("cmd_group", "[CmdGroup]"), ("net_profile", "Binary"),
                     ("stage_ir", "[StageIR]"), ("binary_ir", "Binary"), ("sub_net", "[SubNet]"),
                     ("cpu_mem_size", "u32"), ("ctx_sizes", "[u64]"), ("net_stat", "Binary"),
                     ("core_num", "u32"), ("io_addr", "u64"), ("io_size", "u64"),
                     ("tensor_loc", "Binary"), ("dynamic_ctx_addr", "u64"),
                     ("dynamic_coeff_offset", "u64"), ("dynamic_combined_coeff_offset", "u64")],
    "Cascade": [("device_id", "u32"), ("step", "u32"), ("main_name", "string")],
    "Net": [("name", "string!"), ("net_static", "[NetStatic]"), ("net_dynamic", "[NetDynamic]"),
            ("parameter", "[NetParameter]"), ("cascade", "Cascade"), ("addr_mode", "i32")],
    "KernelModule": [("file_name", "string!"), ("binary", "Binary!"), ("mode", "i32")],
    "CpuopModule": [("file_name", "string!"), ("binary", "Binary!")],
    "Model": [("type", "string!"), ("version", "string!"), ("time", "string!"),
              ("chip", "string!"), ("net", "[Net]!"), ("neuron_size", "u64"),
              ("kernel_module", "KernelModule"), ("device_num", "u32"),
              ("cpuop_module", "CpuopModule"), ("bmodel_type", "u32"), ("lib_backend", "Binary")],
}
ROOT = "Model"

#: struct name -> (struct format, alignment)
STRUCTS = {"Binary": (struct.Struct("<QQ"), 8), "RelEntry": (struct.Struct("<III"), 4)}
_SCALARS = {"u8": "B", "i32": "i", "u32": "I", "u64": "Q", "f32": "f"}

#: the C++ verifier's default cap on tables; we add the buffer size so an unshared tree of
#: any size passes, while sharing (a DAG) cannot blow the expanded walk up beyond it.
MAX_EXTRA_COST = 1_000_000
_MAX_OFFSET = 0x7FFFFFFF  # uoffsets are read as signed by the C++ verifier


_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_VTABLE_HEAD = struct.Struct("<HH")
_SCALAR, _STRUCT, _STRING, _TABLE, _VECTOR = range(5)


class _Field:
    """One schema field, pre-digested for the hot loop in Walker.table()."""

    __slots__ = ("name", "kind", "arg", "required", "default", "struct", "size", "align")

    def __init__(self, name: str, spec: str) -> None:
        self.name = name
        self.required = spec.endswith("!")
        base, _, default = spec.rstrip("!").partition("=")
        self.default: Any = None
        self.arg = base
        self.struct = _U32  # inline part of offset fields: a uoffset
        if base.startswith("["):
            self.kind, self.arg = _VECTOR, base[1:-1]
        elif base in _SCALARS:
            self.kind, self.struct = _SCALAR, struct.Struct("<" + _SCALARS[base])
            self.default = float(default or 0) if base == "f32" else int(default or 0)
        elif base in STRUCTS:
            self.kind, self.struct = _STRUCT, STRUCTS[base][0]
        elif base == "string":
            self.kind = _STRING
        else:
            self.kind = _TABLE
        self.size = self.struct.size
        self.align = STRUCTS[base][1] if self.kind == _STRUCT else self.size


_FIELDS = {name: [_Field(n, s) for n, s in fields] for name, fields in SCHEMA.items()}


def _damaged(what: str) -> Corrupt:
    return Corrupt(f"metadata is damaged: {what}")


class Walker:
    """Decode one FlatBuffer. Create a new Walker per buffer."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.n = len(buf)
        self.cost = 0
        self.max_cost = self.n + MAX_EXTRA_COST
        self._seen: dict[tuple[int, str], tuple[Any, int]] = {}

    # ------------------------------------------------------------ primitives

    def _need(self, pos: int, size: int, align: int, what: str) -> None:
        if pos < 0 or size < 0 or pos + size > self.n:
            raise _damaged(f"{what} points outside the flatbuffer")
        if pos % align:
            raise _damaged(f"{what} is misaligned")

    def _u32(self, pos: int, what: str) -> int:
        self._need(pos, 4, 4, what)
        value: int = _U32.unpack_from(self.buf, pos)[0]
        return value

    def _follow(self, pos: int, what: str) -> int:
        """Target of the uoffset stored at ``pos``."""
        off = self._u32(pos, what)
        if off == 0 or off > _MAX_OFFSET:
            raise _damaged(f"{what} has an invalid offset")
        return pos + off

    def _charge(self, amount: int, what: str) -> None:
        self.cost += amount
        if self.cost > self.max_cost:
            raise _damaged(f"too many objects (at {what})")

    # ------------------------------------------------------------ objects

    def root(self) -> dict[str, Any]:
        if self.n < 8:
            raise _damaged("flatbuffer is too small")
        result: dict[str, Any] = self.table(self._follow(0, "root"), ROOT, ROOT)
        return result

    def table(self, pos: int, name: str, path: str) -> Any:
        """Decode table ``name`` at ``pos``; shared tables are decoded once, charged each time."""
        key = (pos, name)
        hit = self._seen.get(key)
        if hit is not None:
            self._charge(hit[1], path)
            return hit[0]
        before = self.cost
        self._charge(1, path)
        buf = self.buf
        self._need(pos, 4, 4, path)
        vt = pos - _I32.unpack_from(buf, pos)[0]
        self._need(vt, 4, 2, path + " vtable")
        vt_len, tbl_len = _VTABLE_HEAD.unpack_from(buf, vt)
        if vt_len < 4 or vt_len % 2 or tbl_len < 4:
            raise _damaged(f"{path} has a bad vtable")
        self._need(vt, vt_len, 2, path + " vtable")
        self._need(pos, tbl_len, 4, path)
        slots = struct.unpack_from(f"<{(vt_len - 4) // 2}H", buf, vt + 4)
        out: dict[str, Any] = {}
        for i, f in enumerate(_FIELDS[name]):
            voff = slots[i] if i < len(slots) else 0
            if voff == 0:
                if f.required:
                    raise _damaged(f"required field {path}.{f.name} is missing")
                out[f.name] = f.default
                continue
            # The table lies inside the buffer, so a field inside the table does too.
            if voff + f.size > tbl_len:
                raise _damaged(f"{path}.{f.name} lies outside its table")
            fpos = pos + voff
            if fpos % f.align:
                raise _damaged(f"{path}.{f.name} is misaligned")
            kind = f.kind
            if kind == _SCALAR:
                out[f.name] = f.struct.unpack_from(buf, fpos)[0]
            elif kind == _STRUCT:
                out[f.name] = f.struct.unpack_from(buf, fpos)
            else:
                off = _U32.unpack_from(buf, fpos)[0]
                if off == 0 or off > _MAX_OFFSET:
                    raise _damaged(f"{path}.{f.name} has an invalid offset")
                target, fpath = fpos + off, f"{path}.{f.name}"
                if kind == _STRING:
                    out[f.name] = self.string(target, fpath)
                elif kind == _TABLE:
                    out[f.name] = self.table(target, f.arg, fpath)
                else:
                    out[f.name] = self.vector(target, f.arg, fpath)
        self._seen[key] = (out, self.cost - before)
        return out

    def string(self, pos: int, path: str) -> bytes:
        length = self._u32(pos, path)
        self._need(pos + 4, length + 1, 1, path)
        if self.buf[pos + 4 + length] != 0:
            raise _damaged(f"{path} is not terminated")
        self._charge(1 + length // 64, path)
        return bytes(self.buf[pos + 4:pos + 4 + length])

    def vector(self, pos: int, elem: str, path: str) -> Any:
        key = (pos, "[" + elem)
        hit = self._seen.get(key)
        if hit is not None:
            self._charge(hit[1], path)
            return hit[0]
        before = self.cost
        count = self._u32(pos, path)
        start = pos + 4
        if elem in _SCALARS:
            fmt = "<" + _SCALARS[elem]
            self._need(start, count * struct.calcsize(fmt), 1, path)
            self._charge(1 + count // 8, path)
            value: Any = (bytes(self.buf[start:start + count]) if elem == "u8"
                          else struct.unpack_from(f"<{count}{fmt[1]}", self.buf, start))
        elif elem in STRUCTS:
            sfmt, _ = STRUCTS[elem]
            self._need(start, count * sfmt.size, 1, path)
            self._charge(1 + count, path)
            value = [sfmt.unpack_from(self.buf, start + i * sfmt.size) for i in range(count)]
        else:
            self._need(start, count * 4, 4, path)
            self._charge(1, path)
            value = []
            for i, off in enumerate(struct.unpack_from(f"<{count}I", self.buf, start)):
                if off == 0 or off > _MAX_OFFSET:
                    raise _damaged(f"{path}[{i}] has an invalid offset")
                value.append(self.table(start + 4 * i + off, elem, f"{path}[{i}]"))
        self._seen[key] = (value, self.cost - before)
        return value


def decode(buf: bytes) -> dict[str, Any]:
    """Verify and decode a bmodel FlatBuffer; raises Corrupt, never anything else on bad bytes."""
    try:
        return Walker(buf).root()
    except Corrupt:
        raise
    except (IndexError, struct.error, ValueError, OverflowError, RecursionError) as e:
        # Belt and braces: the checks above should make these unreachable.
        raise Corrupt(f"metadata is damaged ({type(e).__name__})") from None
