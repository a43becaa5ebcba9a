"""Generation settings, and penalty sampling on the host.

``penalty_sample`` follows the ``sample_head`` net that tpu-mlir compiles into sampling
builds, step for step, so that a model without that net (logits only) samples from the same
distribution on the host:

1. repetition penalty on the tokens of the last ``repeat_last_n`` positions: a logit below 0
   is multiplied by ``repeat_penalty``, any other divided by it;
2. the ``top_k`` largest logits, divided by ``temperature``;
3. nucleus cut: a candidate survives while the cumulative softmax up to and including it
   stays below ``top_p`` (the first 5 always survive); the others get −1000;
4. softmax over the candidates; the host draws one with a seedable generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bmcrypt.errors import ChatError

GenerationMode = Literal["greedy", "penalty_sample"]
GENERATION_MODES: tuple[GenerationMode, ...] = ("greedy", "penalty_sample")
#: sample_head keeps at least this many candidates whatever top_p says (tpu-mlir's constant).
MIN_TOKENS_TO_KEEP = 5
_CUT = -1000.0


@dataclass(frozen=True)
class GenerationConfig:
    """How to pick tokens. The defaults are those of the vendor's chat demos."""

    mode: GenerationMode = "greedy"
    max_new_tokens: int | None = None  # None: until an EOS token or the end of the sequence
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    repeat_penalty: float = 1.0
    repeat_last_n: int = 32
    seed: int | None = None  # None: a fresh random seed for every answer

    def __post_init__(self) -> None:
        if self.mode not in GENERATION_MODES:
            raise ChatError(f"unknown generation mode {self.mode!r}",
                            hint=f"use one of {', '.join(GENERATION_MODES)}")
        checks = [
            (self.max_new_tokens is None or self.max_new_tokens > 0, "max_new_tokens must be > 0"),
            (self.temperature > 0, "temperature must be > 0"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.top_k > 0, "top_k must be > 0"),
            (self.repeat_penalty > 0, "repeat_penalty must be > 0"),
            (self.repeat_last_n >= 0, "repeat_last_n must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ChatError(message)

    def rng(self) -> np.random.Generator:
        """The generator one answer draws from (seeded: every answer is reproducible)."""
        return np.random.default_rng(self.seed)


def penalty_window(history: Sequence[int], last_n: int) -> list[int]:
    """The tokens the repetition penalty applies to: the last ``last_n`` of ``history``."""
    return list(history[len(history) - min(last_n, len(history)):])


def penalize(logits: np.ndarray, history: Sequence[int], config: GenerationConfig) -> np.ndarray:
    """Step 1 on a float32 copy of ``logits``."""
    out = np.array(logits, dtype=np.float32).reshape(-1)
    ids = np.array(sorted(set(penalty_window(history, config.repeat_last_n))), dtype=np.int64)
    ids = ids[(ids >= 0) & (ids < out.size)]
    if ids.size:
        picked = out[ids]
        out[ids] = np.where(picked < 0, picked * config.repeat_penalty,
                            picked / config.repeat_penalty)
    return out


def candidates(logits: np.ndarray, history: Sequence[int],
               config: GenerationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1–4 on the host: (probabilities, token ids) of the surviving candidates."""
    penalized = penalize(logits, history, config)
    k = min(config.top_k, penalized.size)
    order = np.argsort(-penalized, kind="stable")[:k]
    scaled = penalized[order] / np.float32(config.temperature)
    keep = np.cumsum(_softmax(scaled)) < config.top_p
    keep[:MIN_TOKENS_TO_KEEP] = True
    return _softmax(np.where(keep, scaled, np.float32(_CUT))), order


def draw(probs: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> int:
    """Pick one of ``ids`` with probabilities ``probs`` (renormalised in float64)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    total = p.sum()
    if total <= 0:  # degenerate output: fall back to the most likely candidate
        return int(np.asarray(ids).reshape(-1)[0])
    return int(np.asarray(ids).reshape(-1)[rng.choice(p.size, p=p / total)])


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - np.max(x))
    return e / e.sum()
