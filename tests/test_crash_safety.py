"""Nothing is ever lost: kill -9 at any moment of an in-place encrypt, and concurrent runs."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synth
from clitools import bmcrypt

from bmcrypt import workflow
from bmcrypt.keys import load_key_file

SIZE = 64 << 20  # big enough that an encrypt takes a good fraction of a second


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A synthetic model with large random weights, and its SHA-256."""
    path = tmp_path_factory.mktemp("big") / "big.bmodel"
    region = synth.BinaryRegion(align=4096)
    weights = random.Random(7).randbytes(SIZE)
    m = synth.model([synth.net("big", [synth.stage(region, coeff=weights)])])
    path.write_bytes(synth.build_bmodel(m, region))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "k"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


def _start_encrypt(model: Path, key: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-P", "-m", "bmcrypt.cli.main", "encrypt", str(model),
                             "--key", str(key)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _assert_recoverable(model: Path, original_sha: str, key: Path) -> None:
    """The promise: the model is untouched, or complete and verifying; a backup at its final
    name is byte-identical to the original."""
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    if sha != original_sha:
        workflow.verify_model(model, load_key_file(key))
    backup = model.with_name(model.name + ".bak")
    if backup.exists():
        assert hashlib.sha256(backup.read_bytes()).hexdigest() == original_sha


def test_kill_9_at_any_moment_of_an_in_place_encrypt_loses_nothing(big_model, key_file, tmp_path):
    source, original_sha = big_model
    # Time a whole run once, then kill runs at points spread over that span.
    model = tmp_path / "model.bmodel"
    model.write_bytes(source.read_bytes())
    t0 = time.monotonic()
    assert _start_encrypt(model, key_file).wait() == 0
    span = time.monotonic() - t0
    rng = random.Random(1)
    for i in range(8):
        for p in tmp_path.iterdir():
            p.unlink()
        model.write_bytes(source.read_bytes())
        proc = _start_encrypt(model, key_file)
        time.sleep(span * (i + rng.random()) / 8)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _assert_recoverable(model, original_sha, key_file)
        again = bmcrypt("encrypt", model, "--key", key_file)
        # A rerun finishes the job, or says there is nothing left to do.
        assert again.returncode in (0, 6), again.stderr
        workflow.verify_model(model, load_key_file(key_file))
        leftovers = [p.name for p in tmp_path.iterdir() if "bmcrypt-tmp" in p.name]
        assert not leftovers


def test_two_concurrent_runs_never_both_write(big_model, key_file, tmp_path):
    source, original_sha = big_model
    model = tmp_path / "model.bmodel"
    model.write_bytes(source.read_bytes())
    first, second = _start_encrypt(model, key_file), _start_encrypt(model, key_file)
    codes = sorted([first.wait(), second.wait()])
    # One encrypts; the other finds the lock held (8) or, if it came late, the work done (6).
    assert codes in ([0, 6], [0, 8]), codes
    workflow.verify_model(model, load_key_file(key_file))
    _assert_recoverable(model, original_sha, key_file)
