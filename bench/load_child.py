"""One whole-process load of a model into the vendor runtime (simulator), for bench/run.py.

    python bench/load_child.py MODE MODEL [LIB] [KEYFILE]

MODE: plain (bmrt_load_bmodel), callback / memory (bmcrypt.loader strategies, key from
KEYFILE), lib (bmrt_load_bmodel_with_decrypt_lib with LIB; libbmcrypt.so reads its key from
$BMCRYPT_KEY_FILE). Prints one JSON line: the seconds spent in the load call itself and the
nets loaded. The benchmark times the whole process (interpreter, simulator start, load, exit).
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    mode, model = sys.argv[1], sys.argv[2]
    from bmcrypt.runtime import Runtime

    with Runtime() as rt:
        t0 = time.perf_counter()
        if mode == "plain":
            rt.load(model)
        elif mode == "lib":
            rt.load_with_decrypt_lib(model, sys.argv[3])
        elif mode in ("callback", "memory"):
            from bmcrypt.keys import load_key_file
            from bmcrypt.loader import load_model

            load_model(rt, model, load_key_file(sys.argv[4]), strategy=mode)  # type: ignore[arg-type]
        else:
            raise SystemExit(f"unknown mode {mode}")
        load_s = time.perf_counter() - t0
        nets = len(rt.net_names())
    print(json.dumps({"load_s": load_s, "nets": nets}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
