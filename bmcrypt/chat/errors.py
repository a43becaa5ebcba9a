"""Errors of the chat pipeline.

They subclass ``BmcryptError`` so the CLI's single error handler prints them (one line plus a
hint) and exits with their code; the vendor runtime's own failures stay ``VendorRuntimeError``
and key/file problems keep their classes from ``bmcrypt.errors``.
"""

from __future__ import annotations

from bmcrypt.errors import BmcryptError


class ChatError(BmcryptError):
    """Base class of everything the chat pipeline refuses on purpose (exit code 1)."""

    exit_code = 1


class NotAnLlm(ChatError):
    """The model lacks the nets (or shapes) of the tpu-mlir Qwen2-style LLM layout."""

    default_hint = ("bmcrypt chat runs models converted by tpu-mlir's llm_convert.py "
                    "(nets embedding, embedding_cache, block_N, block_cache_N, lm_head); "
                    "`bmcrypt inspect MODEL` lists a file's nets")


class UnsupportedGeneration(ChatError):
    """The generation mode asked for is impossible with this build of the model."""

    default_hint = "use --generation-mode greedy, or a model compiled with sampling heads"


class PromptTooLong(ChatError):
    """The prompt leaves no room for an answer within the model's sequence length."""

    default_hint = ("shorten the prompt (or the system prompt), "
                    "or use a model with a longer sequence")


class TokenizerError(ChatError):
    """The tokenizer folder is missing a file, or a file cannot be used."""

    default_hint = ("--tokenizer takes the model's Hugging Face folder: tokenizer.json, "
                    "tokenizer_config.json, and chat_template.jinja (or a chat_template in "
                    "tokenizer_config.json)")
