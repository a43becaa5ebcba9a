"""examples/cpp, built with cmake against the *installed* package, run on the vendor simulator.

This is what a C++ runtime author does: find_package(bmcrypt) through the CMake files installed
with the wheel, link bmcrypt::bmcrypt and the vendor runtime, load a file made by `bmcrypt
encrypt`. Each run of the example is its own process (its own simulator), so a crash shows up as
a signal exit instead of taking pytest down.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import synth
from clitools import bmcrypt
from conftest import MLP, QWEN, ROOT

import bmcrypt as bmcrypt_package
from bmcrypt.plugin import cmake_dir, plugin_path

pytestmark = [pytest.mark.runtime, pytest.mark.slow]

EXAMPLE_SOURCE = ROOT / "examples" / "cpp"


@dataclass
class Models:
    key: Path
    wrong_key: Path
    mlp: Path
    qwen: Path


@pytest.fixture(scope="module")
def installed_cmake_dir() -> Path:
    """bmcryptConfig.cmake's directory in the installed package; skips in a source tree."""
    path = cmake_dir()
    if not (path / "bmcryptConfig.cmake").is_file():
        pytest.skip(f"bmcrypt is not installed (imported from {bmcrypt_package.__file__}, which "
                    f"has no {path}): pip install the package to build the C++ example")
    package = Path(bmcrypt_package.__file__).resolve()
    source = (ROOT / "bmcrypt").resolve()
    assert not package.is_relative_to(source), f"tests must use the installed bmcrypt, not {package}"
    return path


EXAMPLE_README = EXAMPLE_SOURCE / "README.md"


def readme_block(name: str) -> str:
    """The shell block of examples/cpp/README.md tagged `<!-- test: NAME -->`."""
    text = EXAMPLE_README.read_text()
    match = re.search(rf"<!-- test: {name} -->\s*```sh\n(.*?)```", text, re.S)
    assert match, f"examples/cpp/README.md has no block tagged 'test: {name}'"
    return match[1]


@dataclass
class Checkout:
    """A directory that looks like the repository root (every top-level entry linked, the
    source-tree `bmcrypt/` package included, as in the report that the old commands failed in),
    so that what the README's commands write lands in a temporary directory."""

    root: Path

    def run(self, *blocks: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run README blocks in order in one bash, as a user pastes them (`set -eu`)."""
        script = "\n".join(f'echo "### {name}"\n{readme_block(name)}' for name in blocks)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BMCRYPT_", "PYTHON"))}
        # The venv's `bmcrypt` and `python` first on PATH, as after activating it.
        env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
        return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def checkout(installed_cmake_dir: Path, vendor_dir: Path, tmp_path_factory) -> Checkout:
    root = tmp_path_factory.mktemp("checkout")
    for entry in ROOT.iterdir():
        if entry.name not in ("build", "dist", ".venv", ".git"):
            (root / entry.name).symlink_to(entry)
    return Checkout(root)


@pytest.fixture(scope="module")
def example(checkout: Checkout) -> Path:
    """The bmcrypt_example executable, configured and built by the README's own commands."""
    r = checkout.run("build")
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return checkout.root / "build" / "example" / "bmcrypt_example"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Models:
    """A fresh key, a second unrelated key, and both fixtures encrypted with the first."""
    d = tmp_path_factory.mktemp("example-models")
    m = Models(d / "model.key", d / "wrong.key", d / "mlp.bmodel", d / "qwen.bmodel")
    for key in (m.key, m.wrong_key):
        r = bmcrypt("keygen", "-o", key)
        assert r.returncode == 0, r.stderr
    for plain, out in ((MLP, m.mlp), (QWEN, m.qwen)):
        r = bmcrypt("encrypt", "--key", m.key, "-o", out, plain)
        assert r.returncode == 0, r.stderr
    return m


def run_example(example: Path, vendor_dir: Path, *args: str | os.PathLike[str],
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    extra = env or {}
    env = dict(os.environ)
    for name in ("BMCRYPT_KEY_FILE", "BMCRYPT_PASSPHRASE"):
        env.pop(name, None)  # only the key file on the command line may be used
    env.update(extra)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(vendor_dir / "lib"), env.get("LD_LIBRARY_PATH", "")) if p)
    return subprocess.run([str(example), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120)


def listed_nets(stdout: str) -> list[str]:
    return re.findall(r"^net \d+: (\S+) \((?:static|dynamic)", stdout, re.MULTILINE)


def checksums(stdout: str) -> dict[str, str]:
    """Output name -> the fnv1a64 the example printed for it."""
    return dict(re.findall(r"^  output (\S+) \[.*fnv1a64 ([0-9a-f]{16})$", stdout, re.MULTILINE))


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@pytest.mark.parametrize(("model", "plain", "net"), [
    ("mlp", MLP, None),
    ("qwen", QWEN, None),
    ("qwen", QWEN, "block_0"),
], ids=["mlp", "qwen-first-net", "qwen-block_0"])
def test_loads_lists_runs_and_traces_an_encrypted_model(example: Path, vendor_dir: Path,
                                                         models: Models, model: str, plain: Path,
                                                         net: str | None):
    net_arg = [net] if net else []
    r = run_example(example, vendor_dir, models.key, getattr(models, model), *net_arg)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "loaded with bmrt_load_bmodel_with_decrypt" in r.stdout
    expected = [n.name for n in synth.model_tool_info(vendor_dir, plain).nets]
    assert listed_nets(r.stdout) == expected
    assert f"run {net or expected[0]} on zero inputs" in r.stdout
    assert checksums(r.stdout), r.stdout
    assert "Total 0 errors" in r.stdout + r.stderr


def test_verify_first_gives_the_plain_models_outputs(example: Path, vendor_dir: Path,
                                                     models: Models, tmp_path: Path):
    r = run_example(example, vendor_dir, "--verify-first", models.key, models.mlp)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "loaded with bmcrypt_load_bmodel" in r.stdout
    assert "Total 0 errors" in r.stdout + r.stderr

    # The same zero input through the plain model, run by bmcrypt's own runtime binding.
    np.savez(tmp_path / "in.npz", x=np.zeros((1, 64), np.float32))
    plain = bmcrypt("run", "--runtime", vendor_dir, "-i", tmp_path / "in.npz",
                    "-o", tmp_path / "out.npz", MLP)
    assert plain.returncode == 0, plain.stderr
    with np.load(tmp_path / "out.npz") as outputs:
        expected = {name: fnv1a64(outputs[name].tobytes()) for name in outputs.files}
    assert checksums(r.stdout) == expected


@pytest.mark.parametrize("verify_first", [False, True], ids=["callback", "verify-first"])
@pytest.mark.parametrize("model", ["mlp", "qwen"])
def test_a_wrong_key_fails_cleanly(example: Path, vendor_dir: Path, models: Models, model: str,
                                   verify_first: bool):
    flags = ["--verify-first"] if verify_first else []
    r = run_example(example, vendor_dir, *flags, models.wrong_key, getattr(models, model))
    assert r.returncode == 1, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])  # < 0: a signal
    error = re.search(r"^bmcrypt_example: cannot load .*: wrong key", r.stderr, re.MULTILINE)
    assert error, r.stderr
    assert "Total" not in r.stdout + r.stderr  # nothing was loaded, nothing traced


def test_an_unknown_net_fails_after_cleaning_up(example: Path, vendor_dir: Path, models: Models):
    r = run_example(example, vendor_dir, models.key, models.mlp, "no_such_net")
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert "no net named 'no_such_net'" in r.stderr


def test_usage_errors_exit_2_without_opening_the_device(example: Path, vendor_dir: Path,
                                                       models: Models):
    for args in ([], [models.key], ["--frobnicate", models.key, models.mlp]):
        r = run_example(example, vendor_dir, *args)
        assert r.returncode == 2, (args, r.returncode)
        assert r.stderr.startswith("usage: bmcrypt_example"), r.stderr
        assert "cmodel" not in r.stdout + r.stderr



def test_readme_pkg_config_run_and_no_code_commands_work_as_written(example: Path,
                                                                     checkout: Checkout):
    """The README's other blocks, in one shell after its build block, from a checkout's root."""
    r = checkout.run("build", "pkg-config", "run", "no-code")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "Traceback" not in out
    assert (checkout.root / "bmcrypt_example").is_file()  # the pkg-config build
    run, no_code = r.stdout.split("### run\n")[1].split("### no-code\n")
    assert "loaded with bmrt_load_bmodel_with_decrypt + bmcrypt's decrypt" in run
    assert "loaded with bmrt_load_bmodel_with_decrypt_lib" in no_code
    assert checksums(run) == checksums(no_code) and checksums(run)
    assert out.count("Total 0 errors") == 2


def test_the_no_code_route_fails_cleanly_with_a_wrong_key(example: Path, vendor_dir: Path,
                                                         models: Models):
    """--decrypt-lib: the key comes from BMCRYPT_KEY_FILE only; a wrong one is refused."""
    lib = plugin_path()
    r = run_example(example, vendor_dir, "--decrypt-lib", lib, models.mlp,
                    env={"BMCRYPT_KEY_FILE": str(models.wrong_key)})
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    assert re.search(r"^bmcrypt_example: cannot load .*: wrong key", r.stderr, re.M), r.stderr
    r = run_example(example, vendor_dir, "--decrypt-lib", lib, "--verify-first", models.mlp)
    assert r.returncode == 2
