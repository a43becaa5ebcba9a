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

#: Modules that load libbmrt into the pytest process itself (the others use child processes).
LOADS_IN_PROCESS = {"test_chat.py", "test_runtime.py", "test_share_cache.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order: tests without the vendor runtime, then those that run it in child processes, then
    those that load it into this process (each group in file order).

    Once a process has loaded libbmrt, six simulator threads busy-wait on about one core until
    the process ends (bmcrypt.runtime.lifecycle). Everything that ran after them here, and every
    simulator in a child process, shared the two cores with those spinners: two simulators side
    by side took 81 s where one after the other took 48 s.
    """
    def group(item: pytest.Item) -> int:
        if item.get_closest_marker("runtime") is None:
            return 0
        return 2 if item.path.name in LOADS_IN_PROCESS else 1

    items.sort(key=group)


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
