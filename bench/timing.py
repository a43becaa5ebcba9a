"""Timing commands fairly: interleaved rounds, the same cache treatment for every side, medians.

Every timed command is a child process, timed from spawn to exit with its peak RSS and CPU
time from wait4(). Rounds run every compared command once, in an order that rotates from round
to round, so a burst of load from other work on the machine hits all sides alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

DROP_CACHES = "/proc/sys/vm/drop_caches"


@dataclass
class Sample:
    wall: float  # seconds, spawn to exit
    cpu: float  # user + system seconds of the child (and its waited-for children)
    maxrss: int  # bytes, peak resident set of the child (largest of its process tree)


@dataclass
class Command:
    """One side of a comparison.

    `argv` is run (shell=False) once per round; `setup` runs before it, untimed (e.g. delete
    the previous output); `warm` is run untimed after the caches were dropped so that the
    program itself (interpreter, libraries) is warm while the data stays cold.
    """

    name: str
    argv: Sequence[str] | Callable[[int], Sequence[str]]
    setup: Callable[[int], None] | None = None
    warm: Sequence[str] | None = None
    env: dict[str, str] | None = None
    samples: list[Sample] = field(default_factory=list)

    def median(self, what: str = "wall") -> float:
        return statistics.median(getattr(s, what) for s in self.samples)


class CommandFailed(RuntimeError):
    pass


def can_drop_caches() -> bool:
    try:
        with open(DROP_CACHES, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def drop_caches() -> None:
    """Write back dirty pages, then drop the page cache (root only; checked by the caller)."""
    os.sync()
    with open(DROP_CACHES, "w") as f:
        f.write("3")


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run_timed(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[Sample, str]:
    """Run argv to completion; its wall time, CPU time and peak RSS (wait4), and its stdout."""
    full_env = dict(os.environ, **(env or {}))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=full_env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, problem = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} failed ({proc.returncode}): {problem[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024), text


def interleave(commands: Sequence[Command], runs: int, *, cold: bool,
               log: Callable[[str], None] = print) -> None:
    """Run every command `runs` times, round by round, rotating the order each round."""
    n = len(commands)
    for r in range(runs):
        order = [commands[(r + i) % n] for i in range(n)]
        for cmd in order:
            if cmd.setup:
                cmd.setup(r)
            if cold:
                drop_caches()
            if cmd.warm:
                subprocess.run(list(cmd.warm), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, check=False)
            argv = cmd.argv(r) if callable(cmd.argv) else cmd.argv
            sample, _ = run_timed(argv, cmd.env)
            cmd.samples.append(sample)
            log(f"  round {r + 1}/{runs} {cmd.name:<34} {sample.wall:7.3f} s  "
                f"rss {sample.maxrss / 2**20:7.1f} MiB  load {loadavg():.1f}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
