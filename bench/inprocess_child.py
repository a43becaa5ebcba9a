"""Rekey vs encrypt as library calls, without the interpreter start-up, for bench/run.py.

    python bench/inprocess_child.py MODEL WORKDIR KEY1 KEY2 RUNS COLD

Imports bmcrypt once, then alternates `workflow.encrypt_model(MODEL, output=…)` and
`workflow.rekey_model(…)` RUNS times each (dropping the page cache before each call when COLD is
1, as for the commands). Prints one JSON line with every duration in seconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _drop() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def main() -> None:
    model, work, key1, key2, runs, cold = sys.argv[1:7]
    from bmcrypt import workflow
    from bmcrypt.keys import load_key_file

    keys = [load_key_file(key1), load_key_file(key2)]
    work_dir = Path(work)
    rekeyed = work_dir / "inprocess-rekey.bmodel"
    out = work_dir / "inprocess-enc.bmodel"
    rekeyed.unlink(missing_ok=True)
    workflow.encrypt_model(model, keys[0], output=rekeyed)
    times: dict[str, list[float]] = {"encrypt": [], "rekey": []}
    for r in range(int(runs)):
        for what in ("encrypt", "rekey") if r % 2 == 0 else ("rekey", "encrypt"):
            out.unlink(missing_ok=True)
            if cold == "1":
                _drop()
            t0 = time.perf_counter()
            if what == "encrypt":
                workflow.encrypt_model(model, keys[0], output=out)
            else:
                workflow.rekey_model(rekeyed, keys[r % 2], keys[1 - r % 2])
            times[what].append(time.perf_counter() - t0)
    out.unlink(missing_ok=True)
    rekeyed.unlink(missing_ok=True)
    print(json.dumps(times))


if __name__ == "__main__":
    main()
