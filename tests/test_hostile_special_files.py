"""FIFOs, sockets, devices and directories as the model: refused at once, in every command.

Opening a FIFO for reading waits for a writer, forever; issue 12 found `verify`, `encrypt`,
`decrypt`, `rekey` and `run` hanging there. Every command must refuse such a path before any
open that can block, with one message (``X is a FIFO, not a regular file``) and exit 8.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt
from conftest import MLP

FILES = 8
#: The refusal itself is instant; this bounds the interpreter's start-up on a busy 2-core box.
QUICK = 10.0


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


def make_special(kind: str, where: Path) -> tuple[Path, str]:
    """A special file of `kind` at `where` (or the system's), and the words that name it."""
    if kind == "fifo":
        os.mkfifo(where)
        return where, "is a FIFO, not a regular file"
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(where))  # left bound: the file stays while the test runs
        make_special.keep = sock  # type: ignore[attr-defined]
        return where, "is a socket, not a regular file"
    if kind == "chardev":
        return Path("/dev/null"), "is a character device, not a regular file"
    where.mkdir()
    return where, "is a directory, not a regular file"


def commands(model: Path, key: Path, tmp: Path) -> dict[str, list[str | Path]]:
    new_key = tmp / "new-key"
    if not new_key.exists():
        assert bmcrypt("keygen", "-o", new_key).returncode == 0
    npz = tmp / "in.npz"
    if not npz.exists():
        import numpy as np

        np.savez(npz, x=np.zeros(4, np.float32))
    (tmp / "tok").mkdir(exist_ok=True)
    return {
        "verify": ["verify", model, "--key", key],
        "encrypt": ["encrypt", model, "--key", key],
        "encrypt-o": ["encrypt", model, "--key", key, "-o", tmp / "out.bmodel"],
        "decrypt": ["decrypt", model, "--key", key],
        "rekey": ["rekey", model, "--key", key, "--new-key", new_key],
        "run": ["run", model, "-i", npz, "-o", tmp / "out.npz"],
        "inspect": ["inspect", model],
        "backup": ["backup", model, "--backup", tmp / "m.bak"],
        "restore": ["restore", model, "--backup", tmp / "m.bak"],
        "chat": ["chat", model, "--tokenizer", tmp / "tok", "--prompt", "hi"],
    }


COMMANDS = ["verify", "encrypt", "encrypt-o", "decrypt", "rekey", "run", "inspect", "backup",
            "restore", "chat"]


@pytest.mark.parametrize("kind", ["fifo", "socket", "chardev", "directory"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_special_file_as_the_model_is_refused_at_once(tmp_path, key, kind, command):
    if command == "restore":  # restore reads the backup: that one exists and is good
        good = tmp_path / "good.bmodel"
        good.write_bytes(MLP.read_bytes())
        assert bmcrypt("backup", good, "--backup", tmp_path / "m.bak").returncode == 0
    model, words = make_special(kind, tmp_path / "special")
    started = time.monotonic()
    result = bmcrypt(*commands(model, key, tmp_path)[command], timeout=60)
    elapsed = time.monotonic() - started
    assert_clean_error(result, FILES, words)
    assert elapsed < QUICK, elapsed
    assert not (tmp_path / "out.bmodel").exists()
    leftovers = [n for n in os.listdir(tmp_path) if "bmcrypt-" in n]
    assert leftovers == []


@pytest.mark.parametrize("command", ["verify", "inspect"])
def test_dev_null_gets_one_classification(key, command):
    result = bmcrypt(command, "/dev/null", "--key", key)
    assert_clean_error(result, FILES, "/dev/null is a character device, not a regular file")


def test_a_fifo_as_the_backup_is_refused_at_once(tmp_path):
    model = tmp_path / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    os.mkfifo(tmp_path / "m.bmodel.bak")
    assert_clean_error(bmcrypt("restore", model, timeout=60), FILES,
                       "is a FIFO, not a regular file")
    os.unlink(tmp_path / "m.bmodel.bak")
    os.mkfifo(tmp_path / "m.bmodel.bak.sha256")
    assert bmcrypt("backup", model, timeout=60).returncode == FILES


def test_a_killed_run_leaves_no_lock_that_blocks_the_next(tmp_path, key):
    """Locks are flock(2)s: the kernel drops them with their process, whatever killed it."""
    model = tmp_path / "m.bmodel"
    model.write_bytes(MLP.read_bytes())
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom bmcrypt.files import file_lock\n"
         "with file_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n",
         str(model)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert bmcrypt("encrypt", model, "--key", key).returncode == FILES  # Locked
        holder.kill()
        holder.wait(timeout=10)
        assert (tmp_path / ".m.bmodel.bmcrypt-lock").exists()  # the file stays, the lock not
        result = bmcrypt("encrypt", model, "--key", key)
        assert result.returncode == 0, result.stderr
    finally:
        holder.kill()
        holder.wait()
