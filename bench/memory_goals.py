"""Issue 17's memory goals, from bench/ciphers/decrypt_memory.cpp (one JSON line per run).

`bmcrypt_decrypt` of a 1 GiB envelope through the plugin's C API, then free(), as the vendor
runtime calls it: into a fresh output buffer (with and without transparent huge pages) against
the same call into already-faulted memory; and on all cores against one, with memcpy on all
cores as the memory-bandwidth ceiling. Every value is the median over the runs.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

from env import Tools
from sections import Result

MIB = 1024  # the size the goals name
ROUNDS = 3  # calls of each kind per run, the best counted (each child run takes 10-25 s)


def argv(t: Tools) -> list[str]:
    return [str(t.decrypt_memory), str(t.plugin), str(MIB), str(ROUNDS)]


def parse(text: str) -> dict[str, Any]:
    return json.loads(text.strip().splitlines()[-1])


def results(runs: list[dict[str, Any]], load: tuple[float, float]) -> list[Result]:
    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)

    cores = int(runs[0]["cores"])
    fresh, no_thp, faulted = med("fresh_gbps"), med("fresh_no_thp_gbps"), med("faulted_gbps")
    one, copy = med("one_thread_gbps"), med("memcpy_gbps")
    fill_fresh, fill_faulted = med("memset_fresh_gbps"), med("memset_faulted_gbps")
    # What fresh memory must cost whatever writes it: the kernel zeroes every new page. Added to
    # the decrypt into faulted memory, that is the best a fresh buffer can do.
    zeroing = max(0.0, 1 / fill_fresh - 1 / fill_faulted)  # seconds per GB
    fresh_limit = (1 / faulted) / (1 / faulted + zeroing)
    # All cores can give at most `cores` times one, and at most what memory can move.
    scaling = min(float(cores), copy / one)
    thp = runs[0].get("thp", "?")
    size = f"{MIB // 1024} GiB" if MIB >= 1024 else f"{MIB} MiB"
    call = "bmcrypt_decrypt + free()"
    return [
        Result(17, f"{call} of {size}: fresh output buffer vs pre-faulted",
               f"{call}, fresh malloc'ed buffer (huge pages advised)",
               f"{call} into pre-faulted memory", fresh, faulted, "GB/s", 0.9,
               higher_is_better=True, load=load,
               note=f"all {cores} cores; THP {thp}; page faults per call "
                    f"{med('fresh_faults'):.0f} vs {med('faulted_faults'):.0f}; the kernel's "
                    f"zeroing of fresh pages alone caps this at {fresh_limit:.2f} here"),
        Result(17, f"evidence: {call} of {size}, fresh buffer without huge pages (before)",
               f"{call}, fresh buffer, THP disabled (prctl)", f"{call} into pre-faulted memory",
               no_thp, faulted, "GB/s", None, True, load=load,
               note=f"page faults per call {med('fresh_no_thp_faults'):.0f}; free() "
                    f"{med('fresh_no_thp_free_ms'):.0f} ms vs {med('fresh_free_ms'):.0f} ms "
                    "with huge pages"),
        Result(17, f"evidence: memset of {size}, fresh huge-page block vs faulted, all cores",
               "memset, fresh block", "memset, faulted block", fill_fresh, fill_faulted, "GB/s",
               None, True, load=load, note="the kernel zeroes every fresh page first"),
        Result(17, f"native decrypt of {size}, all {cores} cores vs 1 core, same buffer",
               f"{call}, {cores} threads, pre-faulted", f"{call}, 1 thread, pre-faulted",
               faulted, one, "GB/s", round(0.9 * scaling, 2), higher_is_better=True, load=load,
               note=f"goal 0.9 x min({cores} cores, memcpy ceiling {copy / one:.1f} x one core)"),
        Result(17, f"evidence: memory-bandwidth ceiling, memcpy of {size} on all {cores} cores",
               f"memcpy, {cores} threads", f"{call}, 1 thread", copy, one, "GB/s", None, True,
               load=load, note="the decrypt reads and writes each byte once, as memcpy does"),
    ]
