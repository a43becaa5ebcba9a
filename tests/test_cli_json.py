"""`--json` on every command: one document, valid against schemas/json/, on success and on every
kind of failure, with the usual exit code; never a secret."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import SCHEMAS, bmcrypt, json_document
from conftest import MLP

import bmcrypt.errors as errors_module
from bmcrypt.cli.batch import FilesFailed
from bmcrypt.cli.jsondoc import kind
from bmcrypt.errors import BmcryptError
from bmcrypt.inspect import SomeFilesFailed


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
    return re.search(r"key: ([0-9a-f]{64})", path.read_text()).group(1)  # type: ignore[union-attr]


# ---------------------------------------------------------------- success


def test_every_file_command_succeeds_with_a_valid_document(tmp_path: Path, model: Path,
                                                          key: Path, other_key: Path):
    docs = {}
    runs = [
        ("keygen", ["keygen", "-o", tmp_path / "third"]),
        ("backup", ["backup", model]),
        ("encrypt", ["encrypt", model, "-k", key]),
        ("inspect", ["inspect", model, "-k", key]),
        ("verify", ["verify", model, "-k", key]),
        ("rekey", ["rekey", model, "-k", key, "--new-key", other_key]),
        ("decrypt", ["decrypt", model, "-k", other_key, "-o", tmp_path / "plain.bmodel"]),
        ("restore", ["restore", model]),
        ("plugin-path", ["plugin-path"]),
    ]
    for command, args in runs:
        result = bmcrypt(*args, "--json")
        assert result.returncode == 0, (command, result.stderr)
        docs[command] = json_document(result, command)
        assert docs[command]["schema"] == "bmcrypt/1" and docs[command]["ok"] is True
    # A single file is a batch of one: the same shape as for many.
    for command in ("backup", "encrypt", "inspect", "verify", "rekey", "decrypt", "restore"):
        assert len(docs[command]["files"]) == 1
        assert docs[command]["files"][0]["path"] == str(model)
        assert docs[command]["summary"] == {"total": 1, "succeeded": 1, "failed": 0}
    assert docs["encrypt"]["files"][0]["key_id"] == docs["verify"]["files"][0]["key_id"]
    assert docs["inspect"]["files"][0]["encryption"]["opened"] is True
    assert "comparison" not in docs["inspect"]
    # Nothing secret in any of it.
    text = "".join(str(d) for d in docs.values())
    for k in (key, other_key, tmp_path / "third"):
        assert key_hex(k) not in text


# ---------------------------------------------------------------- every kind of failure


def _corrupted(encrypted: Path) -> Path:
    data = bytearray(encrypted.read_bytes())
    data[len(data) // 2] ^= 0x10
    encrypted.write_bytes(data)
    return encrypted


Case = Callable[[Path, Path, Path, Path], list[object]]
CASES: list[tuple[str, str, int, str, Case]] = [
    ("usage", "verify", 2, "usage", lambda t, m, k, o: ["verify", "--bogus"]),
    ("usage missing argument", "encrypt", 2, "usage", lambda t, m, k, o: ["encrypt", "-k", k]),
    ("unknown net", "encrypt", 2, "unknown_net",
     lambda t, m, k, o: ["encrypt", m, "-k", k, "--nets", "nope"]),
    ("the same key twice to encrypt", "encrypt", 2, "usage",
     lambda t, m, k, o: ["encrypt", m, "-k", k, "-k", k]),
    ("a mistyped recipient", "encrypt", 2, "usage",
     lambda t, m, k, o: ["encrypt", m, "-r", "bmcrypt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"]),
    ("a full key area", "rekey", 2, "slots_full",
     lambda t, m, k, o: _full_area(t, m, k, o)),
    ("not a bmodel", "inspect", 3, "not_a_bmodel",
     lambda t, m, k, o: ["inspect", _text(t)]),
    ("truncated", "verify", 3, "truncated",
     lambda t, m, k, o: ["verify", _cut(_enc(m, k)), "-k", k]),
    ("wrong key", "verify", 4, "wrong_key", lambda t, m, k, o: ["verify", _enc(m, k), "-k", o]),
    ("tampered", "decrypt", 5, "tampered",
     lambda t, m, k, o: ["decrypt", _corrupted(_enc(m, k)), "-k", k]),
    ("already encrypted", "encrypt", 6, "already_encrypted",
     lambda t, m, k, o: ["encrypt", _enc(m, k), "-k", k]),
    ("not encrypted", "rekey", 6, "not_encrypted",
     lambda t, m, k, o: ["rekey", m, "-k", k, "--new-key", o]),
    ("no key", "verify", 7, "no_key", lambda t, m, k, o: ["verify", _enc(m, k)]),
    ("key file", "keygen", 7, "key_file_error", lambda t, m, k, o: ["keygen", "-o", k]),
    ("missing file", "backup", 8, "input_file_error",
     lambda t, m, k, o: ["backup", t / "missing.bmodel"]),
    ("no backup", "restore", 8, "input_file_error", lambda t, m, k, o: ["restore", m]),
    ("batch", "verify", 3, "files_failed",
     lambda t, m, k, o: ["verify", _enc(m, k), _text(t), "-k", k]),
    ("no runtime", "run", 9, "vendor_runtime_error",
     lambda t, m, k, o: ["run", m, "-i", t / "in.npz", "-o", t / "out.npz",
                         "--runtime", t / "nowhere"]),
    ("doctor: the model does not verify", "doctor", 4, "wrong_key",
     lambda t, m, k, o: ["doctor", _enc(m, k), "-k", o]),
]


def _text(tmp: Path) -> Path:
    path = tmp / "text.bmodel"
    path.write_text("this is a README, not a model\n" * 10)
    return path


def _enc(model: Path, key: Path) -> Path:
    if not Path(f"{model}.bak").exists():
        assert bmcrypt("encrypt", model, "-k", key).returncode == 0
    return model


def _cut(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:-10])
    return path


def _full_area(tmp: Path, model: Path, key: Path, other: Path) -> list[str | Path]:
    """A model whose one key slot is taken, and a request to add a second recipient."""
    assert bmcrypt("encrypt", model, "-k", key, "--recipient-slots", "1").returncode == 0
    return ["rekey", model, "-k", key, "--add-recipient", other]


@pytest.mark.parametrize("name, command, code, kind_, case", CASES, ids=[c[0] for c in CASES])
def test_every_failure_is_one_valid_document_with_the_exit_code(
        name: str, command: str, code: int, kind_: str, case: Case, tmp_path: Path,
        model: Path, key: Path, other_key: Path):
    if command == "run":
        import numpy as np

        np.savez(tmp_path / "in.npz", x=np.zeros(4, np.float32))
    args = case(tmp_path, model, key, other_key)
    result = bmcrypt(*args, "--json")
    assert result.returncode == code, (name, result.stderr)
    doc = json_document(result, command)
    assert doc["ok"] is False
    assert doc["error"]["kind"] == kind_
    assert doc["error"]["hint"]
    # Humans still get the usual lines on stderr; stdout holds only the document.
    assert "bmcrypt: error:" in result.stderr and "Traceback" not in result.stderr


def test_every_error_class_has_a_kind_the_schema_names():
    import json

    schema = json.loads((SCHEMAS / "defs.schema.json").read_text())
    kinds = set(schema["$defs"]["error"]["properties"]["kind"]["enum"])
    classes = [c for c in vars(errors_module).values()
               if isinstance(c, type) and issubclass(c, BmcryptError)]
    classes += [FilesFailed, SomeFilesFailed]
    missing = {c.__name__ for c in classes if kind(c.__new__(c)) not in kinds}  # type: ignore[arg-type]
    assert missing == set()
    assert "usage" in kinds


@pytest.mark.runtime
def test_run_prints_a_valid_document(tmp_path: Path, model: Path, key: Path, vendor_dir: Path):
    from conftest import FIXTURES

    assert bmcrypt("encrypt", model, "-k", key).returncode == 0
    result = bmcrypt("run", model, "-k", key, "-i", FIXTURES / "mlp_in.npz", "-o",
                     tmp_path / "out.npz", "--runtime", vendor_dir, "--json")
    doc = json_document(result, "run")
    assert doc["ok"] and doc["net"] == "mlp" and doc["outputs"]
    assert (tmp_path / "out.npz").is_file()
