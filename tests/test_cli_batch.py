"""Many models per command (bmcrypt/cli/batch.py): each file on its own, one result line per
file, a summary, the exit code of the first failure, and the failing file left untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from clitools import bmcrypt, json_document
from conftest import MLP

USAGE, FORMAT, TAMPERED, FILES = 2, 3, 5, 8


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


def fleet(root: Path, bad: bytes | None = None) -> list[Path]:
    """Three copies of the MLP under root/models (the middle one replaced by `bad`)."""
    models = root / "models"
    (models / "sub").mkdir(parents=True)
    paths = [models / "a.bmodel", models / "b.bmodel", models / "sub" / "c.bmodel"]
    for p in paths:
        p.write_bytes(MLP.read_bytes())
    if bad is not None:
        paths[1].write_bytes(bad)
    return paths


def state(path: Path) -> str:
    return json_document(bmcrypt("inspect", path, "--json"), "inspect")["files"][0][
        "encryption"]["state"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_encrypt_a_directory_with_a_truncated_model_in_the_middle(tmp_path: Path, key: Path,
                                                                 jobs: str):
    paths = fleet(tmp_path, bad=MLP.read_bytes()[:5000])
    before = sha(paths[1])
    result = bmcrypt("encrypt", "--recursive", tmp_path / "models", "-k", key, "--jobs", jobs)
    assert result.returncode == FORMAT, result.stderr
    assert "Traceback" not in result.stderr
    # The others are done, the bad one is untouched.
    assert [state(p) for p in (paths[0], paths[2])] == ["bmcrypt", "bmcrypt"]
    assert sha(paths[1]) == before
    lines = result.stderr.splitlines()
    assert sum(line.startswith("encrypted ") for line in lines) == 2
    assert any(line.startswith(f"bmcrypt: error: {paths[1]}") for line in lines)
    assert lines[-2] == "bmcrypt: error: 1 of 3 files failed (see above)"
    assert lines[-1].startswith("bmcrypt: hint:")


def test_decrypt_several_with_a_tampered_one_in_the_middle(tmp_path: Path, key: Path):
    paths = fleet(tmp_path)
    assert bmcrypt("encrypt", *paths, "-k", key, "--no-backup").returncode == 0
    data = bytearray(paths[1].read_bytes())
    data[len(data) // 2] ^= 1
    paths[1].write_bytes(data)
    result = bmcrypt("decrypt", *paths, "-k", key, "--json")
    assert result.returncode == TAMPERED
    doc = json_document(result, "decrypt")
    assert [f["ok"] for f in doc["files"]] == [True, False, True]
    assert doc["files"][1]["error"]["kind"] == "tampered"
    assert doc["summary"] == {"total": 3, "succeeded": 2, "failed": 1}
    assert doc["error"]["kind"] == "files_failed" and doc["error"]["code"] == TAMPERED
    assert paths[1].read_bytes() == data
    assert state(paths[0]) == state(paths[2]) == "plain"


def test_the_exit_code_is_that_of_the_first_failure_in_the_order_given(tmp_path: Path,
                                                                      key: Path):
    paths = fleet(tmp_path)
    missing = tmp_path / "missing.bmodel"
    text = tmp_path / "text.bmodel"
    text.write_text("not a model\n" * 20)
    result = bmcrypt("verify", missing, text, "-k", key)
    assert result.returncode == FILES
    assert "all 2 files failed" in result.stderr
    assert bmcrypt("verify", text, missing, "-k", key).returncode == FORMAT
    del paths


def test_verify_and_rekey_a_tree_in_parallel(tmp_path: Path, key: Path):
    paths = fleet(tmp_path)
    new = tmp_path / "new"
    assert bmcrypt("keygen", "-o", new).returncode == 0
    assert bmcrypt("encrypt", "--recursive", tmp_path / "models", "-k", key, "-j", "2").returncode == 0
    verified = bmcrypt("verify", "-r", tmp_path / "models", "-k", key, "-j", "2")
    assert verified.returncode == 0, verified.stderr
    assert sum(": OK — " in line for line in verified.stdout.splitlines()) == 3
    assert "3 files verified" in verified.stderr
    rekeyed = bmcrypt("rekey", "-r", tmp_path / "models", "-k", key, "--new-key", new,
                      "-j", "2", "--json")
    doc = json_document(rekeyed, "rekey")
    assert sorted(f["path"] for f in doc["files"]) == sorted(map(str, paths))
    assert bmcrypt("verify", *paths, "-k", new).returncode == 0


def test_backup_and_restore_several(tmp_path: Path, key: Path):
    paths = fleet(tmp_path)
    made = bmcrypt("backup", *paths, "--json")
    doc = json_document(made, "backup")
    assert all(f["backup"]["created"] for f in doc["files"])
    for p in paths:
        p.write_bytes(b"scribbled over")
    restored = bmcrypt("restore", "-r", tmp_path / "models")
    assert restored.returncode == 0, restored.stderr
    assert all(sha(p) == sha(MLP) for p in paths)
    assert "3 files restored" in restored.stderr


def test_a_directory_without_r_is_one_failing_file_and_says_so(tmp_path: Path, key: Path):
    paths = fleet(tmp_path)
    result = bmcrypt("encrypt", paths[0], tmp_path / "models" / "sub", "-k", key)
    assert result.returncode == FILES
    assert "pass -r" in result.stderr
    assert state(paths[0]) == "bmcrypt"


def test_options_that_name_one_file_refuse_several_models(tmp_path: Path, key: Path):
    paths = fleet(tmp_path)
    out = bmcrypt("encrypt", *paths, "-k", key, "-o", tmp_path / "out.bmodel")
    assert out.returncode == USAGE and "single model" in out.stderr
    backup = bmcrypt("encrypt", *paths, "-k", key, "--backup", tmp_path / "one.bak")
    assert backup.returncode == USAGE
    assert all(sha(p) == sha(MLP) for p in paths)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert bmcrypt("verify", "-r", empty, "-k", key).returncode == USAGE


def test_inspect_a_tree_compares_the_weights(tmp_path: Path):
    fleet(tmp_path)
    doc = json_document(bmcrypt("inspect", "-r", tmp_path / "models", "--json", "-j", "2"),
                        "inspect")
    assert doc["summary"]["total"] == 3
    assert doc["comparison"]["weights"] == "identical"


def test_one_progress_bar_covers_the_batch_on_a_terminal(tmp_path: Path, key: Path):
    import os
    import pty
    import subprocess
    import sys

    fleet(tmp_path)
    assert bmcrypt("encrypt", "--recursive", tmp_path / "models", "-k", key, "-q").returncode == 0
    leader, follower = pty.openpty()
    try:
        run = subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", "verify", "-r",
                              tmp_path / "models", "-k", key, "-j", "2"], stderr=follower,
                             stdout=subprocess.PIPE, text=True, timeout=120)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 1 << 16)
            except OSError:  # the terminal is closed once everything was read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert run.returncode == 0
    assert b"3/3" in seen and b"files" in seen  # the bar counted the whole batch
    assert b"3 files verified" in seen
    assert run.stdout.count(": OK — ") == 3  # the data is on stdout, not in the bar
