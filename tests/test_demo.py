"""`make demo` is one of the README's two commands: its script runs end to end and checks itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


@pytest.mark.runtime
@pytest.mark.slow
def test_the_demo_runs_end_to_end_and_checks_its_own_results(vendor_dir: Path, tmp_path: Path):
    env = {**os.environ, "BMCRYPT_DEMO_DIR": str(tmp_path / "demo"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo done" in done.stdout
    assert "cosine" in done.stdout  # the MLP's outputs were compared with onnxruntime's
    generated = next(line for line in done.stdout.splitlines() if line.startswith("generated:"))
    reference = next(line for line in done.stdout.splitlines() if line.startswith("reference:"))
    assert generated.split(":", 1)[1].strip() == reference.split(":", 1)[1].split("(")[0].strip()
    made = {p.name for p in (tmp_path / "demo").iterdir()}
    assert {"demo.key", "mlp.bmodel", "mlp.bmodel.bak", "qwen2.bmodel", "chat.json",
            "share.json"} <= made
    assert done.stdout.count("= reference") == 3  # the share-cache answers
