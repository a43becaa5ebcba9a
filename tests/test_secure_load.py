"""Encrypted models in the real vendor runtime: every way in, weights byte-exact, outputs equal.

Each load runs in a child process (the simulator allows one runtime per process and keeps
threads alive until exit), judged by the runtime itself: `bmrt_trace` re-reads every weight
from device memory and compares it with its SHA-256.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, MLP, QWEN
from plugin_loads import load_via_plugin_library, raw_callback_with_key

from bmcrypt import workflow
from bmcrypt.errors import Tampered, WrongKey
from bmcrypt.keys import generate_key_file
from bmcrypt.loader import check_load_and_run
from bmcrypt.plugin import plugin_path
from bmcrypt.runtime import bf16_from_f32, run_isolated

pytestmark = pytest.mark.runtime

DYNAMIC = FIXTURES / "qwen2_tiny_bf16_seq64_dynamic_nokernel.bmodel"
SAMPLE = FIXTURES / "qwen2_tiny_sample_bf16_seq64_nokernel.bmodel"
ALL = [MLP, QWEN, DYNAMIC, SAMPLE]

# One net run per fixture, on fixed inputs, to compare plain and encrypted outputs bit for bit.
_RNG = np.random.default_rng(3)
PROBES = {
    MLP.name: ("mlp", {"x": np.load(FIXTURES / "mlp_in.npz")["x"]}),
    QWEN.name: ("lm_head", {"hidden_states": bf16_from_f32(_RNG.standard_normal((1, 128)))}),
    DYNAMIC.name: ("embedding", {"input_ids": np.arange(64, dtype=np.int32).reshape(1, 64)}),
    SAMPLE.name: ("lm_head", {"hidden_states": bf16_from_f32(_RNG.standard_normal((1, 128)))}),
}


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "model.key"
    generate_key_file(path)
    return path


@pytest.fixture(scope="module")
def wrong_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "wrong.key"
    generate_key_file(path)
    return path


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory, key_file: Path) -> dict[str, Path]:
    from bmcrypt.keys import load_key_file

    out = tmp_path_factory.mktemp("encrypted")
    return {f.name: workflow.encrypt_model(f, load_key_file(key_file),
                                           output=out / f.name).target for f in ALL}


@pytest.fixture(scope="module")
def plain_outputs() -> dict[str, tuple]:
    results = {}
    for f in ALL:
        net, inputs = PROBES[f.name]
        check = run_isolated(check_load_and_run, str(f), net=net, inputs=inputs)
        assert check.trace_errors == 0
        results[f.name] = (check.nets, check.outputs)
    return results


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("strategy", ["callback", "memory"])
@pytest.mark.parametrize("fixture", ALL, ids=lambda p: p.stem)
def test_encrypted_model_loads_with_exact_weights_and_equal_outputs(
        fixture: Path, strategy: str, encrypted, key_file, plain_outputs):
    net, inputs = PROBES[fixture.name]
    check = run_isolated(check_load_and_run, str(encrypted[fixture.name]), str(key_file),
                         strategy=strategy, net=net, inputs=inputs)
    nets, outputs = plain_outputs[fixture.name]
    assert check.strategy == strategy
    assert check.trace_errors == 0
    assert check.nets == nets
    assert _same(check.outputs, outputs)


@pytest.mark.parametrize("fixture", [MLP, QWEN], ids=lambda p: p.stem)
def test_the_runtime_loads_through_the_plugin_library(fixture, encrypted, key_file,
                                                      plain_outputs):
    nets, errors = run_isolated(load_via_plugin_library, str(encrypted[fixture.name]),
                                str(key_file))
    assert errors == 0
    assert tuple(nets) == plain_outputs[fixture.name][0]


def test_a_wrong_key_fails_the_raw_runtime_load_cleanly_with_our_error(encrypted,
                                                                       wrong_key_file):
    ok, error = run_isolated(raw_callback_with_key, str(encrypted[MLP.name]),
                             str(wrong_key_file))
    assert not ok
    assert "wrong key" in error


def test_the_raw_callback_path_loads_with_the_right_key(encrypted, key_file):
    ok, error = run_isolated(raw_callback_with_key, str(encrypted[QWEN.name]), str(key_file))
    assert ok, error


@pytest.mark.parametrize("strategy", ["callback", "memory"])
def test_wrong_key_and_tampered_weights_are_refused_before_the_runtime_sees_them(
        strategy, encrypted, key_file, wrong_key_file, tmp_path):
    with pytest.raises(WrongKey):
        run_isolated(check_load_and_run, str(encrypted[MLP.name]), str(wrong_key_file),
                     strategy=strategy)
    tampered = tmp_path / "tampered.bmodel"
    data = bytearray(encrypted[MLP.name].read_bytes())
    data[-3000] ^= 0x04  # inside the weights' envelope
    tampered.write_bytes(data)
    with pytest.raises(Tampered):
        run_isolated(check_load_and_run, str(tampered), str(key_file), strategy=strategy)


# ---------------------------------------------------------------- model_tool with our plugin


def _model_tool(vendor_dir: Path, *args: str | Path, key_file: Path) -> None:
    env = dict(os.environ, BMCRYPT_KEY_FILE=str(key_file),
               LD_LIBRARY_PATH=str(vendor_dir / "lib"))
    subprocess.run([str(vendor_dir / "bin" / "model_tool"), *map(str, args)], env=env,
                   check=True, capture_output=True, timeout=120)


def test_model_tool_decrypt_with_our_plugin_gives_a_plain_model_the_runtime_loads(
        vendor_dir, encrypted, key_file, tmp_path, plain_outputs):
    plain = tmp_path / "plain.bmodel"
    _model_tool(vendor_dir, "--decrypt", "-model", encrypted[QWEN.name], "-lib", plugin_path(),
                "-o", plain, key_file=key_file)
    assert workflow.file_state(plain) == "plain"
    check = run_isolated(check_load_and_run, str(plain))
    assert check.trace_errors == 0
    assert check.nets == plain_outputs[QWEN.name][0]


def test_model_tool_encrypt_with_our_plugin_gives_a_file_bmcrypt_verifies_and_decrypts(
        vendor_dir, key_file, tmp_path):
    from bmcrypt.keys import load_key_file

    enc, dec = tmp_path / "enc.bmodel", tmp_path / "dec.bmodel"
    nets = "embedding,lm_head,block_0,block_1,block_cache_0,block_cache_1,embedding_cache"
    _model_tool(vendor_dir, "--encrypt", "-model", QWEN, "-net", nets, "-lib", plugin_path(),
                "-o", enc, key_file=key_file)
    key = load_key_file(key_file)
    report = workflow.verify_model(enc, key)
    assert not report.clear_covered  # the vendor tool's files carry no clear-region digest
    # model_tool encrypts each net's weights into a region of its own (7 nets, 4 shared blobs).
    assert set(report.encrypted_nets) == set(nets.split(","))
    workflow.decrypt_model(enc, key, output=dec)
    check = run_isolated(check_load_and_run, str(dec))
    assert check.trace_errors == 0
