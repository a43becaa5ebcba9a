"""Read-only media, sparse and hard-linked models, hostile names, prompts without a terminal
(issue 12). Each test failed before its fix."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import synth
from clitools import assert_clean_error, bmcrypt
from conftest import MLP

FILES, KEYS = 8, 7
ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "tests" / "fixtures" / "tiny-qwen2-tokenizer"
QWEN = ROOT / "tests" / "fixtures" / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
MiB = 1 << 20


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


def _writable(directory: Path) -> bool:
    try:
        (directory / ".probe").touch()
    except OSError:
        return False
    (directory / ".probe").unlink()
    return True


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """`directory` seen read-only: a read-only bind mount where we may mount (root in the test
    sandbox), else the immutable attribute; skipped where neither works."""
    view = directory.with_name(directory.name + "-ro")
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", directory, view], capture_output=True)
    if mounted.returncode == 0:
        try:
            if subprocess.run(["mount", "-o", "remount,bind,ro", view],
                              capture_output=True).returncode == 0 and not _writable(view):
                yield view
                return
        finally:
            subprocess.run(["umount", view], capture_output=True)
    if subprocess.run(["chattr", "+i", directory], capture_output=True).returncode == 0:
        try:
            if not _writable(directory):
                yield directory
                return
        finally:
            subprocess.run(["chattr", "-i", directory], capture_output=True)
    pytest.skip("no way to make a read-only directory here (mount, chattr)")


@pytest.fixture
def media(tmp_path: Path, key: Path) -> Iterator[Path]:
    """A read-only directory holding plain and encrypted MLP and LLM models."""
    src = tmp_path / "media"
    src.mkdir()
    for name, model in (("mlp", MLP), ("qwen", QWEN)):
        shutil.copyfile(model, src / f"{name}.bmodel")
        shutil.copyfile(model, src / f"{name}.enc.bmodel")
        assert bmcrypt("encrypt", src / f"{name}.enc.bmodel", "--key", key,
                       "--no-backup").returncode == 0
    with read_only(src) as ro:
        yield ro


def test_read_only_commands_work_on_read_only_media(media, key, tmp_path, vendor_dir):
    out = tmp_path / "out"
    out.mkdir()
    np.savez(out / "in.npz", x=np.zeros((1, 64), np.float32))
    enc, plain = media / "mlp.enc.bmodel", media / "mlp.bmodel"
    runs = {
        "verify": ["verify", enc, "--key", key],
        "inspect": ["inspect", enc, "--key", key],
        "decrypt -o": ["decrypt", enc, "--key", key, "-o", out / "plain.bmodel"],
        "encrypt -o": ["encrypt", plain, "--key", key, "-o", out / "enc.bmodel"],
        "run": ["run", enc, "--key", key, "--runtime", vendor_dir, "-i", out / "in.npz",
                "-o", out / "out.npz"],
        "chat": ["chat", media / "qwen.enc.bmodel", "--key", key, "--tokenizer", TOKENIZER,
                 "--runtime", vendor_dir, "--prompt", "hi", "--max-new-tokens", "2"],
    }
    failed = {}
    for what, args in runs.items():
        result = bmcrypt(*args)
        if result.returncode != 0:
            failed[what] = result.stderr.strip()
    assert failed == {}
    assert bmcrypt("verify", out / "plain.bmodel", "--key", key).returncode == 6  # plain
    assert bmcrypt("verify", out / "enc.bmodel", "--key", key).returncode == 0


def test_writing_next_to_a_model_on_read_only_media_is_exit_8(media, key):
    """As root a read-only filesystem says EROFS where another user gets EACCES: the same
    refusal either way (it was exit 1 for root and 8 for others)."""
    assert_clean_error(bmcrypt("encrypt", media / "mlp.bmodel", "--key", key), FILES,
                       "cannot create files in")
    assert_clean_error(bmcrypt("backup", media / "mlp.bmodel"), FILES, "cannot create files in")


# ---------------------------------------------------------------- check before copying, sparse


def punch_holes(path: Path) -> None:
    subprocess.run(["fallocate", "--dig-holes", path], check=True)


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_a_broken_model_is_refused_before_it_is_backed_up(tmp_path, key):
    model = tmp_path / "m.bmodel"
    data = bytearray(synth.large_coeff(64 * MiB))
    data[len(data) // 2] ^= 0xFF  # inside the weights: their check code no longer matches
    model.write_bytes(data)
    punch_holes(model)
    result = bmcrypt("encrypt", model, "--key", key)
    assert result.returncode != 0 and "check_code" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["key", "m.bmodel"]  # no backup was written


def test_backup_and_restore_keep_a_sparse_model_sparse(tmp_path):
    model = tmp_path / "m.bmodel"
    model.write_bytes(synth.large_coeff(64 * MiB))
    punch_holes(model)
    if allocated(model) > 8 * MiB:
        pytest.skip("this filesystem does not keep holes")
    original = model.read_bytes()
    assert bmcrypt("backup", model).returncode == 0
    backup = tmp_path / "m.bmodel.bak"
    assert backup.read_bytes() == original
    assert allocated(backup) <= allocated(model) + MiB
    model.unlink()
    result = bmcrypt("restore", model)
    assert result.returncode == 0, result.stderr
    assert model.read_bytes() == original
    assert allocated(model) <= allocated(backup) + MiB


# ---------------------------------------------------------------- hard links


def test_encrypting_a_hard_linked_model_warns_that_the_other_names_keep_the_plaintext(
        tmp_path, key):
    model = tmp_path / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    os.link(model, tmp_path / "other-name.bmodel")
    os.link(model, tmp_path / "third-name.bmodel")
    result = bmcrypt("encrypt", model, "--key", key)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("bmcrypt: warning:")]
    assert len(warnings) == 1 and "2 other hard links" in warnings[0]
    assert (tmp_path / "other-name.bmodel").read_bytes() == MLP.read_bytes()
    lone = tmp_path / "lone.bmodel"
    lone.write_bytes(MLP.read_bytes())
    assert "warning" not in bmcrypt("encrypt", lone, "--key", key).stderr


# ---------------------------------------------------------------- names on the terminal


HOSTILE = "evil\x1b]0;owned\x07\x1b[2J\nbmcrypt: OK.bmodel"


def test_control_characters_in_names_are_escaped_in_human_output(tmp_path, key):
    model = tmp_path / HOSTILE
    model.write_bytes(MLP.read_bytes())
    outputs = [bmcrypt("encrypt", model, "--key", key),
               bmcrypt("verify", model, "--key", key),
               bmcrypt("inspect", model, "--key", key),
               bmcrypt("verify", tmp_path / (HOSTILE + "-missing"), "--key", key)]
    for result in outputs:
        text = result.stdout + result.stderr
        assert "\x1b" not in text and "\x07" not in text, text
        assert "\nbmcrypt: OK" not in text
        assert "\\x1b]0;owned\\x07\\x1b[2J\\nbmcrypt: OK" in text


# ---------------------------------------------------------------- prompts


def test_passphrase_without_a_terminal_is_refused_not_read_from_stdin(tmp_path):
    model = tmp_path / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMCRYPT_")}
    result = subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", "encrypt", model,
                             "-p"], input="secret\nsecret\n", capture_output=True, text=True,
                            env=env, timeout=60, start_new_session=True)  # no controlling tty
    assert_clean_error(result, KEYS, "no terminal")
    assert "BMCRYPT_PASSPHRASE" in result.stderr and "echoed" not in result.stderr
    assert model.read_bytes() == MLP.read_bytes()
