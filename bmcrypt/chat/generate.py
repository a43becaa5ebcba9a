"""The generation loop: prefill, then one decode step per token, until a stop condition.

Stops, checked after every token, in this order:

- ``eos``: the token is one of the tokenizer's EOS tokens (it is kept in ``tokens``, as
  Hugging Face ``generate`` keeps it, but never shows in the text);
- ``max_new_tokens``: the answer has the length asked for;
- ``sequence_full``: (shared prefix +) prompt + answer fill the model's sequence (the vendor
  demos' rule).

Timing: ``first_token_s`` runs from the start of the prefill to the first token picked (what a
user waits for; with a shared prefix, the question's own prefill only: the prefix was prefilled
once before); ``tokens_per_s`` counts the tokens after the first over the time after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from bmcrypt.chat.engine import LlmEngine
from bmcrypt.chat.heads import TokenPicker
from bmcrypt.chat.sampling import GenerationConfig
from bmcrypt.errors import PromptTooLong

StopReason = Literal["eos", "max_new_tokens", "sequence_full"]


@dataclass(frozen=True)
class GenerationStats:
    """How one answer went."""

    prompt_tokens: int
    new_tokens: int
    stop: StopReason
    first_token_s: float
    decode_s: float
    picked_by: str  # "lm_head", "greedy_head", "sample_head" or "host"

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed after the first token (None with fewer than 2 tokens)."""
        if self.new_tokens < 2 or self.decode_s <= 0:
            return None
        return (self.new_tokens - 1) / self.decode_s

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


@dataclass(frozen=True)
class Generation:
    """The tokens of one answer and how they came."""

    tokens: list[int]
    stats: GenerationStats


def generate(engine: LlmEngine, prompt_ids: Sequence[int], config: GenerationConfig,
             eos_ids: Collection[int] = (), on_token: Callable[[int], None] | None = None,
             model: str = "model", *, shared: Sequence[int] | None = None) -> Generation:
    """Answer ``prompt_ids`` (already templated) on ``engine``; ``on_token`` sees each token.

    ``shared``: the prefix a share-cache build already holds in its cache (``share_prefill``);
    ``prompt_ids`` is then the question that follows it.
    """
    seq = engine.layout.seq_len
    n = len(prompt_ids)
    if n == 0:
        raise PromptTooLong("the prompt is empty", hint="give at least one token")
    before = len(shared) if shared is not None else 0
    if shared is not None and n > engine.layout.unshare_len:
        raise PromptTooLong(f"the question has {n} tokens; {model} takes "
                            f"{engine.layout.unshare_len} at most after a shared prefix",
                            hint="shorten the question, or use a build with a longer unshare "
                                 "length")
    if before + n >= seq:
        raise PromptTooLong(f"the prompt has {before + n} tokens; {model} holds {seq} in all, "
                            "so no room is left for an answer")
    picker = TokenPicker(engine, config, model)  # refuses impossible modes before any work
    history = [*(shared or ()), *prompt_ids]
    total = len(history)
    tokens: list[int] = []
    start = time.perf_counter()
    if shared is not None:
        engine.unshare_prefill(prompt_ids, before)
    else:
        engine.prefill(history)
    token = picker.pick(history)
    first = time.perf_counter()
    while True:
        tokens.append(token)
        if on_token is not None:
            on_token(token)
        stop = _stop(token, len(tokens), total, seq, config, eos_ids)
        if stop is not None:
            break
        position = total + len(tokens) - 1  # where the token just picked sits in the sequence
        engine.decode(token, position)
        history.append(token)
        token = picker.pick(history)
    end = time.perf_counter()
    stats = GenerationStats(prompt_tokens=n, new_tokens=len(tokens), stop=stop,
                            first_token_s=first - start, decode_s=end - first,
                            picked_by=picker.where)
    return Generation(tokens, stats)


def _stop(token: int, count: int, n: int, seq: int, config: GenerationConfig,
          eos_ids: Collection[int]) -> StopReason | None:
    if token in eos_ids:
        return "eos"
    if config.max_new_tokens is not None and count >= config.max_new_tokens:
        return "max_new_tokens"
    if n + count >= seq:
        return "sequence_full"
    return None
