"""examples/llm-tpu: LLM-TPU share_cache_demo's `chat.Qwen` on bmcrypt files, on the simulator.

The module is built with cmake against the *installed* package (as `make llm-tpu-example`
does), then driven by tests/llm_tpu_child.py, the demo's test_share_cache flow: model 0 is
loaded, its cache emptied, the prefix prefilled, every question answered; free_device; model 1
(the other share build, equal weights) is loaded with io_alone_reuse and answers the same
questions without a prefill; deinit. One child process per run (one simulator per process).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import bmcrypt
from conftest import FIXTURES, ROOT

from bmcrypt.plugin import cmake_dir

pytestmark = [pytest.mark.runtime, pytest.mark.slow]

SOURCE = ROOT / "examples" / "llm-tpu"
CASE_FILE = FIXTURES / "share_cache.json"
if not CASE_FILE.is_file():
    pytest.skip("tests/fixtures/share_cache.json (the share-cache fixtures) is missing",
                allow_module_level=True)
CASE = json.loads(CASE_FILE.read_text())
# Entries are file names, or objects naming the file ({"file": …, "unshare_length": …}).
SHARE = [FIXTURES / (m["file"] if isinstance(m, dict) else m) for m in CASE["share_models"]]
ANSWER_TOKENS = min(12, CASE["max_new_tokens"])
# The reference stops at EOS; compare what both produced.
REFERENCE = [ref[:ANSWER_TOKENS] for ref in CASE["reference"]]
#: The control runs check how weights are placed; a few tokens show the nets compute right.
CONTROL_TOKENS = 3
_COEFF = re.compile(r"Coeff, chip\[\d+\], SHA\[([0-9A-Fa-f]+)\], addr\[(0x[0-9a-fA-F]+)\]")


def traced_weights(output: str) -> list[dict[str, str]]:
    """Per bmrt_trace report in `output`: its weights, SHA-256 prefix -> device address."""
    reports = output.split("*** bmruntime trace: ***")[1:]
    return [dict(_COEFF.findall(report)) for report in reports]


@pytest.fixture(scope="module")
def module_dir(vendor_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `chat` module, configured and built as the Makefile's llm-tpu-example target does."""
    cmake = shutil.which("cmake")
    assert cmake, "cmake is not on PATH (scripts/install-system-deps.sh installs it)"
    pybind = subprocess.run([sys.executable, "-m", "pybind11", "--cmakedir"], capture_output=True,
                            text=True)
    if pybind.returncode:
        pytest.skip("pybind11 is not installed (pip install '.[test]')")
    build = tmp_path_factory.mktemp("llm-tpu-build")
    for command in (
        [cmake, "-S", str(SOURCE), "-B", str(build), f"-Dbmcrypt_DIR={cmake_dir()}",
         f"-Dpybind11_DIR={pybind.stdout.strip()}", f"-DPython_EXECUTABLE={sys.executable}",
         f"-DBMRT_LIB_DIR={vendor_dir / 'lib'}", "-DCMAKE_BUILD_TYPE=Release"],
        [cmake, "--build", str(build), "-j2"],
    ):
        r = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{' '.join(command)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert list(build.glob("chat*.so")), "no chat module was built"
    return build


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A key, an unrelated key, both share builds encrypted with the first, and a tampered one."""
    d = tmp_path_factory.mktemp("llm-tpu-models")
    out = {"key": d / "model.key", "wrong_key": d / "wrong.key"}
    for key in ("key", "wrong_key"):
        r = bmcrypt("keygen", "-o", out[key])
        assert r.returncode == 0, r.stderr
    for i, plain in enumerate(SHARE):
        out[f"m{i}"] = d / plain.name
        r = bmcrypt("encrypt", "--key", out["key"], "-o", out[f"m{i}"], plain)
        assert r.returncode == 0, r.stderr
    data = bytearray(out["m1"].read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the weights
    out["tampered"] = d / "tampered.bmodel"
    out["tampered"].write_bytes(bytes(data))
    return out


def run_demo(module_dir: Path, tmp_path: Path, models: list[Path], *, is_decrypt: bool = True,
             memory_prealloc: bool = False, key_file: Path | None = None,
             env_key: Path | None = None, trace: bool = False,
             questions: int | None = None, tokens: int = ANSWER_TOKENS) -> tuple[dict, str]:
    """tests/llm_tpu_child.py in a process of its own; returns its result and its output.
    `questions`, `tokens`: only the first few (the simulator takes seconds per token)."""
    spec = {"build": str(module_dir), "models": [str(m) for m in models],
            "prefix": CASE["prefix_ids"], "questions": CASE["questions"][:questions],
            "tokens": tokens, "is_decrypt": is_decrypt, "memory_prealloc": memory_prealloc,
            "key_file": str(key_file) if key_file else None, "trace": trace}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items()
           if k not in ("BMCRYPT_KEY_FILE", "BMCRYPT_PASSPHRASE")}
    if env_key:
        env["BMCRYPT_KEY_FILE"] = str(env_key)
    r = subprocess.run([sys.executable, "-P", str(ROOT / "tests" / "llm_tpu_child.py"),
                        str(tmp_path / "spec.json"), str(tmp_path / "result.json")],
                       capture_output=True, text=True, timeout=1800, env=env, cwd=tmp_path)
    output = r.stdout + r.stderr
    assert r.returncode == 0 and "deinit done" in r.stdout, \
        f"the demo flow died ({r.returncode}):\n{output[-4000:]}"
    return json.loads((tmp_path / "result.json").read_text()), output


def test_demo_flow_on_encrypted_share_builds(module_dir: Path, files: dict[str, Path],
                                             tmp_path: Path) -> None:
    """Every question, both models, the key from BMCRYPT_KEY_FILE, memory_prealloc on: the
    reference tokens across the switch (model 1 never saw the prefix: its k/v came across),
    and bmrt_trace after each init shows model 1 on model 0's weights, all of them intact."""
    result, output = run_demo(module_dir, tmp_path, [files["m0"], files["m1"]],
                              env_key=files["key"], memory_prealloc=True, trace=True)
    assert "error" not in result, result
    assert result["answers"] == [REFERENCE, REFERENCE]
    assert result["share_length"] == len(CASE["prefix_ids"])
    assert output.count("Total 0 errors") == 2, output[-3000:]
    model0, model1 = traced_weights(output)
    assert model0 and model1 == model0  # the same weights at the same addresses


def test_without_memory_prealloc_libbmrt_shares_the_weights_too(
        module_dir: Path, files: dict[str, Path], tmp_path: Path) -> None:
    """The control. As in the demo, free_device() without memory_prealloc leaves model 0's
    runtime on the device until deinit(); libbmrt's per-device registry then gives model 1 the
    same weights too (measured: equal addresses), so what memory_prealloc adds is releasing
    model 0's runtime memory at free_device(). set_key_file gives the key this time."""
    result, output = run_demo(module_dir, tmp_path, [files["m0"], files["m1"]],
                              key_file=files["key"], trace=True, questions=1,
                              tokens=CONTROL_TOKENS)
    assert "error" not in result, result
    assert result["answers"] == [[REFERENCE[0][:CONTROL_TOKENS]]] * 2
    assert output.count("Total 0 errors") == 2, output[-3000:]
    model0, model1 = traced_weights(output)
    assert model0 and model1 == model0


def test_memory_prealloc_on_plain_files_uses_the_mem_api(module_dir: Path, tmp_path: Path) -> None:
    """Plain files with memory_prealloc load through bmrt_load_bmodel_with_mem (instruction,
    neuron and io memory of ours) and keep the weights once as well."""
    result, output = run_demo(module_dir, tmp_path, SHARE, is_decrypt=False,
                              memory_prealloc=True, trace=True, questions=1,
                              tokens=CONTROL_TOKENS)
    assert "error" not in result, result
    assert result["answers"] == [[REFERENCE[0][:CONTROL_TOKENS]]] * 2
    assert output.count("Total 0 errors") == 2, output[-3000:]
    model0, model1 = traced_weights(output)
    assert model0 and model1 == model0


@pytest.mark.parametrize("case", ["wrong_key", "tampered", "plain_as_encrypted", "no_key"])
def test_refusals_are_python_exceptions(module_dir: Path, files: dict[str, Path], tmp_path: Path,
                                        case: str) -> None:
    models, key, expected = {
        "wrong_key": ([files["m0"]], files["wrong_key"], ("bmcrypt:", "wrong key")),
        "tampered": ([files["tampered"]], files["key"],
                     ("bmcrypt:", "weights of net", "does not authenticate")),
        "plain_as_encrypted": ([SHARE[0]], files["key"],
                               ("chat:", "plain bmodel", "bmcrypt encrypt")),
        "no_key": ([files["m0"]], None, ("bmcrypt:", "key")),
    }[case]
    result, output = run_demo(module_dir, tmp_path, models, key_file=key)
    assert "answers" not in result, result
    for phrase in expected:
        assert phrase in result["error"], (phrase, result)
    assert result["at"] in ("init 0", "encrypt_bmodel 0"), result


def test_encrypt_bmodel_never_writes(module_dir: Path, files: dict[str, Path]) -> None:
    """On a bmcrypt file encrypt_bmodel does nothing; the file stays byte for byte."""
    before = hashlib.sha256(files["m0"].read_bytes()).hexdigest()
    code = (f"import sys; sys.path.insert(0, {str(module_dir)!r}); import chat\n"
            f"chat.Qwen().encrypt_bmodel({str(files['m0'])!r})\nprint('ok')")
    r = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
    assert hashlib.sha256(files["m0"].read_bytes()).hexdigest() == before
