"""The command line as a user meets it: exit codes, one-line errors with hints, no secrets."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt
from conftest import MLP

# Exit codes are part of the interface (bmcrypt/errors.py).
FORMAT, WRONG_KEY, TAMPERED, STATE, KEYS, FILES = 3, 4, 5, 6, 7, 8


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


@pytest.fixture
def encrypted(model: Path, key: Path) -> Path:
    assert bmcrypt("encrypt", model, "--key", key).returncode == 0
    return model


def key_hex(path: Path) -> str:
    return re.search(r"[0-9a-f]{64}", path.read_text()).group(0)  # type: ignore[union-attr]


# ---------------------------------------------------------------- keys


def test_keygen_writes_a_private_key_file_and_never_overwrites_it(key: Path):
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    assert_clean_error(bmcrypt("keygen", "-o", key), KEYS, "already exists")
    assert key.read_bytes() == before


def test_a_key_file_readable_by_others_is_refused(encrypted: Path, key: Path):
    key.chmod(0o644)
    result = bmcrypt("verify", encrypted, "--key", key)
    assert_clean_error(result, KEYS)
    assert "chmod 600" in result.stderr


def test_the_key_can_come_from_the_environment(encrypted: Path, key: Path):
    assert bmcrypt("verify", encrypted, env={"BMCRYPT_KEY_FILE": str(key)}).returncode == 0


def test_no_key_at_all_says_how_to_give_one(encrypted: Path):
    result = bmcrypt("verify", encrypted)
    assert_clean_error(result, KEYS, "no key")
    assert "--key" in result.stderr


def test_a_passphrase_from_the_environment(model: Path):
    env = {"BMCRYPT_PASSPHRASE": "a long passphrase"}
    assert bmcrypt("encrypt", model, "--passphrase", env=env).returncode == 0
    assert bmcrypt("verify", model, "--passphrase", env=env).returncode == 0
    wrong = bmcrypt("verify", model, "--passphrase", env={"BMCRYPT_PASSPHRASE": "another one"})
    assert_clean_error(wrong, WRONG_KEY)


# ---------------------------------------------------------------- bad input, one line each


@pytest.mark.parametrize("command", ["encrypt", "verify", "decrypt", "rekey"])
@pytest.mark.parametrize("case, code, phrase", [
    ("missing", FILES, "no such file"),
    ("directory", FILES, "directory"),
    ("empty", FORMAT, ""),
    ("text", FORMAT, "not a bmodel"),
    ("three_bytes", FORMAT, ""),
])
def test_bad_input_gets_one_line_and_a_hint(command: str, case: str, code: int, phrase: str,
                                            tmp_path: Path, key: Path, other_key: Path):
    path = tmp_path / case
    if case == "directory":
        path.mkdir()
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "text":
        path.write_text("this is not a model, it is a README\n" * 10)
    elif case == "three_bytes":
        path.write_bytes(MLP.read_bytes()[:3])
    args = ["--new-key", other_key] if command == "rekey" else []
    result = bmcrypt(command, path, "--key", key, *args)
    assert_clean_error(result, code, phrase)


def test_wrong_key_tampered_truncated_each_have_their_own_exit_code(encrypted: Path, key: Path,
                                                                    other_key: Path):
    assert_clean_error(bmcrypt("verify", encrypted, "--key", other_key), WRONG_KEY, "wrong key")
    data = bytearray(encrypted.read_bytes())
    data[len(data) // 2] ^= 0x10
    encrypted.write_bytes(data)
    assert_clean_error(bmcrypt("verify", encrypted, "--key", key), TAMPERED, "changed")
    encrypted.write_bytes(data[:len(data) - 10])
    assert_clean_error(bmcrypt("verify", encrypted, "--key", key), FORMAT)


def test_already_encrypted_and_not_encrypted_are_state_errors(encrypted: Path, key: Path,
                                                             tmp_path: Path):
    assert_clean_error(bmcrypt("encrypt", encrypted, "--key", key), STATE, "already encrypted")
    plain = tmp_path / "plain.bmodel"
    plain.write_bytes(MLP.read_bytes())
    assert_clean_error(bmcrypt("verify", plain, "--key", key), STATE, "plain")


def test_restore_without_a_backup_explains(model: Path):
    assert_clean_error(bmcrypt("restore", model), FILES, "no backup")


# ---------------------------------------------------------------- quiet and secret


def test_success_is_quiet_on_stdout_and_talks_on_stderr(model: Path, key: Path):
    result = bmcrypt("encrypt", model, "--key", key)
    assert result.returncode == 0
    assert result.stdout == ""
    assert "encrypted" in result.stderr and "backup" in result.stderr


def test_key_material_never_appears_in_any_output(model: Path, key: Path, other_key: Path,
                                                  tmp_path: Path):
    secrets = {key_hex(key), key_hex(other_key)}
    runs = [
        bmcrypt("encrypt", model, "--key", key),
        bmcrypt("verify", model, "--key", key, "--json"),
        bmcrypt("verify", model, "--key", other_key),
        bmcrypt("rekey", model, "--key", key, "--new-key", other_key),
        bmcrypt("decrypt", model, "--key", other_key, "-o", tmp_path / "plain.bmodel"),
    ]
    for result in runs:
        for secret in secrets:
            assert secret not in result.stdout + result.stderr
    # Nor on disk beside the model: only the model, its backup and its manifest remain.
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"key", "other", "model.bmodel", "model.bmodel.bak",
                     "model.bmodel.bak.sha256", "plain.bmodel"}
    for name in names - {"key", "other"}:
        blob = (tmp_path / name).read_bytes()
        for secret in secrets:
            assert bytes.fromhex(secret) not in blob and secret.encode() not in blob


def test_version_and_help(tmp_path: Path):
    assert bmcrypt("--version").stdout.startswith("bmcrypt ")
    help_text = bmcrypt("--help").stdout
    for command in ("encrypt", "decrypt", "verify", "rekey", "restore", "keygen", "inspect"):
        assert command in help_text
    assert os.environ.get("BMCRYPT_KEY_FILE") is None or True
