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
        #: Ids that ``decode`` leaves out (the added tokens marked special).
        self.special_ids = frozenset(int(i) for i, added in
                                     self._tok.get_added_tokens_decoder().items()
                                     if added.special)

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

    The pieces are exactly what decoding the whole answer so far on every token and showing
    what is new would print, and they add up to ``decode`` of the answer; but each token costs
    a decode of a few ids, whatever its position (decoding everything made streaming quadratic
    in the answer's length).

    Byte-level BPE splits multi-byte characters across tokens; a partial character decodes as
    U+FFFD, so text ending in one is held back until a later token completes it (or the answer
    ends: ``flush``). The decoder keeps a short window: the tokens of the last released piece,
    as context (a decoder may render a token differently at the start of a text), then the
    tokens not yet released. Each token decodes the context alone and the whole window, and
    releases what the window adds, unless it ends in U+FFFD. Released text always ends on a
    whole character, so decoding can restart there and the window can drop older tokens.

    Special tokens are skipped by ``decode`` wherever they stand, so they never enter the
    window: a run of them costs nothing. Only a run of bytes that never forms a character
    (which a model should not write) grows the window until the next whole character.
    """

    def __init__(self, tokenizer: ChatTokenizer) -> None:
        self._tok = tokenizer
        self._skipped = tokenizer.special_ids
        self._window: list[int] = []
        self._context = 0  # the window's first tokens, already released

    def push(self, token: int) -> str:
        """Add one token; return the new text that is safe to show (maybe empty)."""
        if token in self._skipped:
            return ""
        self._window.append(token)
        before, text = self._decode_window()
        if len(text) <= len(before) or text.endswith("\ufffd"):
            return ""
        del self._window[:self._context]  # the released tokens become the next context
        self._context = len(self._window)
        return text[len(before):]

    def flush(self) -> str:
        """Whatever is left, incomplete characters included; the answer ends here."""
        before, text = self._decode_window()
        self._window.clear()
        self._context = 0
        return text[len(before):]

    def _decode_window(self) -> tuple[str, str]:
        return self._tok.decode(self._window[:self._context]), self._tok.decode(self._window)


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
