"""One whole-process load of a model into the vendor runtime (simulator), for bench/run.py.

    python bench/load_child.py MODE MODEL [LIB] [KEYFILE]

MODE: plain (bmrt_load_bmodel), callback / memory (bmcrypt.loader strategies, key from
KEYFILE), lib (bmrt_load_bmodel_with_decrypt_lib with LIB; libbmcrypt.so reads its key from
$BMCRYPT_KEY_FILE). Prints one JSON line: the seconds spent in the load call itself and the
nets loaded. The benchmark times the whole process (interpreter, simulator start, load, exit).

callback-first / memory-first do the same work in another order — verify (or decrypt) before
the simulator starts — because the simulator keeps the CPUs busy for as long as it is open, so
any work done while it runs costs about three times as much on this machine. They measure a
proposal, not what `bmcrypt.loader` does today.
"""

from __future__ import annotations

import json
import sys
import time


def _before_the_runtime(mode: str, model: str, key_file: str) -> int:
    from bmcrypt import _native
    from bmcrypt.crypto.kdf import register_with_native
    from bmcrypt.keys import load_key_file
    from bmcrypt.protect.opened import open_encrypted
    from bmcrypt.protect.unseal import unseal_to_memory
    from bmcrypt.runtime import Runtime

    key = load_key_file(key_file)
    t0 = time.perf_counter()
    if mode == "memory-first":
        with open_encrypted(model, key) as opened:
            plain = unseal_to_memory(opened)
        with Runtime() as rt:
            rt.load_bytes(plain)
            nets = len(rt.net_names())
        plain[:] = bytes(len(plain))
    else:
        _native.clear_keys()
        register_with_native(key)
        _native.verify_file(model)
        with Runtime() as rt:
            rt.load_with_decrypt(model, _native.decrypt_callback_address())
            nets = len(rt.net_names())
        _native.clear_keys()
    print(json.dumps({"load_s": time.perf_counter() - t0, "nets": nets}))
    return 0


def main() -> int:
    mode, model = sys.argv[1], sys.argv[2]
    if mode.endswith("-first"):
        return _before_the_runtime(mode, model, sys.argv[4])
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
