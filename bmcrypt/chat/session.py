"""A chat: models on the device, a tokenizer, a conversation, and answers.

    with ChatSession.open(["qwen.bmodel"], "tokenizer/", keyring) as chat:
        answer = chat.ask("Hello", on_text=print)      # multi-turn, templated
        answer = chat.complete([1, 17, 42])             # raw ids, no template, no history

With several models loaded, one answers at a time (``use`` switches); the conversation is
shared, so another model can take over where the first one stopped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bmcrypt.chat.conversation import Conversation, fit_prompt
from bmcrypt.chat.engine import LlmEngine
from bmcrypt.chat.generate import GenerationStats, generate
from bmcrypt.chat.heads import require_mode
from bmcrypt.chat.host import LoadedModel, ModelHost
from bmcrypt.chat.sampling import GenerationConfig
from bmcrypt.chat.tokenizer import ChatTokenizer
from bmcrypt.crypto import Keyring
from bmcrypt.errors import ChatError
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

    def to_json(self) -> dict[str, Any]:
        """``{"prompt_ids", "tokens", "text", "stats"}`` as ``bmcrypt chat --json`` prints it."""
        stats = {"model": self.model, **self.stats.to_json(),
                 "dropped_turns": self.dropped_turns}
        return {"prompt_ids": self.prompt_ids, "tokens": self.tokens, "text": self.text,
                "stats": stats}


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
        # By default the first model given answers (the host loads them in another order).
        self.active = min(host.models, key=lambda m: m.plan.given_index)
        self.use(model or self.active.name)  # refuses an impossible mode before any answer

    @classmethod
    def open(cls, models: Sequence[str | os.PathLike[str]], tokenizer_dir: str | os.PathLike[str],
             keyring: Keyring | None = None, *, config: GenerationConfig | None = None,
             strategy: Strategy = "callback", runtime_dir: str | os.PathLike[str] | None = None,
             system: str | None = None, model: str | None = None) -> ChatSession:
        """Read the tokenizer, load the models, and start a conversation with ``model`` (a
        file name without .bmodel; default: the first one given) answering."""
        tokenizer = ChatTokenizer(tokenizer_dir)  # cheap: fail before the simulator starts
        host = ModelHost(models, keyring, strategy=strategy, runtime_dir=runtime_dir)
        try:
            return cls(host, tokenizer, config, system=system, model=model, owns_host=True)
        except BaseException:
            host.close()
            raise

    # ------------------------------------------------------------------ models

    def use(self, name: str) -> LoadedModel:
        """Make model ``name`` the one that answers (its buffers are set up on first use)."""
        try:
            model = self.host.model(name)
        except KeyError:
            loaded = ", ".join(m.name for m in self.host.models)
            raise ChatError(f"no model named {name!r} is loaded (loaded: {loaded})",
                            hint="models are named by their file name without .bmodel") from None
        self._check(model, self.config)
        if name not in self._engines:
            self._engines[name] = LlmEngine(model.runtime, model.layout)
        self.active = model
        return model

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

        result = generate(self._engines[model.name], ids, config, self.tokenizer.eos_ids,
                          on_token, model.name)
        if on_text is not None:
            rest = stream.flush()
            if rest:
                on_text(rest)
        shown = [t for t in result.tokens if t not in self.tokenizer.eos_ids]
        return Answer(model.name, ids, result.tokens, self.tokenizer.decode(shown),
                      result.stats, dropped)

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
