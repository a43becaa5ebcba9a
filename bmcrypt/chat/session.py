"""A chat: models on the device, a tokenizer, a conversation, and answers.

    with ChatSession.open(["qwen.bmodel"], "tokenizer/", keyring) as chat:
        answer = chat.ask("Hello", on_text=print)      # multi-turn, templated
        answer = chat.complete([1, 17, 42])             # raw ids, no template, no history

With several models loaded, one answers at a time (``use`` switches); the conversation is
shared, so another model can take over where the first one stopped.

Share-cache builds (LLM-TPU's share_cache_demo) answer many questions against one long prefix:

    chat.share(document_text)                           # prefilled once
    a1 = chat.ask("question 1")                         # only the question is prefilled
    a2 = chat.complete(question_2_ids)
    chat.use("other_build")                             # equal weights: the prefix carries over

With a shared prefix, questions are tokenized as they are (no chat template, no history), as the
demo's pipeline does: the prefix text carries whatever template the user wants.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bmcrypt.chat.conversation import Conversation, fit_prompt
from bmcrypt.chat.engine import LlmEngine
from bmcrypt.chat.generate import GenerationStats, generate
from bmcrypt.chat.heads import require_mode
from bmcrypt.chat.host import LoadedModel, ModelHost, Resident
from bmcrypt.chat.kvcache import KVCache
from bmcrypt.chat.sampling import GenerationConfig
from bmcrypt.chat.tokenizer import ChatTokenizer
from bmcrypt.crypto import Keyring
from bmcrypt.errors import ChatError, PromptTooLong
from bmcrypt.loader import Strategy

TextSink = Callable[[str], None]


@dataclass(frozen=True)
class Answer:
    """One answer: what went in, what came out, how long it took."""

    model: str
    prompt_ids: list[int]
    tokens: list[int]
    text: str
    stats: GenerationStats
    dropped_turns: int = 0
    shared_prefix_tokens: int = 0  # a share-cache build's prefix the question was asked against

    def to_json(self) -> dict[str, Any]:
        """``{"prompt_ids", "tokens", "text", "stats"}`` as ``bmcrypt chat --json`` prints it
        (and ``"shared_prefix_tokens"`` when a prefix is shared)."""
        stats = {"model": self.model, **self.stats.to_json(),
                 "dropped_turns": self.dropped_turns}
        out: dict[str, Any] = {"prompt_ids": self.prompt_ids, "tokens": self.tokens,
                               "text": self.text, "stats": stats}
        if self.shared_prefix_tokens:
            out["shared_prefix_tokens"] = self.shared_prefix_tokens
        return out


@dataclass(frozen=True)
class SharedPrefix:
    """A prefix prefilled once into the cache of a share-cache build."""

    ids: list[int]
    model: str  # the model whose cache holds it
    prefill_s: float  # how long its prefill took (once)


class ChatSession:
    """Answers with the active model of ``host``; owns the host if made by ``open``."""

    def __init__(self, host: ModelHost, tokenizer: ChatTokenizer,
                 config: GenerationConfig | None = None, *, system: str | None = None,
                 model: str | None = None, owns_host: bool = False) -> None:
        self.host = host
        self.tokenizer = tokenizer
        self.config = config or GenerationConfig()
        self.conversation = Conversation(system=system)
        self._owns_host = owns_host
        self._engines: dict[str, LlmEngine] = {}
        self.shared: SharedPrefix | None = None
        # By default the first model given answers (the host loads them in another order).
        self.active = min(host.models, key=lambda m: m.plan.given_index)
        self.use(model or self.active.name)  # refuses an impossible mode before any answer

    @classmethod
    def open(cls, models: Sequence[str | os.PathLike[str]], tokenizer_dir: str | os.PathLike[str],
             keyring: Keyring | None = None, *, config: GenerationConfig | None = None,
             strategy: Strategy = "callback", runtime_dir: str | os.PathLike[str] | None = None,
             system: str | None = None, model: str | None = None,
             resident: Resident = "all") -> ChatSession:
        """Read the tokenizer, load the models, and start a conversation with ``model`` (a
        file name without .bmodel; default: the first one given) answering. ``resident``: see
        ``bmcrypt.chat.host``."""
        tokenizer = ChatTokenizer(tokenizer_dir)  # cheap: fail before the simulator starts
        host = ModelHost(models, keyring, strategy=strategy, runtime_dir=runtime_dir,
                         resident=resident, first=model)
        try:
            return cls(host, tokenizer, config, system=system, model=model, owns_host=True)
        except BaseException:
            host.close()
            raise

    # ------------------------------------------------------------------ models

    def use(self, name: str) -> LoadedModel:
        """Make model ``name`` the one that answers (its buffers are set up on first use).

        A shared prefix carries over to a model with the same weights (``_carry_prefix``).
        With a host of ``"active"`` residency the previous model is unloaded first, all but
        its KV cache, which lives on the host's device until the prefix has moved.
        """
        if name not in {p.name for p in self.host.plans}:
            known = ", ".join(p.name for p in self.host.plans)
            raise ChatError(f"no model named {name!r} is loaded (loaded: {known})",
                            hint="models are named by their file name without .bmodel")
        previous, old_cache = self.active, None
        swapping = self.host.resident == "active" and previous.name != name
        if swapping and previous.name in self._engines:
            old = self._engines.pop(previous.name)
            old.free(keep_cache=True)
            old_cache = old.cache
        model = self.host.activate(name)
        self._check(model, self.config)
        if name not in self._engines:
            owner = self.host.runtime if self.host.resident == "active" else None
            self._engines[name] = LlmEngine(model.runtime, model.layout, cache_owner=owner)
        self.active = model
        try:
            if self.shared is not None and previous.name != name:
                self._carry_prefix(previous, model,
                                   old_cache or self._engines[previous.name].cache)
        finally:
            if old_cache is not None:
                old_cache.free()
        return model

    def _carry_prefix(self, old: LoadedModel, new: LoadedModel, source: KVCache) -> None:
        """Hand the shared prefix's cache rows to ``new`` (no prefill), or drop the prefix with
        ChatError when ``new`` cannot use them: other weights compute another cache."""
        assert self.shared is not None
        n = len(self.shared.ids)
        if not new.layout.shares or n > new.layout.share_len:
            self.shared = None
            raise ChatError(f"{new.name} cannot take the shared prefix of {n} tokens "
                            "(not a share-cache build, or its share length is shorter)",
                            hint="share the prefix again with /share (--share-prefix)")
        if set(new.plan.coeffs) != set(old.plan.coeffs) or new.layout.kv_shape[2:] != \
                old.layout.kv_shape[2:] or new.layout.kv_dtype != old.layout.kv_dtype:
            self.shared = None
            self.conversation.clear()
            raise ChatError(f"{new.name} and {old.name} have different weights: they cannot "
                            "share a prefix's cache; the session starts afresh on "
                            f"{new.name}", hint="share the prefix again with /share "
                                                "(--share-prefix)")
        rows = n * old.layout.kv_row_bytes
        src, dst = source, self._engines[new.name].cache
        for layer in range(new.layout.layers):
            dst.keys[layer].copy_from(src.keys[layer], size=rows)
            dst.values[layer].copy_from(src.values[layer], size=rows)
        self.shared = SharedPrefix(self.shared.ids, new.name, self.shared.prefill_s)

    def share(self, prefix: str | Sequence[int]) -> SharedPrefix:
        """Prefill ``prefix`` (text, tokenized as it is, or token ids) once into the answering
        share-cache build; ``ask``/``complete`` then prefill only their question."""
        model = self.active
        if not model.layout.shares:
            raise ChatError(f"{model.name} is not a share-cache build: it has no "
                            "embedding_unshare/block_unshare nets to ask questions against a "
                            "shared prefix", hint="compile the share-cache layout (docs/chat.md), "
                                                  "or chat without --share-prefix")
        ids = self.tokenizer.encode(prefix) if isinstance(prefix, str) else list(prefix)
        if not ids:
            raise PromptTooLong("the shared prefix is empty", hint="give at least one token")
        if len(ids) > model.layout.share_len:
            raise PromptTooLong(f"the shared prefix has {len(ids)} tokens; {model.name} shares "
                                f"{model.layout.share_len} at most",
                                hint="shorten the prefix, or use a build with a longer share "
                                     "length")
        self.shared = None
        start = time.perf_counter()
        self.engine.share_prefill(ids)
        self.shared = SharedPrefix(ids, model.name, time.perf_counter() - start)
        return self.shared

    @property
    def engine(self) -> LlmEngine:
        """The device pipeline of the answering model."""
        return self._engines[self.active.name]

    def engine_bytes(self) -> int:
        """Device memory of the engines' own buffers (KV caches and activations)."""
        return sum(e.device_bytes for e in self._engines.values())

    # ------------------------------------------------------------------ answering

    def ask(self, user: str, *, on_text: TextSink | None = None,
            config: GenerationConfig | None = None) -> Answer:
        """Answer ``user`` in the conversation (older turns dropped if they no longer fit)."""
        config = config or self.config
        if self.shared is not None:  # questions against the prefix: as they are, no history
            return self._answer(self.tokenizer.encode(user), config, on_text, 0)
        seq = self.active.layout.seq_len
        reserve = max(1, min(config.max_new_tokens or seq, seq // 4))
        fitted = fit_prompt(self.tokenizer, self.conversation, user, seq, reserve)
        answer = self._answer(fitted.ids, config, on_text, fitted.dropped_turns)
        self.conversation.add(user, answer.text)
        return answer

    def complete(self, prompt_ids: Sequence[int], *, on_text: TextSink | None = None,
                 config: GenerationConfig | None = None) -> Answer:
        """Continue raw token ids: no template, no conversation."""
        return self._answer(list(prompt_ids), config or self.config, on_text, 0)

    def reset(self) -> None:
        """Start the conversation over (the system prompt stays)."""
        self.conversation.clear()

    def _answer(self, ids: list[int], config: GenerationConfig, on_text: TextSink | None,
                dropped: int) -> Answer:
        model = self.active
        self._check(model, config)
        stream = self.tokenizer.stream()

        def on_token(token: int) -> None:
            if on_text is not None and token not in self.tokenizer.eos_ids:
                piece = stream.push(token)
                if piece:
                    on_text(piece)

        shared = self.shared.ids if self.shared is not None else None
        if shared is None and model.layout.shares:
            shared = []  # a share-cache build answers through its unshare nets
        result = generate(self._engines[model.name], ids, config, self.tokenizer.eos_ids,
                          on_token, model.name, shared=shared)
        if on_text is not None:
            rest = stream.flush()
            if rest:
                on_text(rest)
        shown = [t for t in result.tokens if t not in self.tokenizer.eos_ids]
        return Answer(model.name, ids, result.tokens, self.tokenizer.decode(shown),
                      result.stats, dropped, len(shared or ()))

    @staticmethod
    def _check(model: LoadedModel, config: GenerationConfig) -> None:
        require_mode(model.layout, config.mode, model.name)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Free the engines' buffers; close the host if this session opened it."""
        if not self.host.closed:
            for engine in self._engines.values():
                engine.free()
        self._engines.clear()
        if self._owns_host:
            self.host.close()

    def __enter__(self) -> ChatSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
