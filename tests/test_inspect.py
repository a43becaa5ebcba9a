"""`bmcrypt inspect`: what it shows of plain, bmcrypt-encrypted and foreign models, and how it
fails.

The CLI runs in-process (``main([...])``); JSON output is parsed and, for the tests marked
``runtime``, compared field by field with what the vendor's ``model_tool --info`` prints.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import synth
from clitools import json_document

from bmcrypt.bmodel.writer import BinaryRegion, build_bmodel, make_binary
from bmcrypt.cli.main import main
from bmcrypt.crypto import Kind, Passphrase, UserKey, seal
from bmcrypt.errors import BmcryptError
from bmcrypt.inspect import KeyChoice, inspect_file
from bmcrypt.keys import generate_key_file
from bmcrypt.protect.opened import open_encrypted
from bmcrypt.workflow import encrypt_model

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MLP = FIXTURES / "mlp_bm1684x_f16_nokernel.bmodel"
QWEN = FIXTURES / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
QWEN_DYNAMIC = FIXTURES / "qwen2_tiny_bf16_seq64_dynamic_nokernel.bmodel"
ALL_FIXTURES = sorted(FIXTURES.glob("*.bmodel"))
PASSPHRASE = "correct horse battery staple"
Capsys = pytest.CaptureFixture[str]


# ---------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BMCRYPT_KEY_FILE", raising=False)
    monkeypatch.delenv("BMCRYPT_PASSPHRASE", raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main(["inspect", *(str(a) for a in args)])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def run_doc(capsys: pytest.CaptureFixture[str], *args: object) -> Any:
    """The whole `--json` document of a successful run, checked against its schema."""
    code, out, err = run(capsys, "--json", *args)
    assert code == 0, err
    assert err == ""
    return json_document(subprocess.CompletedProcess([], code, out, err), "inspect")


def run_json(capsys: pytest.CaptureFixture[str], *args: object) -> Any:
    """The entry of the one file inspected (`files[0]` of the document)."""
    doc = run_doc(capsys, *args)
    assert len(doc["files"]) == 1 and "comparison" not in doc
    return doc["files"][0]


def write(tmp_path: Path, data: bytes, name: str = "m.bmodel") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def assert_tiles(report: dict[str, Any]) -> None:
    pos = 0
    for part in report["layout"]:
        assert part["offset"] == pos and part["size"] > 0, part
        pos += part["size"]
    assert pos == report["size"] == report["layout_sum"]


def stage0_io(report: dict[str, Any]) -> list[list[Any]]:
    return [[(t["name"], t["shape"], t["dtype"]) for t in s["inputs"] + s["outputs"]]
            for n in report["nets"] for s in n["stages"][:1]]


class Encrypted:
    """Encrypted copies of the fixtures, made once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key_file = root / "model.key"
        self.key = generate_key_file(self.key_file)
        self.other_key_file = root / "other.key"
        generate_key_file(self.other_key_file)
        self.mlp = self._make(MLP, self.key, "mlp.enc.bmodel")
        self.qwen = self._make(QWEN, self.key, "qwen.enc.bmodel")
        self.mlp_passphrase = self._make(MLP, Passphrase(PASSPHRASE, log2n=10),
                                         "mlp.pass.bmodel")

    def _make(self, src: Path, secret: UserKey | Passphrase, name: str, **kw: Any) -> Path:
        out = self.root / name
        encrypt_model(src, secret, output=out, **kw)
        return out


@pytest.fixture(scope="session")
def enc(tmp_path_factory: pytest.TempPathFactory) -> Encrypted:
    return Encrypted(tmp_path_factory.mktemp("encrypted"))


# ---------------------------------------------------------------- plain models


def test_plain_fixture_json_has_every_documented_top_level_field(capsys: Capsys) -> None:
    r = run_json(capsys, QWEN)
    assert list(r) == ["path", "ok", "size", "encryption", "chip", "version", "time",
                       "kernel_module", "cpuop_module", "device_mem", "host_mem", "nets",
                       "coeff_regions", "layout", "layout_sum", "notes"]
    assert r["path"] == str(QWEN) and r["size"] == QWEN.stat().st_size
    assert r["encryption"] == {"state": "plain"}
    assert (r["chip"], r["version"]) == ("BM1684X", "B.2.2+v1.30.2-20260831")
    assert r["time"] == "Tue Nov 24 23:46:19 2026"
    assert set(r["device_mem"]) == {"total", "weight", "instruct", "runtime"}
    assert r["notes"] == []


def test_every_net_stage_and_tensor_is_listed_with_shape_dtype_scale_and_zero_point(
        capsys: Capsys) -> None:
    r = run_json(capsys, QWEN)
    assert [n["name"] for n in r["nets"]] == ["embedding", "lm_head", "block_cache_0",
                                               "block_cache_1", "embedding_cache", "block_0",
                                               "block_1"]
    cache0 = r["nets"][2]
    assert (cache0["dynamic"], cache0["addr_mode"], cache0["addr_mode_name"]) == (
        False, 1, "io alone")
    (stage,) = cache0["stages"]
    assert stage["inputs"][2] == {"name": "attention_mask", "shape": [1, 1, 1, 65],
                                  "dtype": "bfloat16", "scale": 1.0, "zero_point": 0}
    assert [t["name"] for t in stage["outputs"]] == ["output_states", "k_cache", "v_cache"]


def test_coeff_regions_carry_sha256_and_the_nets_that_share_them(capsys: Capsys) -> None:
    r = run_json(capsys, QWEN)
    regions = r["coeff_regions"]
    assert [c["used_by"] for c in regions] == [
        ["embedding[0]", "embedding_cache[0]"], ["lm_head[0]"],
        ["block_cache_0[0]", "block_0[0]"], ["block_cache_1[0]", "block_1[0]"]]
    assert all(re.fullmatch(r"[0-9a-f]{64}", c["sha256"]) for c in regions)
    assert not any(c["encrypted"] for c in regions)
    assert sum(c["size"] for c in regions) == r["device_mem"]["weight"] == 1191936
    embedding_cache = r["nets"][4]["stages"][0]["coeff"]
    assert embedding_cache == {"region": 0, "size": 262144, "sha256": regions[0]["sha256"],
                               "encrypted": False}


def test_stage_without_weights_has_coeff_null(tmp_path: Path, capsys: Capsys) -> None:
    r = run_json(capsys, write(tmp_path, synth.no_coeff()))
    assert r["nets"][0]["stages"][0]["coeff"] is None and r["coeff_regions"] == []


def test_every_stage_of_a_multi_stage_net_is_listed(tmp_path: Path, capsys: Capsys) -> None:
    r = run_json(capsys, write(tmp_path, synth.multi_stage()))
    stages = r["nets"][0]["stages"]
    assert [s["inputs"][0]["shape"] for s in stages] == [[1, 16], [2, 16], [4, 16]]
    assert {s["coeff"]["region"] for s in stages} == {0}
    assert r["coeff_regions"][0]["used_by"] == ["multi[0]", "multi[1]", "multi[2]"]


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_layout_parts_tile_the_file_and_add_up_to_its_size(capsys: Capsys, path: Path) -> None:
    assert_tiles(run_json(capsys, path))


def test_human_output_is_organised_like_model_tool_info(capsys: Capsys) -> None:
    code, out, err = run(capsys, QWEN)
    assert code == 0 and err == ""
    for expected in [
        "plain (not encrypted)", "chip           BM1684X", "version        B.2.2+v1.30.2-20260831",
        "created        Tue Nov 24 23:46:19 2026",
        "device mem     1346380 bytes (weight 1191936, instruct 52044, runtime 102400)",
        "host mem       0 bytes (weight 0, runtime 0)",
        "nets: 7 (7 static, 0 dynamic)", "net 2: block_cache_0  static, addr mode 1 (io alone)",
        "weights: 4 coeff regions, 1191936 bytes",
        "sum of the parts: 1294336 bytes = file size OK",
    ]:
        assert expected in out, expected
    assert re.search(r"input +attention_mask +\[1, 1, 1, 65\] +bfloat16 +scale 1 +zero point 0",
                     out)
    assert re.search(r"#0 +262144 +16384 +plain +embedding\[0\], embedding_cache\[0\]", out)
    assert "sha256 c034d1aab9cdaa55e0f3b1c7af43151ff4607ea6ddbee4915d5072fa6531f746" in out


def test_human_output_never_cuts_long_names(tmp_path: Path, capsys: Capsys) -> None:
    name = "a_very_long_tensor_name_" * 6 + "[with] [brackets]"
    region = BinaryRegion(align=1)
    st = synth.stage(region, inputs=[synth.tensor(name, [1, 2])])
    p = write(tmp_path, build_bmodel(synth.model([synth.net("n", [st])]), region, align=1))
    code, out, _ = run(capsys, p)
    assert code == 0 and name in out


# ---------------------------------------------------------------- the same numbers as model_tool


def json_as_tool_info(r: dict[str, Any]) -> synth.ToolInfo:
    """inspect --json in the shape of synth.parse_info(model_tool --info)."""
    info = synth.ToolInfo(r["version"], r["chip"])
    if r["kernel_module"] is not None:
        info.kernel_name, info.kernel_size = r["kernel_module"]["name"], r["kernel_module"]["size"]
    for n in r["nets"]:
        tn = synth.ToolNet(n["name"], "dynamic" if n["dynamic"] else "static", n["addr_mode"])
        for s in n["stages"]:
            tn.stages.append(
                [(d, t["name"], tuple(t["shape"]), t["dtype"], t["scale"], t["zero_point"])
                 for d, ts in (("input", s["inputs"]), ("output", s["outputs"])) for t in ts])
        info.nets.append(tn)
    d, h = r["device_mem"], r["host_mem"]
    info.device_mem = (d["total"], d["weight"], d["instruct"], d["runtime"])
    info.host_mem = (h["total"], h["weight"], h["runtime"])
    return info


def model_tool_info(vendor_dir: Path, path: Path) -> synth.ToolInfo:
    """synth.parse_info of `model_tool --info`, where the input dims it prints as maxima
    ("[max:1, max:64]") lose their prefix; ``.maxed`` lists those inputs (net, stage, name)."""
    r = subprocess.run([str(vendor_dir / "bin" / "model_tool"), "--info", str(path)],
                       capture_output=True, text=True, timeout=60, check=True)
    maxed: list[tuple[str, int, str]] = []
    net, stage = "", -1
    for line in r.stdout.splitlines():
        if m := re.match(r"net \d+: \[(.*)\]", line):
            net = m[1]
        elif m := re.match(r"stage (\d+)", line):
            stage = int(m[1])
        elif "max:" in line:
            maxed.append((net, stage, line.split(", ")[0]))
    info = synth.parse_info(r.stdout.replace("max:", ""))
    info.maxed = maxed  # type: ignore[attr-defined]
    return info


def json_maxed(r: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(n["name"], s["index"], f"input: {t['name']}") for n in r["nets"] for s in n["stages"]
            if s["max_input_shapes"] for t in s["inputs"]]


@pytest.mark.runtime
@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_json_equals_model_tool_info_on_every_fixture(
        capsys: Capsys, vendor_dir: Path, path: Path) -> None:
    r = run_json(capsys, path)
    tool = model_tool_info(vendor_dir, path)
    assert json_as_tool_info(r) == tool
    assert json_maxed(r) == tool.maxed  # type: ignore[attr-defined]


def test_dynamic_nets_inputs_are_shown_as_maxima_like_model_tool(capsys: Capsys) -> None:
    code, out, _ = run(capsys, QWEN_DYNAMIC)
    assert code == 0 and "net 5: block_0  dynamic" in out
    assert re.search(r"input +position_ids +\[max:1, max:64\] +int32", out)
    assert re.search(r"output +k_cache +\[1, 64, 1, 64\] +bfloat16", out)


def _cpu_subnets_and_quantised_io() -> bytes:
    region = BinaryRegion(align=4096)
    subs = [synth.subnet(groups=[synth.cmd_group(region, 128, 128)]),
            synth.subnet(mode=1, sid=1, cpu_param=[
                synth.cpu_param(region, b"p" * 16, [b"a" * 100, b"b" * 40])])]
    ins = [synth.tensor(f"in{c}", [1, c + 1], c, scale=0.5, zero_point=c - 3) for c in range(11)]
    first = synth.stage(region, subnets=subs, cpu_mem_size=77, ctx_size=50000, inputs=ins)
    second = synth.stage(region, coeff=b"z" * 10, ctx_size=9000)
    nets = [synth.net("mixed", [first]), synth.net("plain", [second])]
    return build_bmodel(synth.model(nets), region, align=4096)


def _max_shapes_in_one_stage() -> bytes:
    """model_tool prints "max:" dims per stage, wherever n_dynamic or h_w_dynamic is set."""
    region = BinaryRegion(align=4096)
    stages = [synth.stage(region, inputs=[synth.tensor("x", [b, 3]), synth.tensor("y", [b])])
              for b in (1, 2, 3)]
    stages[1].nDynamic, stages[2].hWDynamic = 1, 1
    return build_bmodel(synth.model([synth.net("batches", stages)]), region, align=4096)


def _bm1684() -> bytes:
    region = BinaryRegion(align=4096)
    st = synth.stage(region, inputs=[synth.tensor("x", [3, 100, 7], 2)],
                     outputs=[synth.tensor("y", [1, 50], 0)])
    return build_bmodel(synth.model([synth.net("old", [st])], chip="BM1684"), region, align=4096)


SYNTHETIC: dict[str, Callable[[], bytes]] = {
    **synth.EDGE_CASES,
    "addr_mode_4": lambda: synth.addr_mode(4),
    "cpu_subnets_and_quantised_io": _cpu_subnets_and_quantised_io,
    "bm1684": _bm1684,
    "max_shapes_in_one_stage": _max_shapes_in_one_stage,
}


@pytest.mark.runtime
@pytest.mark.parametrize("case", sorted(SYNTHETIC))
def test_json_equals_model_tool_info_on_synthetic_models(
        tmp_path: Path, capsys: Capsys, vendor_dir: Path, case: str) -> None:
    p = write(tmp_path, SYNTHETIC[case]())
    r = run_json(capsys, p)
    assert_tiles(r)
    tool = model_tool_info(vendor_dir, p)
    assert json_as_tool_info(r) == tool
    assert json_maxed(r) == tool.maxed  # type: ignore[attr-defined]


@pytest.mark.runtime
def test_encrypted_model_opened_with_its_key_equals_model_tool_on_the_original(
        capsys: Capsys, vendor_dir: Path, enc: Encrypted) -> None:
    r = run_json(capsys, "--key", enc.key_file, enc.qwen)
    assert json_as_tool_info(r) == model_tool_info(vendor_dir, QWEN)


# ---------------------------------------------------------------- bmcrypt files without a key


def test_bmcrypt_file_without_key_shows_what_is_visible_and_says_the_rest_is_hidden(
        capsys: Capsys, enc: Encrypted) -> None:
    r = run_json(capsys, enc.mlp)
    e = r["encryption"]
    assert e["state"] == "bmcrypt" and e["opened"] is False
    assert (e["format_version"], e["algorithm"], e["key_source"], e["scrypt"]) == (
        2, 1, "key file", None)
    assert e["recipients"] == [{"key_id": enc.key.key_id_hex, "type": "key file"}]
    assert e["recipient_slots"] == 16 and e["original_sha256"] is None
    assert e["key_id"] == enc.key.key_id_hex
    assert re.fullmatch(r"[0-9a-f]{32}", e["file_id"]) and e["clear_digest"] is True
    assert e["header_size"] == 8 + e["header_envelope_size"]
    assert e["header_size"] + e["flatbuffer_envelope_size"] + e["binary_region_size"] == r["size"]
    for hidden in ("chip", "version", "time", "device_mem", "host_mem", "nets", "coeff_regions"):
        assert r[hidden] is None, hidden
    assert any("hidden" in n and "encrypted" in n for n in r["notes"])
    assert [p["kind"] for p in r["layout"]] == ["clear_header", "header_envelope",
                                                "flatbuffer_envelope", "binary_region"]
    assert_tiles(r)


def test_bmcrypt_file_without_key_in_text_names_key_id_and_hidden_nets(
        capsys: Capsys, enc: Encrypted) -> None:
    code, out, err = run(capsys, enc.mlp)
    assert code == 0 and err == ""
    assert "encrypted by bmcrypt (no key given)" in out
    assert f"id {enc.key.key_id_hex}, key file" in out
    assert "nets, weights and memory figures are hidden" in out
    assert "nets:" not in out and "= file size OK" in out


def test_passphrase_file_shows_scrypt_parameters_without_a_key(
        capsys: Capsys, enc: Encrypted) -> None:
    e = run_json(capsys, enc.mlp_passphrase)["encryption"]
    assert e["key_source"] == "passphrase" and e["scrypt"] == {"log2_n": 10, "r": 8, "p": 1}


def test_inspect_never_asks_for_a_key_it_was_not_given(capsys: Capsys, enc: Encrypted,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getpass", lambda *_: pytest.fail("asked for a passphrase"))
    code, _, _ = run(capsys, enc.mlp, enc.mlp_passphrase, MLP)
    assert code == 0


# ---------------------------------------------------------------- bmcrypt files with a key


def _without_location(r: dict[str, Any]) -> dict[str, Any]:
    """What must not change by encryption: everything but sizes, offsets and the encryption."""
    keep = ("chip", "version", "time", "device_mem", "host_mem")
    nets = json.loads(json.dumps(r["nets"]))
    for n in nets:
        for s in n["stages"]:
            if s["coeff"]:
                s["coeff"].pop("encrypted")
    regions = [(c["size"], c["sha256"], c["used_by"]) for c in r["coeff_regions"]]
    return {**{k: r[k] for k in keep}, "nets": nets, "regions": regions}


def test_bmcrypt_file_with_key_reads_like_the_plain_model(capsys: Capsys, enc: Encrypted) -> None:
    plain = run_json(capsys, QWEN)
    opened = run_json(capsys, "--key", enc.key_file, enc.qwen)
    assert _without_location(opened) == _without_location(plain)
    assert opened["encryption"]["opened"] is True
    assert opened["encryption"]["key_id"] == enc.key.key_id_hex
    assert all(c["encrypted"] and c["encrypt_mode"] == 1 and c["stored_size"] > c["size"]
               for c in opened["coeff_regions"])
    assert all(s["coeff"]["encrypted"] for n in opened["nets"] for s in n["stages"])
    assert any("not decrypted" in n and "bmcrypt verify" in n for n in opened["notes"])


def test_layout_of_an_opened_file_shows_the_envelopes_and_the_clear_parts(
        capsys: Capsys, enc: Encrypted) -> None:
    r = run_json(capsys, "--key", enc.key_file, enc.qwen)
    assert_tiles(r)
    kinds = [p["kind"] for p in r["layout"]]
    assert kinds[:3] == ["clear_header", "header_envelope", "flatbuffer_envelope"]
    assert r["layout"][0] == {"kind": "clear_header", "offset": 0, "size": 8,
                              "label": "magic, header_size"}
    envelopes = [p for p in r["layout"] if p["kind"] == "coeff_envelope"]
    assert [(p["offset"], p["size"]) for p in envelopes] == [
        (c["offset"], c["stored_size"]) for c in r["coeff_regions"]]
    assert "coeff" not in kinds and "commands" in kinds


def test_only_the_chosen_nets_weights_are_marked_encrypted(tmp_path: Path, capsys: Capsys,
                                                           enc: Encrypted) -> None:
    out = tmp_path / "partial.bmodel"
    encrypt_model(QWEN, enc.key, nets={"lm_head"}, output=out)
    r = run_json(capsys, "-k", enc.key_file, out)
    assert {c["used_by"][0]: c["encrypted"] for c in r["coeff_regions"]} == {
        "embedding[0]": False, "lm_head[0]": True, "block_cache_0[0]": False,
        "block_cache_1[0]": False}
    assert [p["kind"] for p in r["layout"]].count("coeff_envelope") == 1
    assert_tiles(r)


def test_passphrase_opens_a_passphrase_file(capsys: Capsys, enc: Encrypted,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BMCRYPT_PASSPHRASE", PASSPHRASE)
    r = run_json(capsys, "--passphrase", enc.mlp_passphrase)
    assert r["encryption"]["opened"] is True and r["nets"][0]["name"] == "mlp"


def test_wrong_key_is_the_normal_wrong_key_error(capsys: Capsys, enc: Encrypted) -> None:
    code, out, err = run(capsys, "--key", enc.other_key_file, enc.mlp)
    assert code == 4 and out == ""
    assert err.startswith(f"bmcrypt: error: {enc.mlp}: wrong key: the file needs key id "
                          f"{enc.key.key_id_hex}")
    assert "bmcrypt: hint:" in err and "Traceback" not in err


def test_key_file_from_the_environment_opens_the_file(capsys: Capsys, enc: Encrypted,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BMCRYPT_KEY_FILE", str(enc.key_file))
    assert run_json(capsys, enc.mlp)["encryption"]["opened"] is True


def test_key_from_the_environment_that_does_not_fit_is_a_note_not_an_error(
        capsys: Capsys, enc: Encrypted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BMCRYPT_KEY_FILE", str(enc.other_key_file))
    r = run_json(capsys, enc.mlp)
    assert r["nets"] is None and r["encryption"]["opened"] is False
    assert any("$BMCRYPT_KEY_FILE does not open this file" in n for n in r["notes"])


def test_unusable_key_file_in_the_environment_is_a_note_not_an_error(
        tmp_path: Path, capsys: Capsys, enc: Encrypted, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BMCRYPT_KEY_FILE", str(tmp_path / "missing.key"))
    r = run_json(capsys, enc.mlp)
    assert any("$BMCRYPT_KEY_FILE was not used" in n for n in r["notes"])


def test_unusable_key_file_given_with_key_is_an_error_even_for_plain_models(
        tmp_path: Path, capsys: Capsys) -> None:
    code, out, err = run(capsys, "--key", tmp_path / "missing.key", MLP)
    assert code == 7 and out == "" and "missing.key does not exist" in err


def test_key_and_passphrase_together_are_refused(capsys: Capsys, enc: Encrypted) -> None:
    code, out, err = run(capsys, "--key", enc.key_file, "--passphrase", MLP)
    assert code == 7 and out == "" and "exclude each other" in err


def test_output_never_contains_the_key(capsys: Capsys, enc: Encrypted) -> None:
    key_hex = re.search(r"key: ([0-9a-f]{64})", enc.key_file.read_text())[1]  # type: ignore[index]
    for args in (["--json"], []):
        code, out, err = run(capsys, *args, "--key", enc.key_file, enc.mlp, enc.qwen)
        assert code == 0
        assert key_hex not in out + err and key_hex[:16] not in out + err
        assert enc.key.key_id_hex in out


def _plugin_style_copy(plain: Path, key: UserKey, dst: Path) -> Path:
    """The same model as `model_tool --encrypt -lib libbmcrypt.so` writes it: version-1 kind-0
    envelopes for the header tail and a FlatBuffer without manifest (FORMAT.md §5, §8)."""
    from bmcrypt.bmodel.reader import open_mapped
    from bmcrypt.crypto import new_file
    from bmcrypt.protect.seal import seal_bmodel

    src = dst.with_suffix(".v1.bmodel")
    with open_mapped(plain) as model, open(src, "wb") as f:
        seal_bmodel(model, f, new_file(key, version=1))
    with open_encrypted(src, key) as o:
        keys, fb, binary = o.keys, o.flatbuffer, bytes(o.mm[o.binary_offset:])
    e2 = seal(keys, Kind.GENERIC, fb)
    e1 = seal(keys, Kind.GENERIC, struct.pack("<IQ", len(e2), len(binary)) + bytes(44))
    dst.write_bytes(src.read_bytes()[:4] + struct.pack("<I", 8 + len(e1)) + e1 + e2 + binary)
    return dst


def test_file_from_the_model_tool_plugin_says_its_clear_parts_are_not_covered(
        tmp_path: Path, capsys: Capsys, enc: Encrypted) -> None:
    p = _plugin_style_copy(MLP, enc.key, tmp_path / "plugin.bmodel")
    assert run_json(capsys, p)["encryption"]["clear_digest"] is False
    r = run_json(capsys, "-k", enc.key_file, p)
    assert r["encryption"]["clear_digest"] is False and r["nets"][0]["name"] == "mlp"
    assert any("no clear-region digest" in n for n in r["notes"])
    assert_tiles(r)


# ---------------------------------------------------------------- foreign files


def _foreign(tmp_path: Path, header_size: int, reserved: bytes = b"") -> Path:
    data = bytearray(MLP.read_bytes())
    data[4:8] = struct.pack("<I", header_size)
    data[8:12] = b"\x12\x34\x56\x78"
    data[20:20 + len(reserved)] = reserved
    return write(tmp_path, bytes(data), "foreign.bmodel")


@pytest.mark.parametrize("header_size,reserved", [(80, b""), (64, b"\xff" * 4)])
def test_foreign_encrypted_file_is_reported_not_refused(tmp_path: Path, capsys: Capsys,
                                                        header_size: int, reserved: bytes) -> None:
    r = run_json(capsys, _foreign(tmp_path, header_size, reserved))
    assert r["encryption"] == {"state": "foreign", "header_size": header_size}
    assert r["nets"] is None and r["chip"] is None
    assert [p["kind"] for p in r["layout"]] == ["clear_header", "encrypted_header", "opaque"]
    assert any("encrypted by another tool" in n for n in r["notes"])
    assert_tiles(r)


def test_foreign_file_whose_header_size_is_past_its_end_is_still_foreign(
        tmp_path: Path, capsys: Capsys) -> None:
    r = run_json(capsys, _foreign(tmp_path, 1 << 30))
    assert r["encryption"]["state"] == "foreign" and any("truncated" in n for n in r["notes"])
    assert_tiles(r)


CIPHERS = {
    "bitwise_not": "uint8_t* encrypt(const uint8_t* in, uint64_t n, uint64_t* out_len) {\n"
                   "  uint8_t* p = malloc(n ? n : 1);\n"
                   "  for (uint64_t i = 0; i < n; i++) p[i] = ~in[i];\n"
                   "  *out_len = n; return p; }\n",
    "header_and_copy": "uint8_t* encrypt(const uint8_t* in, uint64_t n, uint64_t* out_len) {\n"
                       "  uint8_t* p = malloc(n + 16); memset(p, 0x5a, 16);\n"
                       "  memcpy(p + 16, in, n); *out_len = n + 16; return p; }\n",
}


@pytest.mark.runtime
@pytest.mark.parametrize("cipher", sorted(CIPHERS))
def test_model_encrypted_by_model_tool_with_another_cipher_is_foreign(
        tmp_path: Path, capsys: Capsys, vendor_dir: Path, cipher: str) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    src = tmp_path / "cipher.c"
    src.write_text("#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n"
                   + CIPHERS[cipher]
                   + "uint8_t* decrypt(const uint8_t* in, uint64_t n, uint64_t* out_len) {\n"
                     "  return encrypt(in, n, out_len); }\n")
    lib = tmp_path / "libcipher.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    out = tmp_path / "foreign.bmodel"
    subprocess.run([str(vendor_dir / "bin" / "model_tool"), "--encrypt", "-model", str(MLP),
                    "-net", "mlp", "-lib", str(lib), "-o", str(out)],
                   check=True, capture_output=True, timeout=60)
    r = run_json(capsys, out)
    assert r["encryption"]["state"] == "foreign"
    assert r["encryption"]["header_size"] == (64 if cipher == "bitwise_not" else 80)
    assert_tiles(r)


# ---------------------------------------------------------------- several files


def test_several_files_give_files_and_a_comparison(capsys: Capsys, enc: Encrypted) -> None:
    r = run_doc(capsys, MLP, enc.mlp)
    assert set(r) == {"schema", "command", "ok", "files", "summary", "comparison"}
    assert [f["encryption"]["state"] for f in r["files"]] == ["plain", "bmcrypt"]
    assert set(r["comparison"]) == {"weights", "visible_weights", "compared", "not_compared",
                                    "regions"}


def test_the_same_weights_plain_and_encrypted_are_identical(capsys: Capsys, enc: Encrypted) -> None:
    c = run_doc(capsys, "--key", enc.key_file, QWEN, enc.qwen)["comparison"]
    assert c["weights"] == "identical" and c["not_compared"] == []
    assert len(c["regions"]) == 4
    assert all(reg["files"] == [str(QWEN), str(enc.qwen)] for reg in c["regions"])


def test_models_sharing_some_weights_are_partly_shared_and_say_which(
        tmp_path: Path, capsys: Capsys) -> None:
    def model(nets: dict[str, bytes]) -> bytes:
        region = BinaryRegion(align=1)
        ns = [synth.net(name, [synth.stage(region, coeff=w)]) for name, w in nets.items()]
        return build_bmodel(synth.model(ns), region, align=1)

    a = write(tmp_path, model({"enc": b"E" * 300, "dec": b"D" * 200}), "a.bmodel")
    b = write(tmp_path, model({"enc": b"E" * 300, "head": b"H" * 100}), "b.bmodel")
    c = run_doc(capsys, a, b)["comparison"]
    assert c["weights"] == "partly_shared"
    shared = [reg for reg in c["regions"] if len(reg["files"]) == 2]
    assert [(reg["size"], reg["files"]) for reg in shared] == [(300, [str(a), str(b)])]
    code, out, _ = run(capsys, a, b)
    assert "weights of the 2 files: partly shared" in out
    assert f"file 1  {a}" in out and f"file 2  {b}" in out
    assert re.search(r" 300  1, 2\n", out) and re.search(r" 200  1 only\n", out)
    assert re.search(r" 100  2 only\n", out)


def test_unrelated_models_have_different_weights(capsys: Capsys) -> None:
    assert run_doc(capsys, MLP, QWEN)["comparison"]["weights"] == "different"
    code, out, _ = run(capsys, MLP, QWEN)
    assert "weights of the 2 files: different" in out


def test_two_builds_of_one_checkpoint_share_only_some_regions(capsys: Capsys) -> None:
    c = run_doc(capsys, QWEN, QWEN_DYNAMIC)["comparison"]
    assert c["weights"] in ("identical", "partly_shared")
    assert c["visible_weights"] == c["weights"]


def test_encrypted_file_without_key_makes_the_verdict_unknown(
        capsys: Capsys, enc: Encrypted) -> None:
    c = run_doc(capsys, QWEN, QWEN, enc.qwen)["comparison"]
    assert c["weights"] == "unknown" and c["visible_weights"] == "identical"
    assert c["not_compared"] == [{"path": str(enc.qwen),
                                  "reason": "encrypted by bmcrypt; no key given"}]
    code, out, _ = run(capsys, QWEN, QWEN, enc.qwen)
    assert "weights of the 3 files: unknown" in out
    assert f"file 3  {enc.qwen}  (not compared: encrypted by bmcrypt; no key given)" in out
    assert "among files 1, 2: identical" in out


def test_mixed_batch_of_plain_bmcrypt_and_foreign_files_works(tmp_path: Path, capsys: Capsys,
                                                              enc: Encrypted) -> None:
    foreign = _foreign(tmp_path, 80)
    r = run_doc(capsys, "--key", enc.key_file, MLP, enc.mlp, foreign)
    assert [f["encryption"]["state"] for f in r["files"]] == ["plain", "bmcrypt", "foreign"]
    assert r["comparison"]["visible_weights"] == "identical"
    assert r["comparison"]["not_compared"] == [{"path": str(foreign),
                                                "reason": "encrypted by another tool"}]


# ---------------------------------------------------------------- bad input


def _corrupt_flatbuffer(tmp_path: Path) -> Path:
    data = bytearray(MLP.read_bytes())
    data[64:68] = struct.pack("<I", 1 << 20)  # root table offset far outside the FlatBuffer
    return write(tmp_path, bytes(data))


def _coeff_outside(tmp_path: Path) -> Path:
    region = BinaryRegion()
    st = synth.stage(region, coeff=b"w" * 100)
    assert st.coeffMem is not None
    st.coeffMem.binaryCoeff = make_binary(region.size - 10, 11)
    return write(tmp_path, build_bmodel(synth.model([synth.net("n", [st])]), region, align=1))


def _fifo(tmp_path: Path) -> Path:
    p = tmp_path / "fifo.bmodel"
    os.mkfifo(p)
    return p


BAD: dict[str, tuple[Callable[[Path], Path], int, str]] = {
    "empty": (lambda t: write(t, b""), 3, "empty file is not a bmodel"),
    "not_a_bmodel": (lambda t: write(t, b"hello, world\n" * 10), 3, "not a bmodel"),
    "truncated_header": (lambda t: write(t, MLP.read_bytes()[:40]), 3, "inside the 64-byte"),
    "truncated_binary": (lambda t: write(t, MLP.read_bytes()[:5000]), 3, "header declares"),
    "corrupt_flatbuffer": (_corrupt_flatbuffer, 3, "metadata|flatbuffer"),
    "offset_outside_the_file": (_coeff_outside, 3, "points outside the file"),
    "directory": (lambda t: t, 8, "directory"),
    "missing": (lambda t: t / "nope.bmodel", 8, "no such file"),
    "fifo": (_fifo, 8, "not a regular file"),
    "header_size_below_8": (lambda t: _foreign(t, 4), 3, "header_size 4 is smaller"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_short_error_with_a_hint(
        tmp_path: Path, capsys: Capsys, case: str) -> None:
    make, exit_code, message = BAD[case]
    path = make(tmp_path)
    for args in ([path], ["--json", path]):
        code, out, err = run(capsys, *args)
        assert code == exit_code
        if args[0] == "--json":  # the document says it too, for scripts
            doc = json_document(subprocess.CompletedProcess([], code, out, err), "inspect")
            assert doc["files"][0]["error"] == doc["error"]
        else:
            assert out == ""
        lines = err.splitlines()
        assert len(lines) == 2 and lines[0].startswith("bmcrypt: error: ")
        assert lines[1].startswith("bmcrypt: hint: ")
        assert str(path) in lines[0] and re.search(message, lines[0], re.I), lines[0]


@pytest.mark.parametrize("which", ["plain", "bmcrypt", "bmcrypt_with_key"])
def test_damaged_files_fail_only_with_bmcrypt_errors(tmp_path: Path, enc: Encrypted,
                                                     which: str) -> None:
    src = MLP if which == "plain" else enc.mlp
    key = KeyChoice(lambda: enc.key, explicit=True) if which == "bmcrypt_with_key" else None
    data = src.read_bytes()
    p = tmp_path / "damaged.bmodel"
    rng = random.Random(which)
    for _ in range(150):
        d = bytearray(data)
        at = rng.randrange(0, 2500)  # header, envelopes, FlatBuffer
        d[at] ^= 1 << rng.randrange(8)
        p.write_bytes(bytes(d[:rng.choice([len(d), len(d), rng.randrange(len(d))])]))
        try:
            report = inspect_file(p, key)
        except BmcryptError:
            continue
        assert sum(part.size for part in report.layout) == report.size


def test_truncated_bmcrypt_file_is_an_error_without_a_key(tmp_path: Path, capsys: Capsys,
                                                          enc: Encrypted) -> None:
    data = enc.mlp.read_bytes()
    for cut in (100, 500):
        code, _, err = run(capsys, write(tmp_path, data[:cut]))
        assert code == 3 and "ends inside" in err


def test_bad_file_in_a_batch_is_reported_and_the_others_still_shown(
        tmp_path: Path, capsys: Capsys) -> None:
    bad = write(tmp_path, b"not a model at all", "bad.bmodel")
    code, out, err = run(capsys, MLP, bad, QWEN)
    assert code == 3
    assert str(MLP) in out and str(QWEN) in out and "bad.bmodel" not in out.split("weights of")[0]
    assert f"bmcrypt: error: {bad}: not a bmodel" in err
    assert "1 of 3 files failed" in err
    code, out, err = run(capsys, "--json", MLP, bad, QWEN)
    r = json_document(subprocess.CompletedProcess([], code, out, err), "inspect")
    assert code == 3 and [f["path"] for f in r["files"]] == [str(MLP), str(bad), str(QWEN)]
    assert r["files"][1]["error"]["kind"] == "not_a_bmodel"
    assert r["files"][1]["error"]["code"] == 3
    assert r["summary"] == {"total": 3, "succeeded": 2, "failed": 1}
    assert r["comparison"]["weights"] == "unknown"
    assert r["comparison"]["visible_weights"] == "different"


def test_batch_where_every_file_is_bad_fails_with_the_first_files_exit_code(
        tmp_path: Path, capsys: Capsys) -> None:
    code, out, err = run(capsys, tmp_path / "missing.bmodel", write(tmp_path, b""))
    assert code == 8 and "all 2 files failed" in err


def test_wrong_key_in_a_batch_does_not_hide_the_other_files(capsys: Capsys, enc: Encrypted) -> None:
    code, out, err = run(capsys, "--key", enc.other_key_file, MLP, enc.mlp)
    assert code == 4 and str(MLP) in out and "wrong key" in err


# ---------------------------------------------------------------- the documentation


def _json_keys(obj: Any, keys: set[str]) -> set[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            keys.add(k)
            _json_keys(v, keys)
    elif isinstance(obj, list):
        for v in obj:
            _json_keys(v, keys)
    return keys


def test_docs_describe_every_json_field(tmp_path: Path, capsys: Capsys, enc: Encrypted) -> None:
    docs = (ROOT / "docs" / "inspect.md").read_text()
    bad = write(tmp_path, b"nope")
    keys: set[str] = set()
    _json_keys(run_doc(capsys, "-k", enc.key_file, QWEN, enc.qwen), keys)
    _json_keys(run_json(capsys, _foreign(tmp_path, 80)), keys)
    _json_keys(json.loads(run(capsys, "--json", MLP, bad)[1]), keys)
    _json_keys(run_json(capsys, enc.mlp_passphrase), keys)
    missing = sorted(k for k in keys if f"`{k}`" not in docs)
    assert not missing, f"docs/inspect.md does not describe {missing}"
