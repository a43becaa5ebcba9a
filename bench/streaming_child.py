"""Streaming an answer's text through the chat tokenizer (issue 17), for bench/run.py.

    python bench/streaming_child.py TOKENIZER_DIR ROUNDS

Encodes an answer-like text (English and Chinese, a few emoji) with the tokenizer of
TOKENIZER_DIR; the answers are 1,000 ids of that text repeated, each repetition starting at
another of its tokens. Streams each answer through `ChatTokenizer.stream()` and through the old
way (decode every token so far on each token), alternately, timing with `perf_counter_ns` the
pushes of tokens 1-20 (around token 10) and of tokens 981-1000 (around token 1,000) as two
blocks. A token's cost depends on what it is (a byte of a Chinese character, a word): the
answers start at every token of the text, ROUNDS times, so both blocks see all of it equally.
Both ways must print `decode` of the ids. Prints one JSON line: per way, the per-token cost of
each block in every repetition, in microseconds.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

TOKENS = 1000
EARLY = range(0, 20)  # tokens 1-20
LATE = range(TOKENS - 20, TOKENS)  # tokens 981-1000
STEP = 97  # a prime: the answers' starts go round the whole text

PARAGRAPHS = (
    "Sure. To encrypt a model, run bmcrypt encrypt with your key file; the weights are sealed "
    "in place and the runtime loads the file through the plugin. ",
    "加密之后，模型文件仍然可以被运行时直接加载：每个权重块都经过认证，密钥不会写入日志。",
    "If the key is wrong, loading stops before any weight reaches the device 🙂. You can check "
    "a file first with bmcrypt verify, which reads every envelope and prints nothing else.\n",
    "常见问题：备份文件放在哪里？它在原文件旁边，校验通过以后才会删除。",
)


class OldStream:
    """The streaming decoder as it was before issue 17: the whole answer decoded per token."""

    def __init__(self, tok: object) -> None:
        self._tok = tok
        self._ids: list[int] = []
        self._shown = 0

    def push(self, token: int) -> str:
        self._ids.append(token)
        text = self._tok.decode(self._ids)  # type: ignore[attr-defined]
        if text.endswith("\ufffd"):
            return ""
        return self._take(text)

    def flush(self) -> str:
        return self._take(self._tok.decode(self._ids))  # type: ignore[attr-defined]

    def _take(self, text: str) -> str:
        new = text[self._shown:]
        self._shown = max(self._shown, len(text))
        return new


def _stream(stream: object, ids: Sequence[int], early: list[float], late: list[float]) -> str:
    """Push every id; append the per-token cost of each timed block (µs); return the text."""
    push = stream.push  # type: ignore[attr-defined]
    pieces = []
    for block, into in ((EARLY, early), (range(EARLY.stop, LATE.start), None), (LATE, late)):
        t0 = time.perf_counter_ns()
        for n in block:
            pieces.append(push(ids[n]))
        if into is not None:
            into.append((time.perf_counter_ns() - t0) / len(block) / 1000)
    pieces.append(stream.flush())  # type: ignore[attr-defined]
    return "".join(pieces)


def main() -> None:
    folder, rounds = sys.argv[1], int(sys.argv[2])
    from bmcrypt.chat import ChatTokenizer

    tok = ChatTokenizer(folder)
    cycle = tok.encode("".join(PARAGRAPHS))
    if len(cycle) % STEP == 0:
        raise SystemExit(f"streaming_child: the text has {len(cycle)} tokens, a multiple of {STEP}")
    looped = cycle * (TOKENS // len(cycle) + 2)
    repeat = rounds * len(cycle)
    times: dict[str, dict[str, list[float]]] = {
        way: {"early_us": [], "late_us": []} for way in ("window", "old")}
    gc.disable()  # a collection inside a timed block would be charged to one token
    try:
        for r in range(repeat):
            start = r * STEP % len(cycle)  # every start once per round
            ids = looped[start:start + TOKENS]
            expected = tok.decode(ids)
            for way in ("window", "old") if r % 2 == 0 else ("old", "window"):
                new: Callable[[], Any] = tok.stream if way == "window" else lambda: OldStream(tok)
                warm = new()  # the same code and data just before, as in a running answer
                for token in ids[:EARLY.stop]:
                    warm.push(token)
                got = _stream(new(), ids, times[way]["early_us"], times[way]["late_us"])
                if got != expected:
                    raise SystemExit(f"streaming_child: the {way} decoder printed other text")
                gc.collect()
    finally:
        gc.enable()
    print(json.dumps({"tokens": TOKENS, "text_tokens": len(cycle), "answers": repeat,
                      "early": [EARLY.start + 1, EARLY.stop],
                      "late": [LATE.start + 1, LATE.stop], **times}))


if __name__ == "__main__":
    main()
