"""One whole-process load of a model into the vendor runtime (simulator), for bench/run.py.

    python bench/load_child.py MODE MODEL [LIB] [KEYFILE]

MODE: plain (bmrt_load_bmodel), callback / memory (the `bmcrypt.loader` strategies, key from
KEYFILE), lib (bmrt_load_bmodel_with_decrypt_lib with LIB; libbmcrypt.so reads its key from
$BMCRYPT_KEY_FILE). Prints one JSON line: the seconds from the start of the load's work to the
nets being loaded. The benchmark times the whole process (interpreter, simulator start, load, exit).

The strategies run as `bmcrypt run` and `bmcrypt chat` run them: `loader.prepare` (verify, or
decrypt into memory) before the runtime opens, then `Prepared.load_into`. The simulator keeps the
CPUs busy for as long as a runtime is open, so work done after it opened costs about three times
as much on this machine.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    mode, model = sys.argv[1], sys.argv[2]
    from bmcrypt.runtime import Runtime

    t0 = time.perf_counter()
    if mode in ("callback", "memory"):
        from bmcrypt.keys import load_key_file
        from bmcrypt.loader import prepare

        with prepare(model, load_key_file(sys.argv[4]), strategy=mode) as ready, \
                Runtime() as rt:  # type: ignore[arg-type]
            ready.load_into(rt)
            load_s, nets = time.perf_counter() - t0, len(rt.net_names())
    else:
        with Runtime() as rt:
            t0 = time.perf_counter()
            if mode == "plain":
                rt.load(model)
            elif mode == "lib":
                rt.load_with_decrypt_lib(model, sys.argv[3])
            else:
                raise SystemExit(f"unknown mode {mode}")
            load_s, nets = time.perf_counter() - t0, len(rt.net_names())
    print(json.dumps({"load_s": load_s, "nets": nets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
