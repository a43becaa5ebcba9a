"""SIGINT, SIGTERM and SIGHUP stop every command cleanly and never report success (issue 12).

Ctrl-C during `encrypt` of a 256 MiB model used to exit 0 with the model still plain, so
`bmcrypt encrypt m && ship m` shipped the plaintext. Now: exit 128 + the signal's number, one
line ``bmcrypt: interrupted (SIGTERM)``, and the model is either the untouched plain file with no
temp file or lock left, or (when the signal came after the commit) fully encrypted and verifying.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synth
from clitools import bmcrypt

MiB = 1 << 20


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("big") / "big.bmodel"
    path.write_bytes(synth.large_coeff(256 * MiB))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("key") / "key"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


def start(*args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMCRYPT_")}
    return subprocess.Popen([sys.executable, "-P", "-m", "bmcrypt.cli.main", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def sha(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def bmcrypt_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if "bmcrypt-" in n)


# An in-place encrypt of 256 MiB takes a few seconds here: sealing into a temp file, then the
# backup (copy, fsync, re-read from the disk), then the commit. The points fall in each phase.
@pytest.mark.parametrize(("sig", "after"), [
    (signal.SIGINT, 0.3), (signal.SIGINT, 1.5), (signal.SIGINT, 3.0), (signal.SIGINT, 4.5),
    (signal.SIGTERM, 0.8), (signal.SIGTERM, 2.5), (signal.SIGTERM, 4.0), (signal.SIGTERM, 6.0),
    (signal.SIGHUP, 2.0),
])
def test_an_interrupted_encrypt_never_claims_success(tmp_path, big, key, sig, after):
    source, plain_digest = big
    model = tmp_path / "m.bmodel"
    model.write_bytes(source.read_bytes())
    run = start("encrypt", model, "--key", key)
    time.sleep(after)
    run.send_signal(sig)
    _out, err = run.communicate(timeout=120)
    assert "Traceback" not in err
    assert bmcrypt_files(tmp_path) == []  # no temp file, no lock file
    backup = tmp_path / "m.bmodel.bak"
    assert not backup.exists() or sha(backup) == plain_digest  # a backup is whole or absent
    if sha(model) == plain_digest:  # stopped before the commit: the model is as it was
        assert run.returncode == 128 + sig, (run.returncode, err)
        assert err.strip().splitlines()[-1] == f"bmcrypt: interrupted ({signal.Signals(sig).name})"
    else:  # the commit won the race: it must be the whole, verifying encrypted model
        verified = bmcrypt("verify", model, "--key", key)
        assert verified.returncode == 0, verified.stderr
        assert run.returncode in (0, 128 + sig)


def test_an_interrupted_backup_leaves_no_partial_backup(tmp_path, big):
    source, plain_digest = big
    model = tmp_path / "m.bmodel"
    model.write_bytes(source.read_bytes())
    run = start("backup", model)
    time.sleep(1.0)
    run.send_signal(signal.SIGTERM)
    _out, err = run.communicate(timeout=120)
    backup = tmp_path / "m.bmodel.bak"
    if run.returncode == 0:
        assert sha(backup) == plain_digest
    else:
        assert run.returncode == 143, err
        assert not backup.exists() or sha(backup) == plain_digest
    assert bmcrypt_files(tmp_path) == []
    assert sha(model) == plain_digest
