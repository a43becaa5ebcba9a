"""bmcrypt.bmodel writer and the synthetic edge cases it builds, checked by our reader and by
the vendor's model_tool (which must accept every file and print the numbers we compute)."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import synth

from bmcrypt.bmodel import BinaryRegion, build_bmodel, read_bmodel, write_bmodel
from bmcrypt.bmodel._fbs.bmodel.CoreCommands import CoreCommandsT
from bmcrypt.bmodel.header import parse_header

ROOT = Path(__file__).resolve().parent.parent
MLP = ROOT / "tests" / "fixtures" / "mlp_bm1684x_f16_nokernel.bmodel"


def write(tmp_path: Path, data: bytes, name: str = "s.bmodel") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def assert_tiles(path: Path) -> None:
    m = read_bmodel(path)
    pos = 0
    for part in m.layout:
        assert part.offset == pos and part.size > 0, part
        pos = part.end
    assert pos == m.file_size == sum(p.size for p in m.layout)


# ---------------------------------------------------------------- the writer


def test_aligned_layout_matches_vendor_convention(tmp_path: Path) -> None:
    data = synth.simple(align=4096)
    h = parse_header(data[:64])
    assert h.binary_offset % 4096 == 0 and h.binary_size % 4096 == 0
    assert len(data) == h.end
    m = read_bmodel(write(tmp_path, data))
    assert all(c.offset % 4096 == 0 for c in m.coeff_regions)


def test_compact_layout_has_no_padding(tmp_path: Path) -> None:
    region = BinaryRegion()
    st = synth.stage(region, coeff=b"w" * 1000, bdc=100, gdma=60)
    data = build_bmodel(synth.model([synth.net("n", [st])]), region, align=1)
    h = parse_header(data[:64])
    assert h.binary_size == 1000 + 100 + 60 == region.size
    m = read_bmodel(write(tmp_path, data))
    assert [p.kind for p in m.layout] == ["header", "flatbuffer", "coeff", "commands", "commands"]


def test_write_to_path_and_file_object_equal_build(tmp_path: Path) -> None:
    region = BinaryRegion(align=4096)
    m = synth.model([synth.net("n", [synth.stage(region)])])
    expected = build_bmodel(m, region)
    buf = io.BytesIO()
    assert write_bmodel(buf, m, region) == len(expected)
    assert buf.getvalue() == expected
    write_bmodel(tmp_path / "p.bmodel", m, region)
    assert (tmp_path / "p.bmodel").read_bytes() == expected


def test_region_place_keeps_offsets_and_fills_gaps() -> None:
    region = BinaryRegion()
    b = region.place(100, b"abc")
    assert (b.start, b.size, region.size) == (100, 3, 103)
    region.reserve(200)
    assert b"".join(bytes(c) for c in region.chunks()) == bytes(100) + b"abc" + bytes(97)


def test_region_refuses_overlapping_blobs() -> None:
    region = BinaryRegion()
    region.place(0, b"abcd")
    region.place(2, b"xy")
    with pytest.raises(ValueError, match="overlap"):
        list(region.chunks())


def test_add_aligns_each_blob() -> None:
    region = BinaryRegion(align=64)
    assert [region.add(b"x" * n).start for n in (1, 64, 65)] == [0, 64, 128]


# ---------------------------------------------------------------- synthetic edge cases


def _core_commands(align: int = 4096) -> bytes:
    """A multi-core style subnet: core_commands with cdma/sdma/hau blobs."""
    region = BinaryRegion(align=align)
    core = CoreCommandsT()
    core.gdmaTiuCommands = [synth.cmd_group(region, 300, 500)]
    core.sdmaCommands = [region.add(b"s" * 100)]
    core.hauCommands = [region.add(b"h" * 200)]
    core.cdmaCommands = [region.add(b"c" * 300)]
    sub = synth.subnet(groups=[synth.cmd_group(region, 64, 192)], core_commands=[core, core])
    st = synth.stage(region, subnets=[sub])
    return build_bmodel(synth.model([synth.net("cores", [st])]), region, align=align)


def _cpu_and_dynamic(align: int = 4096) -> bytes:
    """Three subnets (static TPU, CPU with weights, dynamic TPU) plus a second net."""
    region = BinaryRegion(align=align)
    subs = [synth.subnet(groups=[synth.cmd_group(region, 128, 128)]),
            synth.subnet(mode=1, sid=1, cpu_param=[
                synth.cpu_param(region, b"p" * 16, [b"a" * 100, b"b" * 40, b"a" * 100])]),
            synth.subnet(is_dynamic=1, ir_len=50, sid=2)]
    first = synth.stage(region, subnets=subs, cpu_mem_size=77, ctx_size=50000)
    second = synth.stage(region, coeff=b"z" * 10, ctx_size=9000)
    nets = [synth.net("mixed", [first]), synth.net("plain", [second])]
    return build_bmodel(synth.model(nets), region, align=align)


def _bm1684(align: int = 4096) -> bytes:
    """BM1684 counts commands by number and adds the largest IO buffer to runtime."""
    region = BinaryRegion(align=align)
    st = synth.stage(region, inputs=[synth.tensor("x", [3, 100, 7], 2)],
                     outputs=[synth.tensor("y", [1, 50], 0)])
    return build_bmodel(synth.model([synth.net("old", [st])], chip="BM1684"), region, align=align)


def _dtypes_and_quant(align: int = 4096) -> bytes:
    region = BinaryRegion(align=align)
    ins = [synth.tensor(f"in{c}", [1, c + 1], c, scale=0.5, zero_point=c - 3) for c in range(11)]
    st = synth.stage(region, inputs=ins, outputs=[synth.tensor("out", [2, 2], 8)])
    return build_bmodel(synth.model([synth.net("types", [st])]), region, align=align)


def _trailing(align: int = 1) -> bytes:
    region = BinaryRegion(align=align)
    m = synth.model([synth.net("n", [synth.stage(region)])])
    return build_bmodel(m, region, align=align, trailing=b"junk at the end")


CASES: dict[str, Callable[[], bytes]] = {
    **synth.EDGE_CASES,
    "many_nets": synth.many_nets,  # the full 40
    **{f"addr_mode_{k}": (lambda k=k: synth.addr_mode(k)) for k in range(5)},
    "core_commands": _core_commands,
    "cpu_and_dynamic": _cpu_and_dynamic,
    "bm1684": _bm1684,
    "dtypes_and_quant": _dtypes_and_quant,
    "trailing": _trailing,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_synthetic_layout_tiles_file(tmp_path: Path, case: str) -> None:
    assert_tiles(write(tmp_path, CASES[case]()))


@pytest.mark.runtime
@pytest.mark.parametrize("case", sorted(CASES))
def test_synthetic_matches_model_tool(tmp_path: Path, vendor_dir: Path, case: str) -> None:
    p = write(tmp_path, CASES[case]())
    assert synth.our_info(p) == synth.model_tool_info(vendor_dir, p)


def test_many_nets(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, synth.many_nets(40)))
    assert [n.name for n in m.nets] == [f"net{i}" for i in range(40)]
    assert m.device_mem.runtime == 5 * 4096  # largest ctx_size of single-subnet nets


def test_multi_stage_shares_one_coeff_region(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, synth.multi_stage()))
    (net,) = m.nets
    assert [s.inputs[0].shape for s in net.stages] == [(1, 16), (2, 16), (4, 16)]
    assert len(m.coeff_regions) == 1 and m.device_mem.weight == 3000
    # model_tool accounts every stage as stage 0: 3 x stage 0's commands, stage 0's ctx
    assert m.device_mem.instruct == 3 * (256 + 512) and m.device_mem.runtime == 8192


def test_shared_coeff_is_one_part_with_both_labels(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, synth.shared_coeff()))
    (part,) = [p for p in m.layout if p.kind == "coeff"]
    assert part.label == "a[0] coeff, b[0] coeff" and part.size == 5000


def test_duplicated_coeff_counts_once_but_stays_two_regions(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, synth.duplicated_coeff()))
    a, b = m.coeff_regions
    assert a.check_code == b.check_code and a.offset != b.offset
    assert m.device_mem.weight == 5000


def test_empty_coeff_has_no_layout_part(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, synth.empty_coeff()))
    assert m.nets[0].stages[0].coeff is not None and m.nets[0].stages[0].coeff.size == 0
    assert not [p for p in m.layout if p.kind == "coeff"]
    assert m.device_mem.weight == 0


def test_dynamic_net(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, synth.dynamic_net()))
    assert m.nets[0].dynamic and m.device_mem.instruct == 123 * 4
    assert [p.kind for p in m.layout if p.kind not in ("gap",)][2:] == ["coeff", "ir"]


@pytest.mark.parametrize("mode", range(5))
def test_addr_modes(tmp_path: Path, mode: int) -> None:
    net = read_bmodel(write(tmp_path, synth.addr_mode(mode))).nets[0]
    assert net.addr_mode == mode and net.stages[0].io_size == 16384
    assert net.addr_mode_name == ("basic", "io alone", "io tag", "io tag fuse", "io reloc")[mode]


def test_core_commands_counting(tmp_path: Path) -> None:
    # two cores: each counts the subnet's own groups (64 + 192) and its cdma blobs (300)
    m = read_bmodel(write(tmp_path, _core_commands()))
    assert m.device_mem.instruct == 2 * (64 + 192 + 300)


def test_cpu_weights_and_multi_subnet_runtime(tmp_path: Path) -> None:
    m = read_bmodel(write(tmp_path, _cpu_and_dynamic()))
    assert (m.host_mem.weight, m.host_mem.runtime) == (140, 77 * 4)
    # "mixed" (multi-subnet) is not the last net, so model_tool only keeps the max of the others
    assert m.device_mem.runtime == 9000


def test_large_coeff(tmp_path: Path) -> None:
    size = 64 * synth.MiB
    region = BinaryRegion(align=4096)
    data = bytes(size)
    m = synth.model([synth.net("big", [synth.stage(region, coeff=data)])])
    p = tmp_path / "big.bmodel"
    write_bmodel(p, m, region)
    bm = read_bmodel(p)
    (c,) = bm.coeff_regions
    assert c.size == size and c.check_code == hashlib.sha256(data).digest()
    assert bm.device_mem.weight == size
    assert_tiles(p)


@pytest.mark.runtime
def test_large_coeff_matches_model_tool(tmp_path: Path, vendor_dir: Path) -> None:
    p = write(tmp_path, synth.large_coeff(64 * synth.MiB))
    assert synth.our_info(p) == synth.model_tool_info(vendor_dir, p)


def test_overlapping_references_merge_into_one_part(tmp_path: Path) -> None:
    region = BinaryRegion()
    blob = region.add(b"w" * 1000)
    a = synth.stage(region, coeff=synth.coeff_mem(synth.make_binary(0, 600), b"a"))
    b = synth.stage(region, coeff=synth.coeff_mem(synth.make_binary(400, 600), b"b"))
    assert b.subNet is not None and b.subNet[0].cmdGroup is not None
    b.subNet[0].cmdGroup[0].binaryBdc = synth.make_binary(900, 200)  # into the next blob
    data = build_bmodel(synth.model([synth.net("a", [a]), synth.net("b", [b])]), region, align=1)
    m = read_bmodel(write(tmp_path, data))
    first = m.layout[2]
    assert (first.kind, first.offset - m.header.binary_offset, first.size) == ("overlap", 0, 1000 + 256)
    # b's bdc reaches into a's bdc blob (1000..1256): four references, one part
    assert first.label == "a[0] coeff, b[0] coeff, b[0] bdc (+1 more)"
    assert blob.size == 1000
    assert_tiles(write(tmp_path, data))


def test_same_kind_overlap_keeps_its_kind(tmp_path: Path) -> None:
    region = BinaryRegion()
    region.add(b"w" * 1000)
    stages = [synth.stage(region, coeff=synth.coeff_mem(synth.make_binary(s, 600), bytes([s % 256])),
                          bdc=0, gdma=0, subnets=[synth.subnet(is_dynamic=1)])
              for s in (0, 300)]
    data = build_bmodel(synth.model([synth.net("n", stages)]), region, align=1)
    m = read_bmodel(write(tmp_path, data))
    assert [(p.kind, p.size) for p in m.layout[2:]] == [("coeff", 900), ("gap", 100)]


@pytest.mark.parametrize("seed", range(3))
def test_random_models_tile(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for i in range(10):
        assert_tiles(write(tmp_path, synth.random_model(rng), f"r{i}.bmodel"))


@pytest.mark.runtime
def test_random_models_match_model_tool(tmp_path: Path, vendor_dir: Path) -> None:
    """The memory formula, many fields at once: 40 random models, every chip family."""
    rng = random.Random(20261124)
    for i in range(40):
        p = write(tmp_path, synth.random_model(rng), f"r{i}.bmodel")
        assert synth.our_info(p) == synth.model_tool_info(vendor_dir, p), f"model {i}"
