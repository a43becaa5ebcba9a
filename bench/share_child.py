"""Sequence sharing on the simulator, for bench/run.py: first-token latency and device memory.

    python bench/share_child.py latency MODEL ROUNDS [KEYFILE]
    python bench/share_child.py memory MODEL [MODEL ...]

latency: on one share-cache build, each question of tests/fixtures/share_cache.json answered
(a) against the prefix shared once (its first-token latency: the question's own prefill), and
(b) by prefilling prefix and question whole (``share`` again, then the question: what a
runtime without sequence sharing does), interleaved, ROUNDS times. memory: the device memory
the given models take loaded together in one host (equal weights kept once). Prints one JSON
line.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

FIX = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def main() -> int:
    from bmcrypt.chat import ChatSession, GenerationConfig
    from bmcrypt.keys import load_key_file

    case = json.loads((FIX / "share_cache.json").read_text())
    tokenizer = FIX / case["tokenizer"]
    one = GenerationConfig(max_new_tokens=1)
    if sys.argv[1] == "memory":
        with ChatSession.open(sys.argv[2:], tokenizer, None, config=one) as chat:
            print(json.dumps({"loaded_bytes": chat.host.loaded_bytes,
                              "weights": [p.device_mem.weight for p in chat.host.plans]}))
        return 0
    model, rounds = sys.argv[2], int(sys.argv[3])
    key = load_key_file(sys.argv[4]) if len(sys.argv) > 4 else None
    shared, whole = [], []
    with ChatSession.open([model], tokenizer, key, config=one) as chat:
        chat.share(case["prefix_ids"])
        for _ in range(rounds):
            for question in case["questions"]:
                shared.append(chat.complete(question).stats.first_token_s)
                start = time.perf_counter()
                chat.share(case["prefix_ids"])
                chat.complete(question)
                whole.append(time.perf_counter() - start)
    print(json.dumps({"shared": statistics.median(shared), "whole": statistics.median(whole),
                      "samples": len(shared)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
