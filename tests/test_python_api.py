"""`import bmcrypt` as a Python user meets it: the recipes, lazily, and docs/python.md's script."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES, MLP, ROOT

DOC = ROOT / "docs" / "python.md"


def test_the_front_door_names_the_recipes_and_the_errors():
    import bmcrypt

    for name in ("generate_key_file", "load_key_file", "encrypt_model", "decrypt_model",
                 "verify_model", "rekey_model", "restore_model", "inspect_model", "load_model",
                 "Runtime", "Passphrase", "BmcryptError", "WrongKey", "Tampered"):
        assert name in dir(bmcrypt), name
        assert getattr(bmcrypt, name).__doc__, f"{name} has no docstring"
    assert issubclass(bmcrypt.WrongKey, bmcrypt.BmcryptError)
    with pytest.raises(AttributeError):
        bmcrypt.no_such_thing  # noqa: B018


def test_import_bmcrypt_loads_no_library_module():
    code = ("import sys, bmcrypt; print(sorted(m for m in sys.modules "
            "if m.startswith('bmcrypt.') or m in ('numpy', 'flatbuffers')))")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def _doc_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 1, "docs/python.md has one complete script"
    return blocks[0]


@pytest.mark.runtime
def test_the_documented_script_runs_as_written(tmp_path: Path, vendor_dir: Path):
    script = tmp_path / "protect.py"
    script.write_text(_doc_script())
    model = tmp_path / "mlp.bmodel"
    shutil.copy(MLP, model)
    result = subprocess.run([sys.executable, "-P", str(script), str(model),
                             str(FIXTURES / "mlp_in.npz")], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "encrypted" in out and "mlp.bmodel.bak" in out
    assert "verified 1 weight region(s)" in out
    assert "without a key: bmcrypt" in out and "with the key:  ['mlp']" in out
    assert "refused: wrong passphrase: the file needs key id" in out
    assert "(key file) (exit code 4)" in out
    assert "ran mlp -> (1, 32)" in out
