"""bmcrypt.bmodel reader: what a plain bmodel parses to, and how each kind of bad input fails."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import struct
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import flatbuffers
import pytest
import synth

from bmcrypt.bmodel import (
    EncryptionState,
    build_header,
    dtype_name,
    open_mapped,
    parse_header,
    probe_file,
    probe_header,
    read_bmodel,
    read_raw,
)
from bmcrypt.bmodel._walk import SCHEMA, STRUCTS
from bmcrypt.bmodel.writer import BinaryRegion, build_bmodel, make_binary, pack_flatbuffer
from bmcrypt.errors import (
    AlreadyEncrypted,
    BmcryptError,
    Corrupt,
    InputFileError,
    NotABmodel,
    Truncated,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MLP = FIXTURES / "mlp_bm1684x_f16_nokernel.bmodel"
QWEN = FIXTURES / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
QWEN_NETS = ["embedding", "lm_head", "block_cache_0", "block_cache_1", "embedding_cache",
             "block_0", "block_1"]


def write(tmp_path: Path, data: bytes, name: str = "m.bmodel") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def assert_tiles(m) -> None:  # type: ignore[no-untyped-def]
    pos = 0
    for part in m.layout:
        assert part.offset == pos and part.size > 0, part
        pos = part.end
    assert pos == m.file_size == sum(p.size for p in m.layout)


# ---------------------------------------------------------------- the schema and generated code


def _fbs_fields() -> dict[str, list[tuple[str, str]]]:
    """schemas/bmodel.fbs tables as (name, type) lists in the walker's notation."""
    text = re.sub(r"//.*", "", (ROOT / "schemas" / "bmodel.fbs").read_text())
    names = {"ubyte": "u8", "int": "i32", "uint": "u32", "ulong": "u64", "float": "f32"}
    out = {}
    for name, body in re.findall(r"table (\w+) \{([^}]*)\}", text):
        fields = []
        for fname, ftype, rest in re.findall(r"(\w+)\s*:\s*([\w\[\]]+)([^;]*);", body):
            base = ftype.strip("[]")
            t = names.get(base, base)
            t = f"[{t}]" if ftype.startswith("[") else t
            m = re.search(r"=\s*([-\d.]+)", rest)
            if m and float(m[1]) != 0:  # the walker only spells out non-zero defaults
                t += f"={m[1]}"
            if "required" in rest:
                t += "!"
            fields.append((fname, t))
        out[name] = fields
    return out


def test_walker_schema_matches_fbs() -> None:
    assert _fbs_fields() == SCHEMA
    assert set(STRUCTS) == {"Binary", "RelEntry"}


def test_committed_generated_code_matches_schema(tmp_path: Path) -> None:
    if not Path(os.environ.get("FLATC", "/usr/bin/flatc")).exists():
        pytest.skip("flatc not installed (apt install flatbuffers-compiler); cannot regenerate")
    subprocess.run([str(ROOT / "scripts" / "gen-schema.sh"), str(tmp_path)], check=True)
    committed = ROOT / "bmcrypt" / "bmodel" / "_fbs"
    new = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py"))
    assert new == sorted(p.relative_to(committed) for p in committed.rglob("*.py"))
    for rel in new:
        assert (tmp_path / rel).read_text() == (committed / rel).read_text(), rel


# ---------------------------------------------------------------- header


def test_header_round_trip() -> None:
    h = parse_header(build_header(4032, 28672))
    assert (h.header_size, h.flatbuffers_size, h.binary_size, h.binary_offset) == (64, 4032, 28672, 4096)


def test_binary_size_is_u64() -> None:
    assert parse_header(build_header(10, 5 << 32)).binary_size == 5 << 32


def test_probe_plain_fixture() -> None:
    p = probe_header(MLP.read_bytes()[:64])
    assert p.state is EncryptionState.PLAIN and p.header_size == 64 and p.flatbuffers_size == 4032


def test_probe_vendor_layout_header_size_changes() -> None:
    data = bytearray(build_header(100, 200))
    data[4:8] = struct.pack("<I", 8 + 72)  # header_size = 8 + len(E(tail))
    p = probe_header(bytes(data[:12]))
    assert p.state is EncryptionState.ENCRYPTED_LAYOUT and p.header_size == 80
    assert p.tag == data[8:12] and p.flatbuffers_size is None


def test_probe_bitwise_not_cipher_keeps_64() -> None:
    data = bytearray(build_header(100, 200))
    data[8:] = bytes(b ^ 0xFF for b in data[8:])
    assert probe_header(bytes(data)).state is EncryptionState.ENCRYPTED_LAYOUT


def test_probe_exposes_bytes_8_to_12() -> None:
    data = bytearray(build_header(0, 0))
    data[4:12] = struct.pack("<I", 200) + b"BMCE"
    assert probe_header(bytes(data)).tag == b"BMCE"


def test_parse_header_refuses_encrypted_layout() -> None:
    data = bytearray(build_header(1, 2))
    data[30] = 1
    with pytest.raises(Corrupt):
        parse_header(bytes(data))


@pytest.mark.parametrize("fb,binary", [(-1, 0), (1 << 32, 0), (0, 1 << 64)])
def test_build_header_refuses_sizes_that_do_not_fit(fb: int, binary: int) -> None:
    with pytest.raises(ValueError):
        build_header(fb, binary)


def test_probe_file(tmp_path: Path) -> None:
    assert probe_file(MLP).state is EncryptionState.PLAIN
    data = bytearray(MLP.read_bytes()[:100])
    data[4:12] = struct.pack("<I", 72) + b"BMCE"
    probe = probe_file(write(tmp_path, bytes(data)))
    assert (probe.state, probe.header_size, probe.tag) == (EncryptionState.ENCRYPTED_LAYOUT, 72, b"BMCE")


@pytest.mark.parametrize("make,error", [
    (lambda d: d / "missing", InputFileError),
    (lambda d: d, InputFileError),
    (lambda d: write(d, b""), NotABmodel),
    (lambda d: write(d, b"\xee\xaa\x55\xff\x40"), Truncated),
])
def test_probe_file_errors(tmp_path: Path, make, error) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error):
        probe_file(make(tmp_path))


# ---------------------------------------------------------------- the fixtures


def test_mlp_parses() -> None:
    m = read_bmodel(MLP)
    assert (m.chip, m.version_string, m.file_size) == ("BM1684X", "B.2.2+v1.30.2-20260831", 32768)
    (net,) = m.nets
    assert (net.name, net.dynamic, net.addr_mode, len(net.stages)) == ("mlp", False, 0, 1)
    s = net.stages[0]
    assert [(t.name, t.shape, t.dtype) for t in s.inputs] == [("x", (1, 64), "float32")]
    assert [(t.name, t.shape, t.dtype) for t in s.outputs] == [("y_Gemm_f32", (1, 32), "float32")]
    assert s.coeff is not None and (s.coeff.offset, s.coeff.size, s.coeff.start) == (4096, 20480, 0)
    assert (s.bdc_bytes, s.gdma_bytes, s.ctx_size) == (512, 1280, 12288)
    assert m.kernel_module is not None and m.kernel_module.name == "" and m.kernel_module.span.size == 0


def test_qwen_parses() -> None:
    m = read_bmodel(QWEN)
    assert [n.name for n in m.nets] == QWEN_NETS
    assert [n.addr_mode for n in m.nets] == [0, 0, 1, 1, 0, 0, 0]
    assert m.net("lm_head").stages[0].subnet_count == 2
    # embedding/embedding_cache and block_i/block_cache_i share their weights
    assert len(m.coeff_regions) == 4
    assert m.net("embedding").stages[0].coeff == m.net("embedding_cache").stages[0].coeff


@pytest.mark.parametrize("path,expected", [
    (MLP, ((34560, 20480, 1792, 12288), (0, 0, 0))),
    (QWEN, ((1346380, 1191936, 52044, 102400), (0, 0, 0))),
])
def test_fixture_memory_as_model_tool_prints_it(path: Path, expected) -> None:  # type: ignore[no-untyped-def]
    m = read_bmodel(path)
    d, h = m.device_mem, m.host_mem
    assert ((d.total, d.weight, d.instruct, d.runtime), (h.total, h.weight, h.runtime)) == expected


@pytest.mark.runtime
@pytest.mark.parametrize("path", [MLP, QWEN], ids=["mlp", "qwen"])
def test_fixture_matches_model_tool(vendor_dir: Path, path: Path) -> None:
    assert synth.our_info(path) == synth.model_tool_info(vendor_dir, path)


@pytest.mark.parametrize("path", [MLP, QWEN], ids=["mlp", "qwen"])
def test_fixture_layout_tiles_file(path: Path) -> None:
    m = read_bmodel(path)
    assert_tiles(m)
    kinds = [p.kind for p in m.layout]
    assert kinds[:3] == ["header", "flatbuffer", "coeff"]
    coeff_parts = [p for p in m.layout if p.kind == "coeff"]
    assert {(p.offset, p.size) for p in coeff_parts} == {(c.offset, c.size) for c in m.coeff_regions}


def test_shared_coeff_is_one_layout_part() -> None:
    part = next(p for p in read_bmodel(QWEN).layout if p.kind == "coeff")
    assert part.label == "embedding[0] coeff, embedding_cache[0] coeff"


@pytest.mark.parametrize("path", [MLP, QWEN], ids=["mlp", "qwen"])
def test_check_codes_are_sha256_of_mapped_coeffs(path: Path) -> None:
    with open_mapped(path) as mb:
        for c in read_bmodel(path).coeff_regions:
            with mb.binary(c.start, c.size) as view:
                assert hashlib.sha256(view).digest() == c.check_code


def test_mapped_binary_refuses_ranges_outside_the_region() -> None:
    with open_mapped(MLP) as mb:
        with pytest.raises(Corrupt, match="outside"):
            mb.binary(28672 - 10, 11)
        with mb.binary(28672 - 10, 10) as view:
            assert len(view) == 10


def test_raw_unpack_repack_round_trip(tmp_path: Path) -> None:
    raw = read_raw(QWEN)
    fb = pack_flatbuffer(raw.unpack())
    region = BinaryRegion()
    with open_mapped(QWEN) as mb, mb.binary(0, raw.header.binary_size) as view:
        region.place(0, bytes(view))
    out = write(tmp_path, build_bmodel(fb, region, align=1))
    a, b = read_bmodel(QWEN), read_bmodel(out)
    assert b.file_size < a.file_size  # compact: no 4 KiB padding
    assert (a.device_mem, a.host_mem) == (b.device_mem, b.host_mem)
    shift = b.header.binary_offset - a.header.binary_offset
    for na, nb in zip(a.nets, b.nets, strict=True):
        for sa, sb in zip(na.stages, nb.stages, strict=True):
            assert sa.coeff is not None and sb.coeff is not None
            assert replace(sa.coeff, offset=sa.coeff.offset + shift) == sb.coeff
            assert replace(sa, coeff=None) == replace(sb, coeff=None)


@pytest.mark.parametrize("code,name", [(0, "float32"), (1, "float16"), (2, "int8"), (3, "uint8"),
                                       (4, "int16"), (5, "uint16"), (6, "int32"), (7, "uint32"),
                                       (8, "bfloat16"), (9, "int4"), (10, "uint4"),
                                       (11, "unknown(11)"), (2**32 - 1, "unknown(4294967295)")])
def test_dtype_names(code: int, name: str) -> None:
    assert dtype_name(code) == name


# ---------------------------------------------------------------- bad input, one error each


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="no such file"):
        read_bmodel(tmp_path / "nope.bmodel")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="directory"):
        read_bmodel(tmp_path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputFileError, match="not a regular file"):
        read_bmodel(tmp_path / "fifo")


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(NotABmodel, match="empty"):
        read_bmodel(write(tmp_path, b""))


def test_three_bytes(tmp_path: Path) -> None:
    with pytest.raises(NotABmodel):
        read_bmodel(write(tmp_path, b"abc"))


def test_three_bytes_of_magic_is_truncated(tmp_path: Path) -> None:
    with pytest.raises(Truncated):
        read_bmodel(write(tmp_path, b"\xee\xaa\x55"))


def test_wrong_magic(tmp_path: Path) -> None:
    data = bytearray(MLP.read_bytes())
    data[0] ^= 1
    with pytest.raises(NotABmodel, match="magic"):
        read_bmodel(write(tmp_path, bytes(data)))


@pytest.mark.parametrize("path", [MLP, QWEN], ids=["mlp", "qwen"])
def test_truncated_at_many_lengths(tmp_path: Path, path: Path) -> None:
    data = path.read_bytes()
    fb_end = parse_header(data[:64]).binary_offset
    lengths = sorted(set(range(4, 130)) | set(range(130, len(data), 9973))
                     | {fb_end - 1, fb_end, fb_end + 1, len(data) - 1})
    p = tmp_path / "t.bmodel"
    for n in lengths:
        p.write_bytes(data[:n])
        with pytest.raises(Truncated):
            read_bmodel(p)


@pytest.mark.parametrize("fb_size,bin_size", [(2**32 - 1, 0), (0, 2**64 - 1),
                                              (2**32 - 1, 2**64 - 1), (4032, 2**63)])
def test_header_sizes_overflowing(tmp_path: Path, fb_size: int, bin_size: int) -> None:
    data = bytearray(MLP.read_bytes())
    data[8:20] = struct.pack("<IQ", fb_size, bin_size)
    with pytest.raises(Truncated, match="header declares"):
        read_bmodel(write(tmp_path, bytes(data)))


def test_flatbuffer_over_cap_is_refused_without_reading(tmp_path: Path) -> None:
    p = tmp_path / "sparse.bmodel"
    with open(p, "wb") as f:
        f.write(build_header((1 << 30) + 8, 0))
        f.truncate(64 + (1 << 30) + 8)  # sparse: costs no disk
    with pytest.raises(Corrupt, match="1 GiB"):
        read_bmodel(p)


def test_trailing_bytes_are_a_layout_part(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, MLP.read_bytes() + b"extra"))
    assert m.layout[-1].kind == "trailing" and m.layout[-1].size == 5
    assert_tiles(m)


def _vendor_encrypted() -> bytes:
    data = bytearray(MLP.read_bytes())
    data[8:64] = bytes(b ^ 0xFF for b in data[8:64])
    return bytes(data)


def _bmcrypt_tagged() -> bytes:
    data = bytearray(MLP.read_bytes())
    data[4:12] = struct.pack("<I", 128) + b"BMCE"
    return bytes(data)


@pytest.mark.parametrize("make", [_vendor_encrypted, _bmcrypt_tagged])
def test_the_plain_reader_refuses_any_encrypted_header(tmp_path: Path, make) -> None:
    with pytest.raises(AlreadyEncrypted, match="encrypted"):
        read_bmodel(write(tmp_path, make()))


def test_the_container_tells_who_encrypted_a_file(tmp_path: Path) -> None:
    from bmcrypt.protect.container import FileState, file_state

    assert file_state(write(tmp_path, MLP.read_bytes(), "a")) == FileState.PLAIN
    assert file_state(write(tmp_path, _vendor_encrypted(), "b")) == FileState.FOREIGN
    assert file_state(write(tmp_path, _bmcrypt_tagged(), "c")) == FileState.BMCRYPT


def _with_fb(fb: bytes, binary: bytes = b"") -> bytes:
    return build_header(len(fb), len(binary)) + fb + binary


@pytest.mark.parametrize("fb,match", [
    (b"", "too small"),
    (b"\x00" * 16, "invalid offset"),
    (struct.pack("<I", 1 << 20) + bytes(12), "outside the flatbuffer"),
    (struct.pack("<I", 6) + bytes(12), "misaligned"),
    (struct.pack("<Ii", 4, -1000) + bytes(8), "vtable"),
])
def test_corrupt_flatbuffer(tmp_path: Path, fb: bytes, match: str) -> None:
    with pytest.raises(Corrupt, match=match):
        read_bmodel(write(tmp_path, _with_fb(fb)))


def test_flipped_flatbuffer_bytes_raise_only_format_errors(tmp_path: Path) -> None:
    data = MLP.read_bytes()
    p = tmp_path / "f.bmodel"
    for i in range(64, 64 + 1456, 5):
        d = bytearray(data)
        d[i] ^= 0xA5
        p.write_bytes(bytes(d))
        with contextlib.suppress(BmcryptError):
            read_bmodel(p)


def test_required_field_missing(tmp_path: Path) -> None:
    region = BinaryRegion()
    m = synth.model([synth.net("a", [synth.stage(region)])])
    m.chip = None
    with pytest.raises(Corrupt, match="required field Model.chip"):
        read_bmodel(write(tmp_path, build_bmodel(m, region, align=1)))


def test_unterminated_string(tmp_path: Path) -> None:
    region = BinaryRegion()
    fb = bytearray(pack_flatbuffer(synth.model([synth.net("abcdefgh", [synth.stage(region)])])))
    at = fb.index(b"abcdefgh\x00")
    fb[at + 8] = ord("!")
    with pytest.raises(Corrupt, match="not terminated"):
        read_bmodel(write(tmp_path, build_bmodel(bytes(fb), region, align=1)))


def test_invalid_utf8_name(tmp_path: Path) -> None:
    region = BinaryRegion()
    m = synth.model([synth.net("n", [synth.stage(region)])])
    m.net[0].name = b"\xff\xfe"
    with pytest.raises(Corrupt, match="UTF-8"):
        read_bmodel(write(tmp_path, build_bmodel(m, region, align=1)))


def test_net_without_stages(tmp_path: Path) -> None:
    region = BinaryRegion()
    m = synth.model([synth.net("n", [synth.stage(region)])])
    m.net[0].parameter = []
    with pytest.raises(Corrupt, match="no stages"):
        read_bmodel(write(tmp_path, build_bmodel(m, region, align=1)))


@pytest.mark.parametrize("where", ["coeff", "bdc", "kernel", "cpuop", "lib_backend", "ir",
                                   "empty_past_end"])
def test_binary_pointing_outside(tmp_path: Path, where: str) -> None:
    region = BinaryRegion()
    st = synth.stage(region, coeff=b"w" * 100)
    far = make_binary(region.size - 10, 11)
    kw: dict[str, Any] = {}
    assert st.coeffMem is not None
    if where == "coeff":
        st.coeffMem.binaryCoeff = far
    elif where == "bdc":
        st.subNet[0].cmdGroup[0].binaryBdc = far
    elif where == "ir":
        st.binaryIr = far
    elif where == "empty_past_end":
        st.netProfile = make_binary(region.size + 1, 0)
    elif where == "kernel":
        kw["kernel"] = ("k.so", far)
    elif where == "cpuop":
        kw["cpuop"] = ("c.so", far)
    else:
        kw["lib_backend"] = far
    m = synth.model([synth.net("n", [st])], **kw)
    with pytest.raises(Corrupt, match="points outside the file"):
        read_bmodel(write(tmp_path, build_bmodel(m, region, align=1)))


def test_coeff_without_binary(tmp_path: Path) -> None:
    region = BinaryRegion()
    st = synth.stage(region)
    assert st.coeffMem is not None
    st.coeffMem.binaryCoeff = None
    m = synth.model([synth.net("n", [st])])
    with pytest.raises(Corrupt, match="no binary_coeff"):
        read_bmodel(write(tmp_path, build_bmodel(m, region, align=1)))


def test_shared_subtrees_cannot_blow_up(tmp_path: Path) -> None:
    """2000 nets x 2000 stages, all the same two tables: 4 million to walk, 30 KB on disk."""
    b = flatbuffers.Builder(0)
    name = b.CreateString("t")
    b.StartObject(14)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    tensor = b.EndObject()
    b.StartVector(4, 1, 4)
    b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    b.StartObject(23)
    b.PrependUOffsetTRelativeSlot(0, tensors, 0)
    b.PrependUOffsetTRelativeSlot(1, tensors, 0)
    param = b.EndObject()

    def repeat(offset: int, n: int) -> int:
        b.StartVector(4, n, 4)
        for _ in range(n):
            b.PrependUOffsetTRelative(offset)
        return b.EndVector()

    params = repeat(param, 2000)
    net_name = b.CreateString("n")
    b.StartObject(6)
    b.PrependUOffsetTRelativeSlot(0, net_name, 0)
    b.PrependUOffsetTRelativeSlot(3, params, 0)
    net = b.EndObject()
    nets = repeat(net, 2000)
    strings = [b.CreateString(s) for s in ("B", "v", "t", "BM1684X")]
    b.StartObject(11)
    for i, s in enumerate(strings):
        b.PrependUOffsetTRelativeSlot(i, s, 0)
    b.PrependUOffsetTRelativeSlot(4, nets, 0)
    b.Finish(b.EndObject())
    with pytest.raises(Corrupt, match="too many objects"):
        read_bmodel(write(tmp_path, _with_fb(bytes(b.Output()))))


def test_read_raw_rejects_what_read_bmodel_rejects(tmp_path: Path) -> None:
    data = bytearray(MLP.read_bytes())
    data[64:68] = struct.pack("<I", 1 << 20)
    with pytest.raises(Corrupt):
        read_raw(write(tmp_path, bytes(data)))


def test_symlink_to_fixture_reads(tmp_path: Path) -> None:
    (tmp_path / "link.bmodel").symlink_to(MLP)
    assert read_bmodel(tmp_path / "link.bmodel").nets[0].name == "mlp"


def test_unreadable_file(tmp_path: Path) -> None:
    p = write(tmp_path, MLP.read_bytes())
    p.chmod(0)
    if os.access(p, os.R_OK):  # root reads anything
        pytest.skip("running as root: permissions are not enforced")
    with pytest.raises(InputFileError, match="permission"):
        read_bmodel(p)


def test_copy_of_fixture_reads_identically(tmp_path: Path) -> None:
    p = tmp_path / "copy.bmodel"
    shutil.copy(MLP, p)
    assert read_bmodel(p).nets == read_bmodel(MLP).nets


def test_mapped_binary_reaches_trailing_bytes(tmp_path: Path) -> None:
    p = write(tmp_path, MLP.read_bytes() + b"tail")
    with open_mapped(p) as mb, mb.binary(28672, 4) as view:
        assert bytes(view) == b"tail"
