"""Start-up of the real command (issue 17): what `bmcrypt --version`, `--help` and `inspect` of a
plain model import, read from the child's own `python -X importtime` report.

Import counts, unlike wall times, do not change when other work shares the CPUs, so these tests
hold the start-up budget on any machine; bench/run.py times it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MLP

#: Heavy for a command that does not need them: numpy (~40 ms, through the flatbuffers runtime),
#: the generated FlatBuffer code, and the flatbuffers runtime itself.
HEAVY = ("numpy", "flatbuffers", "bmcrypt.bmodel._fbs")


def imported(*args: str | os.PathLike[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `bmcrypt ARGS…` as clitools does, and return it with every module it imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMCRYPT_")}
    result = subprocess.run([sys.executable, "-X", "importtime", "-P", "-m", "bmcrypt.cli.main",
                             *map(str, args)], capture_output=True, text=True, env=env,
                            timeout=120, input="")
    names = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    names.discard("package")  # the report's own header line
    assert names, result.stderr  # the report was there: the test can fail
    return result, names


def loaded(names: set[str], *roots: str) -> list[str]:
    return sorted(n for n in names for r in roots if n == r or n.startswith(r + "."))


def test_version_starts_nothing_but_the_core():
    result, names = imported("--version")
    assert result.returncode == 0 and result.stdout.startswith("bmcrypt "), result.stderr
    # No parser and no terminal library either: the line is printed before Typer would load.
    assert loaded(names, *HEAVY, "bmcrypt.bmodel", "typer", "rich") == []


def test_short_version_is_the_same_line_and_as_cheap():
    long, _ = imported("--version")
    short, names = imported("-V")
    assert short.returncode == 0 and short.stdout == long.stdout
    assert loaded(names, *HEAVY, "typer", "rich") == []


@pytest.mark.parametrize("args", [["--help"], ["inspect", "--help"], ["rekey", "--help"]])
def test_help_loads_no_model_code(args: list[str]):
    result, names = imported(*args)
    assert result.returncode == 0 and "Usage" in result.stdout, result.stderr
    assert loaded(names, *HEAVY, "bmcrypt.bmodel", "bmcrypt.crypto") == []
    # Plain help: Typer's rich formatter imports rich's Markdown, pygments and tracebacks, about
    # half of a `--help` (issue 17: 120 ms).
    assert loaded(names, "typer.rich_utils", "rich.markdown", "rich.traceback", "pygments") == []


def test_inspect_of_a_plain_model_reads_without_numpy_or_generated_code(tmp_path: Path):
    result, names = imported("inspect", MLP)
    assert result.returncode == 0, result.stderr
    assert "plain (not encrypted)" in result.stdout and "BM1684X" in result.stdout
    assert "bmcrypt.bmodel.reader" in names  # it did read the FlatBuffer (the verifying walk)
    assert loaded(names, *HEAVY) == []


def test_inspect_json_of_a_plain_model_too():
    result, names = imported("inspect", MLP, "--json")
    assert result.returncode == 0, result.stderr
    assert '"ok": true' in result.stdout
    assert loaded(names, *HEAVY) == []


def test_rekey_reads_the_metadata_without_numpy_generated_code_or_rich(tmp_path: Path):
    # rekey only finds the weight envelopes' key blocks: the verifying walk's tree is enough.
    model = tmp_path / "model.bmodel"
    model.write_bytes(MLP.read_bytes())
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    for key in (old, new):
        assert imported("keygen", "-o", key)[0].returncode == 0
    assert imported("encrypt", model, "-k", old)[0].returncode == 0
    result, names = imported("rekey", model, "-k", old, "--new-key", new)
    assert result.returncode == 0, result.stderr
    assert "now open with key" in result.stderr
    assert loaded(names, *HEAVY, "rich") == []
    assert imported("verify", model, "-k", new)[0].returncode == 0
    assert imported("verify", model, "-k", old)[0].returncode == 4  # the old key no longer opens


@pytest.mark.parametrize("args", [["--version"], ["plugin-path"]])
def test_a_reader_that_left_ends_the_run_quietly(args: list[str]):
    # `--version` prints without click now, and `plugin-path` without rich: a closed pipe still
    # ends either as click ends it: exit 1, nothing on stderr, no traceback.
    result, names = imported(*args)
    assert result.returncode == 0 and result.stdout.strip()
    assert loaded(names, "rich") == []  # the plain paths are the ones under test
    run = subprocess.Popen([sys.executable, "-P", "-m", "bmcrypt.cli.main", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert run.stdout is not None
    run.stdout.close()  # before the child has started: its write meets a closed pipe
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1
    assert stderr == ""


def test_encrypt_verify_and_decrypt_never_import_numpy(tmp_path: Path):
    # They use the generated code, so the flatbuffers runtime; it imports numpy whenever it is
    # installed, for features bmcrypt never uses (~50 ms, and OpenBLAS threads that spin).
    key, sealed, back = tmp_path / "k.key", tmp_path / "m.bmodel", tmp_path / "back.bmodel"
    assert imported("keygen", "-o", key)[0].returncode == 0
    for args in (["encrypt", MLP, "-k", key, "-o", sealed], ["verify", sealed, "-k", key],
                 ["decrypt", sealed, "-k", key, "-o", back]):
        result, names = imported(*args)
        assert result.returncode == 0, result.stderr
        assert "bmcrypt.bmodel._fbs" in names or args[0] == "verify"
        assert loaded(names, "numpy") == []
    assert back.read_bytes() == MLP.read_bytes()
