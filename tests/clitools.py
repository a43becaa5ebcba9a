"""Running the real `bmcrypt` command line from tests, in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def bmcrypt(*args: str | os.PathLike[str], cwd: Path | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 300,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`bmcrypt ARGS…` as a user runs it (the installed package), captured."""
    full_env = dict(os.environ)
    for name in ("BMCRYPT_KEY_FILE", "BMCRYPT_PASSPHRASE"):
        full_env.pop(name, None)  # tests say explicitly which key a command gets
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-P", "-m", "bmcrypt.cli.main", *map(str, args)],
                          cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, input=stdin if stdin is not None else "")


def assert_clean_error(result: subprocess.CompletedProcess[str], exit_code: int,
                       *phrases: str) -> None:
    """A failure as the CLI promises it: the exit code, one error line and a hint, no traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("bmcrypt: error:")]
    assert len(errors) == 1, result.stderr
    assert any(line.startswith("bmcrypt: hint:") for line in result.stderr.splitlines())
    for phrase in phrases:
        assert phrase in errors[0], (phrase, errors[0])


# ---------------------------------------------------------------- JSON documents (schemas/json)

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "json"


def json_document(result: subprocess.CompletedProcess[str], command: str) -> dict[str, Any]:
    """The one JSON document of a `--json` run, validated against schemas/json/COMMAND."""
    import jsonschema
    from referencing import Registry, Resource

    doc = json.loads(result.stdout)  # exactly one document: trailing text would fail here
    resources = [(p.name, Resource.from_contents(json.loads(p.read_text())))
                 for p in SCHEMAS.glob("*.schema.json")]
    registry: Registry = Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / f"{command}.schema.json").read_text())
    jsonschema.Draft202012Validator(schema, registry=registry).validate(doc)
    assert doc["ok"] == (result.returncode == 0), (doc, result.returncode)
    if not doc["ok"]:
        assert doc["error"]["code"] == result.returncode
    return doc
