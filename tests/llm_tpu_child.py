"""The share-cache demo's flow (LLM-TPU pipeline.py's test_share_cache) on examples/llm-tpu's
`chat` module, in a process of its own (one simulator per process).

    python llm_tpu_child.py SPEC.json RESULT.json

SPEC: build (the module's directory), models [m0, m1], prefix, questions, tokens (per answer),
is_decrypt, memory_prealloc, key_file (null: BMCRYPT_KEY_FILE or none), trace (bmrt_trace after
each init). RESULT: {"answers": [[model 0's per question], [model 1's]], "share_length": n} or
{"error": "<the Python exception's message>", "at": "<step>"}. A crash shows as a signal exit.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    spec = json.loads(open(sys.argv[1]).read())
    sys.path.insert(0, spec["build"])
    import chat

    result: dict[str, object] = {"answers": []}
    step = "start"
    model = chat.Qwen()
    try:
        model.memory_prealloc = spec["memory_prealloc"]
        model.is_decrypt = spec["is_decrypt"]
        model.generation_mode = "greedy"
        if spec.get("key_file"):
            step = "set_key_file"
            model.set_key_file(spec["key_file"])
        for index, path in enumerate(spec["models"]):
            if spec["is_decrypt"]:
                step = f"encrypt_bmodel {index}"
                model.encrypt_bmodel(path)
            model.io_alone_reuse = index > 0
            step = f"init {index}"
            model.init([0], path)
            if spec.get("trace"):
                sys.stdout.flush()
                model.trace()
            if index == 0:
                model.empty_kvcache()
                step = "forward_first"
                model.forward_first(spec["prefix"])
            answers = []
            for question in spec["questions"]:
                step = f"answer {index}"
                tokens = [model.forward_unshare(question)]
                while len(tokens) < spec["tokens"]:
                    tokens.append(model.forward_next())
                answers.append(tokens)
            result["answers"].append(answers)  # type: ignore[union-attr]
            result["share_length"] = model.share_length
            step = f"free {index}"
            if index + 1 < len(spec["models"]):
                model.free_device()
        model.deinit()
    except RuntimeError as e:
        result = {"error": str(e), "at": step}
        model.deinit()
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)
    print("deinit done", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    # Skip the simulator's static teardown, as bmcrypt's own commands do (runtime/lifecycle.py
    # exit_now): after a bmrt_destroy_without_coeff the weights stay in libbmrt's per-device
    # registry for the life of the process, and the simulator's memory pool asserts on them in
    # its destructor (examples/llm-tpu/README.md). Everything of ours was released by deinit().
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
