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
    busy: float = 0.0  # fraction of the CPUs others used just before the command started


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

    def record(self, out: str) -> None:
        """What the command printed in a timed run (a subclass may keep a figure of it)."""


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


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), idle


def busy_fraction(seconds: float = 0.5) -> float:
    """How much of the machine's CPU time others used over the next `seconds` (0..1)."""
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


class Quiet:
    """Waits (up to `patience` seconds) until other work on the machine leaves the CPUs mostly
    idle, so that a command is timed on an idle machine whenever the machine has idle moments.
    Records the busy fraction each command started with."""

    def __init__(self, threshold: float = 0.2, patience: float = 60.0) -> None:
        self.threshold, self.patience = threshold, patience
        self.waited = 0.0

    def wait(self) -> float:
        deadline = time.monotonic() + self.patience
        start = time.monotonic()
        while True:
            busy = busy_fraction()
            if busy <= self.threshold or time.monotonic() >= deadline:
                self.waited += time.monotonic() - start
                return busy


def loadavg() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


TIME = "/usr/bin/time"


def run_timed(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[Sample, str]:
    """Run argv to completion; its wall time, CPU time (wait4), peak RSS, and its stdout.

    The peak RSS comes from GNU time, which runs the command as its own child: a child of this
    (Python) process would report this process's resident set from before its exec as its own
    peak (Linux carries the high-water mark across exec, and subprocess uses vfork).
    """
    full_env = dict(os.environ, **(env or {}))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rss:
        wrapped = [TIME, "-f", "%M", "-o", rss.name, *argv] if os.path.exists(TIME) else argv
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(wrapped), env=full_env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, problem = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        lines = rss.read().split() if wrapped is not argv else []
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} failed ({proc.returncode}): {problem[-2000:]}")
    peak_kb = int(lines[-1]) if lines and lines[-1].isdigit() else usage.ru_maxrss
    return Sample(wall, usage.ru_utime + usage.ru_stime, peak_kb * 1024), text


def interleave(commands: Sequence[Command], runs: int, *, cold: bool,
               log: Callable[[str], None] = print, quiet: Quiet | None = None) -> None:
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
            busy = quiet.wait() if quiet else 0.0
            sample, out = run_timed(argv, cmd.env)
            sample.busy = busy
            cmd.samples.append(sample)
            cmd.record(out)
            log(f"  round {r + 1}/{runs} {cmd.name:<44} {sample.wall:7.3f} s  "
                f"rss {sample.maxrss / 2**20:6.1f} MiB  others' CPU before {busy:4.0%}  "
                f"load {loadavg():.1f}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
