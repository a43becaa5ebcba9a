"""The usual flags and conventions: -h, -V, -q, -v, completion, NO_COLOR, usage errors in the
house format, key rings from repeated -k, `-` for stdout and stdin, and `bmcrypt doctor`."""

from __future__ import annotations

import hashlib
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt, json_document
from conftest import MLP

from bmcrypt import _native

USAGE, WRONG_KEY = 2, 4


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "key"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


@pytest.fixture
def other_key(tmp_path: Path) -> Path:
    path = tmp_path / "other"
    assert bmcrypt("keygen", "-o", path).returncode == 0
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.bmodel"
    path.write_bytes(MLP.read_bytes())
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- -h, -V, start-up cost


def test_short_help_and_version():
    assert bmcrypt("-h").stdout == bmcrypt("--help").stdout
    assert "--jobs" in bmcrypt("verify", "-h").stdout
    version = bmcrypt("-V")
    assert version.returncode == 0
    assert version.stdout == bmcrypt("--version").stdout
    assert f"Crypto++ {_native.cryptopp_version()}" in version.stdout
    assert "file format 2" in version.stdout


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["verify", "--help"]])
def test_version_and_help_load_no_heavy_module(args: list[str]):
    code = ("import sys\nfrom bmcrypt.cli.main import main\n"
            f"code = main({args!r})\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'flatbuffers') or m.startswith('bmcrypt.bmodel'))\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[-1] == "HEAVY []"


# ---------------------------------------------------------------- -q, -v, NO_COLOR


def test_quiet_says_nothing_on_success_and_still_errors(model: Path, key: Path, other_key: Path):
    quiet = bmcrypt("encrypt", model, "-k", key, "-q")
    assert quiet.returncode == 0 and quiet.stdout == quiet.stderr == ""
    assert bmcrypt("verify", model, "-k", key, "--quiet").stdout == ""
    assert_clean_error(bmcrypt("verify", model, "-k", other_key, "-q"), WRONG_KEY)


def test_verbose_names_the_keys_by_id_and_times_each_file(model: Path, key: Path,
                                                          other_key: Path):
    assert bmcrypt("encrypt", model, "-k", key).returncode == 0
    result = bmcrypt("verify", model, "-k", key, "-k", other_key, "-v")
    assert result.returncode == 0
    key_ids = [line.split()[3].rstrip(",") for line in (key.read_text().splitlines()[1],
                                            other_key.read_text().splitlines()[1])]
    assert f"keys: {key_ids[0]}, {key_ids[1]}" in result.stderr
    assert f"{model}: ok in " in result.stderr


def test_no_color_is_honoured(model: Path):
    forced = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "COLUMNS": "120"}
    colored = bmcrypt("inspect", model, env=forced)
    assert "\x1b[" in colored.stdout  # the test can fail: colour is really produced
    plain = bmcrypt("inspect", model, env={**forced, "NO_COLOR": "1"})
    assert plain.returncode == 0
    assert not any(f"\x1b[{c}" in plain.stdout for c in ("3", "9", "38;"))


# ---------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args", [["verify"], ["verify", "--bogus", "x"], ["nosuch"],
                                  ["encrypt", "x", "--jobs", "0"]])
def test_usage_errors_are_one_line_and_a_hint_with_no_box(args: list[str]):
    result = bmcrypt(*args)
    assert_clean_error(result, USAGE)
    assert "╭" not in result.stderr and "Usage:" not in result.stderr


def test_an_unknown_net_is_a_usage_error_and_changes_nothing(model: Path, key: Path):
    before = model.read_bytes()
    result = bmcrypt("encrypt", model, "-k", key, "--nets", "mlp,nope")
    assert_clean_error(result, USAGE, "'nope'")
    assert "mlp" in result.stderr  # the hint lists the nets there are
    assert model.read_bytes() == before
    assert not Path(f"{model}.bak").exists()


# ---------------------------------------------------------------- completion


def test_completion_script_and_completions():
    script = bmcrypt("--show-completion", "bash")
    assert script.returncode == 0
    assert "_BMCRYPT_COMPLETE=complete_bash" in script.stdout
    words = bmcrypt(env={"_BMCRYPT_COMPLETE": "complete_bash", "COMP_WORDS": "bmcrypt enc",
                         "COMP_CWORD": "1"})
    assert words.stdout.split() == ["encrypt"]
    options = bmcrypt(env={"_BMCRYPT_COMPLETE": "complete_bash",
                           "COMP_WORDS": "bmcrypt verify --j", "COMP_CWORD": "2"})
    assert set(options.stdout.split()) == {"--jobs", "--json"}


# ---------------------------------------------------------------- key rings


def test_repeated_key_builds_a_key_ring(tmp_path: Path, key: Path, other_key: Path):
    a, b = tmp_path / "a.bmodel", tmp_path / "b.bmodel"
    for path, k in ((a, key), (b, other_key)):
        path.write_bytes(MLP.read_bytes())
        assert bmcrypt("encrypt", path, "-k", k).returncode == 0
    both = bmcrypt("verify", a, b, "-k", key, "-k", other_key, "--json")
    doc = json_document(both, "verify")
    assert doc["ok"] and len({f["key_id"] for f in doc["files"]}) == 2
    one = bmcrypt("verify", a, b, "-k", key)
    assert one.returncode == WRONG_KEY
    inspected = json_document(bmcrypt("inspect", a, b, "-k", key, "-k", other_key, "--json"),
                              "inspect")
    assert all(f["encryption"]["opened"] for f in inspected["files"])
    # encrypt: repeated -k are recipients (FORMAT.md §8.2): each key opens the file alone
    c = tmp_path / "c.bmodel"
    c.write_bytes(MLP.read_bytes())
    assert bmcrypt("encrypt", c, "-k", key, "-k", other_key).returncode == 0
    assert bmcrypt("verify", c, "-k", key).returncode == 0
    assert bmcrypt("verify", c, "-k", other_key).returncode == 0
    assert_clean_error(bmcrypt("encrypt", b, "-k", key, "-k", key), USAGE, "twice")


# ---------------------------------------------------------------- - for stdout and stdin


def test_decrypt_to_stdout_gives_the_same_model_as_to_a_file(tmp_path: Path, model: Path,
                                                            key: Path):
    assert bmcrypt("encrypt", model, "-k", key).returncode == 0
    assert bmcrypt("decrypt", model, "-k", key, "-o", tmp_path / "plain.bmodel").returncode == 0
    piped = subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", "decrypt", model,
                            "-k", key, "-o", "-"], capture_output=True, check=True)
    assert sha(piped.stdout) == sha((tmp_path / "plain.bmodel").read_bytes())
    assert not (tmp_path / "-").exists()
    assert b"decrypted" in piped.stderr


def test_encrypt_to_stdout_is_refused_and_writes_no_file_named_dash(tmp_path: Path,
                                                                    model: Path, key: Path):
    result = bmcrypt("encrypt", model, "-k", key, "-o", "-", cwd=tmp_path)
    assert_clean_error(result, USAGE, "stdout")
    assert not (tmp_path / "-").exists()
    assert model.read_bytes() == MLP.read_bytes()


def test_plaintext_is_never_written_to_a_terminal(model: Path, key: Path):
    assert bmcrypt("encrypt", model, "-k", key).returncode == 0
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", "decrypt",
                                 model, "-k", key, "-o", "-"], stdout=follower,
                                stderr=subprocess.PIPE, text=True, timeout=60)
        os.set_blocking(leader, False)
        try:
            written = os.read(leader, 1 << 16)
        except BlockingIOError:
            written = b""
    finally:
        os.close(leader)
        os.close(follower)
    assert result.returncode == USAGE
    assert "terminal" in result.stderr
    assert written == b""


def test_inspect_reads_a_model_from_stdin(model: Path):
    piped = subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", "inspect", "-",
                            "--json"], input=model.read_bytes(), capture_output=True, check=True)
    result = subprocess.CompletedProcess([], 0, piped.stdout.decode(), "")
    doc = json_document(result, "inspect")
    direct = json_document(bmcrypt("inspect", model, "--json"), "inspect")
    assert doc["files"][0]["path"] == "-"
    assert doc["files"][0]["nets"] == direct["files"][0]["nets"]
    bad = subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", "inspect", "-"],
                         input=b"not a model", capture_output=True)
    assert bad.returncode == 3
    assert b"bmcrypt: error: -: " in bad.stderr and b"stdin.bmodel" not in bad.stderr


# ---------------------------------------------------------------- doctor


def test_doctor_reports_the_machine_and_a_trial_verify(model: Path, key: Path,
                                                       other_key: Path):
    plain = json_document(bmcrypt("doctor", "--json"), "doctor")
    assert plain["plugin"]["loads"] and plain["plugin"]["api_missing"] == []
    assert plain["crypto"]["cryptopp_version"] == _native.cryptopp_version()
    assert bmcrypt("encrypt", model, "-k", key).returncode == 0
    env = {"BMCRYPT_KEY_FILE": str(key)}
    good = bmcrypt("doctor", model, "--json", env=env)
    doc = json_document(good, "doctor")
    assert doc["model"]["verified"] is True
    sources = {s["source"]: s for s in doc["keys"]["sources"]}
    assert sources["$BMCRYPT_KEY_FILE"]["key_id"] == doc["model"]["key_id"]
    text = bmcrypt("doctor", model, env=env)
    assert text.returncode == 0 and f"verified with key {doc['model']['key_id']}" in text.stdout
    wrong = bmcrypt("doctor", model, "-k", other_key)
    assert_clean_error(wrong, WRONG_KEY, "wrong key")
    assert "does not verify" in wrong.stdout
    secret = other_key.read_text().split("key: ")[1].strip()
    assert secret not in wrong.stdout + wrong.stderr + good.stdout
