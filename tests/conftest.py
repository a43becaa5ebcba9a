"""Shared test fixtures: paths of the committed fixture files and the vendor runtime."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
MLP = FIXTURES / "mlp_bm1684x_f16_nokernel.bmodel"
QWEN = FIXTURES / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
BMODEL_FIXTURES = (MLP, QWEN)

# --import-mode=importlib does not put tests/ on sys.path; the helper modules live here.
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def vendor_dir() -> Path:
    """Directory with the vendor's bin/ and lib/ (scripts/fetch-runtime.sh); skips if unavailable."""
    try:
        out = subprocess.check_output([str(ROOT / "scripts" / "fetch-runtime.sh")], text=True,
                                      cwd=ROOT, stderr=subprocess.PIPE, timeout=900)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"vendor runtime unavailable (scripts/fetch-runtime.sh failed: {e})")
    return Path(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- order, and the end of a run

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need the vendor runtime run last (in file order among themselves): once a
    process has loaded libbmrt, the simulator's threads keep spinning on about half a core
    until it ends (bmcrypt.runtime.lifecycle), which would slow every test after them."""
    items.sort(key=lambda item: item.get_closest_marker("runtime") is not None)


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End a run that loaded the vendor runtime in-process with pytest's own status, skipping
    libbmrt's teardown: weights kept on the device by ``resident="active"`` live as long as the
    process (libbmrt's design), and the simulator's teardown turns them into exit code 255
    (bmcrypt.runtime.lifecycle says more; the console script ends the same way)."""
    lifecycle = sys.modules.get("bmcrypt.runtime.lifecycle")
    if lifecycle is not None and lifecycle.runtime_used() and _exit_status:
        lifecycle.exit_now(_exit_status[-1])
