"""Decrypt throughput of bmcrypt's native core (what every load runs), for bench/run.py.

    python bench/throughput_child.py THREADS MIB REPEAT

Seals one weight envelope of MIB MiB of random bytes (1 MiB segments, as bmcrypt writes them)
and opens it REPEAT times into the same, already touched, output buffer with `_native.open_into`
on THREADS threads (0: all cores). MIB=1 is the like-for-like case of `openssl speed -bytes
1048576`: one 1 MiB block that stays in the CPU caches. Prints one JSON line with the median
rate by wall-clock time and by process CPU time (GB = 1e9 bytes, as openssl counts).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time


def main() -> None:
    threads, mib, repeat = (int(a) for a in sys.argv[1:4])
    from bmcrypt import _native

    key = os.urandom(32)
    _native.register_key(key)
    _native.set_threads(threads)
    size = mib << 20
    envelope = _native.FileKeys.create(key=key).seal(os.urandom(size), kind=3)
    out = bytearray(size)
    inner = max(1, 256 // mib)  # at least 256 MiB per timed step, so timer noise does not count
    _native.open_into(envelope, out)
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(inner):
            _native.open_into(envelope, out)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    done = size * inner
    print(json.dumps({
        "threads": _native.max_threads(), "mib": mib,
        "wall_gbps": done / statistics.median(walls) / 1e9,
        "cpu_gbps": done / statistics.median(cpus) / 1e9,
    }))


if __name__ == "__main__":
    main()
