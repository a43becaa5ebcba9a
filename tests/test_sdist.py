"""Python where no wheel fits (an aarch64 box): the sdist builds and installs with plain pip.

docs/sdk.md tells a device user to run `pip install bmcrypt-<version>.tar.gz` with the Debian
build packages present. This does exactly that on this x86 host, into a fresh venv with nothing
of the project in it, and then uses the result. Under qemu the C++ build would take far too long
for CI; docs/sdk.md says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import MLP, ROOT

pytestmark = pytest.mark.slow

VERSION = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]


def _run(*command: str | os.PathLike[str], cwd: Path, timeout: float = 1200
         ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BMCRYPT_", "VIRTUAL_ENV", "PYTHON"))}
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_sdist_builds_and_installs_into_a_fresh_venv_with_plain_pip(tmp_path: Path):
    _run(sys.executable, "-m", "build", "--sdist", "--outdir", tmp_path / "dist", ROOT,
         cwd=tmp_path)
    sdist = tmp_path / "dist" / f"bmcrypt-{VERSION}.tar.gz"
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    # Everything the C++ build needs, and nothing of a local build.
    for needed in ("CMakeLists.txt", "pyproject.toml", "include/bmcrypt.h", "schemas/bmodel.fbs",
                   "csrc/CMakeLists.txt", "csrc/plugin/capi.cpp", "cmake/bmcrypt.pc.in"):
        assert needed in names, needed
    assert not any(n.startswith(("build/", ".venv/", "dist/")) for n in names)

    # As docs/sdk.md says: a fresh venv, then `pip install bmcrypt-<version>.tar.gz`.
    venv = tmp_path / "venv"
    _run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "pip", "install", "-q", sdist.name, cwd=sdist.parent)

    # The installed package works, C library included, from a directory without the sources.
    work = tmp_path / "work"
    work.mkdir()
    cli = venv / "bin" / "bmcrypt"
    _run(cli, "keygen", "-o", "model.key", cwd=work)
    _run(cli, "encrypt", "--key", "model.key", "-o", "mlp.bmodel", MLP, cwd=work)
    verified = _run(cli, "verify", "--key", "model.key", "mlp.bmodel", cwd=work)
    assert "OK" in verified.stdout
    lib = Path(_run(cli, "plugin-path", cwd=work).stdout.strip())
    assert lib.is_file() and lib.is_relative_to(venv)
    assert (lib.parent / "cmake" / "bmcrypt" / "bmcryptConfig.cmake").is_file()
