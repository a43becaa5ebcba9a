"""The model's tokenizer folder: text <-> token ids, the chat template, the EOS tokens.

Reads the files a Hugging Face model ships (only ``tokenizer.json`` is required):

- ``tokenizer.json``: the tokenizer itself, run by the ``tokenizers`` library;
- ``tokenizer_config.json``: special tokens (template variables; ``eos_token``) and possibly
  the chat template;
- ``chat_template.jinja``: the chat template (preferred over the config's);
- ``generation_config.json`` and ``config.json``: ``eos_token_id`` (an id or a list).

EOS tokens are the union of all of these, plus ``<|im_end|>`` and ``<|endoftext|>`` when the
vocabulary has them: Qwen's chat turns end with the first, its documents with the second, and
the vendor demos stop on both.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bmcrypt.chat.template import Message, find_template, render
from bmcrypt.errors import TokenizerError

#: Stop tokens of the Qwen chat format, used when the vocabulary has them.
QWEN_STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
_SPECIAL_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token", "sep_token", "cls_token",
                 "mask_token")


class ChatTokenizer:
    """Everything ``bmcrypt chat`` needs from a tokenizer folder."""

    def __init__(self, folder: str | Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise TokenizerError("bmcrypt chat needs the `tokenizers` package",
                                 hint="pip install 'bmcrypt[chat]'") from None
        self.folder = Path(folder)
        path = self.folder / "tokenizer.json"
        if not self.folder.is_dir():
            raise TokenizerError(f"tokenizer folder {self.folder} does not exist")
        if not path.is_file():
            raise TokenizerError(f"{self.folder} has no tokenizer.json")
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as e:  # the library raises plain Exception subclasses
            raise TokenizerError(f"cannot read {path}: {e}") from None
        self.config = _json(self.folder / "tokenizer_config.json")
        self.generation_config = _json(self.folder / "generation_config.json")
        self.model_config = _json(self.folder / "config.json")
        self.template = find_template(self.folder, self.config)
        self.special_tokens = {k: v for k in _SPECIAL_KEYS
                               if (v := _token_text(self.config.get(k))) is not None}
        self.eos_ids = frozenset(self._eos_ids())

    # ------------------------------------------------------------------ text

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens in it (``<|im_start|>`` …) become their ids."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, without special tokens."""
        return str(self._tok.decode(list(ids), skip_special_tokens=True))

    def token_id(self, text: str) -> int | None:
        """The id of one token given by its text, if the vocabulary has it."""
        found = self._tok.token_to_id(text)
        return None if found is None else int(found)

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        """The prompt text for ``messages`` through the folder's chat template."""
        if self.template is None:
            raise TokenizerError(
                f"{self.folder} has no chat template (no chat_template.jinja, no chat_template "
                "in tokenizer_config.json)",
                hint="add the model's template, or feed raw ids with --prompt-ids")
        return render(self.template, messages, add_generation_prompt=add_generation_prompt,
                      variables=self.special_tokens)

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """Rendered and encoded, ready for the model."""
        return self.encode(self.render(messages))

    def stream(self) -> StreamDecoder:
        """An incremental decoder for one answer."""
        return StreamDecoder(self)

    # ------------------------------------------------------------------ EOS

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for cfg in (self.generation_config, self.model_config):
            ids.update(_ids(cfg.get("eos_token_id")))
        names = [self.special_tokens.get("eos_token"), *QWEN_STOP_TOKENS]
        ids.update(i for name in names if name and (i := self.token_id(name)) is not None)
        return ids


class StreamDecoder:
    """Decodes an answer token by token, releasing text only once it is complete.

    Byte-level BPE splits multi-byte characters across tokens; a partial character decodes as
    U+FFFD, so text ending in one is held back until the next token completes it (or the
    answer ends: ``flush``).

    Each step decodes a short window, not the whole answer (which made streaming quadratic in
    its length): the tokens not yet released plus the last released ones as context (a
    tokenizer may decode a token differently at the start of a text), and releases what the
    window's text adds to the context's.
    """

    def __init__(self, tokenizer: ChatTokenizer) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._context = 0  # where the decoded window starts
        self._released = 0  # tokens whose text has been released

    def push(self, token: int) -> str:
        """Add one token; return the new text that is safe to show (maybe empty)."""
        self._ids.append(token)
        before, text = self._window()
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return ""
        self._context, self._released = self._released, len(self._ids)
        return text[len(before):]

    def flush(self) -> str:
        """Whatever is left, incomplete characters included."""
        before, text = self._window()
        self._context = self._released = len(self._ids)
        return text[len(before):]

    def _window(self) -> tuple[str, str]:
        window = self._ids[self._context:]
        return (self._tok.decode(window[:self._released - self._context]),
                self._tok.decode(window))


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path} does not hold a JSON object")
    return data


def _token_text(value: Any) -> str | None:
    # tokenizer_config.json spells special tokens as strings or as AddedToken dicts.
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _ids(value: Any) -> Iterable[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []
