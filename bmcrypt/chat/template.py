"""Chat templates: the Jinja program in a Hugging Face tokenizer folder that turns a list of
messages into the prompt text, rendered the way ``transformers``' ``apply_chat_template`` does.

Same environment as transformers, so templates written for it render identically: a sandbox,
``trim_blocks`` and ``lstrip_blocks``, the ``loopcontrols`` extension, a ``tojson`` filter that
keeps non-ASCII text, and the globals ``raise_exception`` and ``strftime_now``. The special
tokens of ``tokenizer_config.json`` (``bos_token``, ``eos_token`` …) are template variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

from bmcrypt.errors import TokenizerError

Message = Mapping[str, str]


def find_template(folder: Path, config: Mapping[str, Any]) -> str | None:
    """The folder's chat template: ``chat_template.jinja`` first (the newer place), else the
    ``chat_template`` of ``tokenizer_config.json`` (a string, or a list of named templates of
    which we take "default"). None when there is none."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        try:
            return jinja.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise TokenizerError(f"cannot read {jinja}: {e}") from None
    value = config.get("chat_template")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        chosen = named.get("default")
        if isinstance(chosen, str):
            return chosen
    return None


def render(template: str, messages: Sequence[Message], *, add_generation_prompt: bool = True,
           variables: Mapping[str, Any] | None = None) -> str:
    """Render ``template`` for ``messages`` (dicts with "role" and "content")."""
    try:
        import jinja2
    except ImportError:
        raise TokenizerError("chat templates need the `jinja2` package",
                             hint="pip install 'bmcrypt[chat]'") from None

    try:
        compiled = _compile(template)
        return compiled.render(messages=[dict(m) for m in messages],
                               add_generation_prompt=add_generation_prompt,
                               **dict(variables or {}))
    except jinja2.TemplateError as e:
        raise TokenizerError(f"the chat template failed: {e}",
                             hint="check chat_template.jinja (or tokenizer_config.json)") from None


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Jinja's own tojson escapes HTML characters and forces ASCII; templates expect neither.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _raise_exception(message: str) -> NoReturn:
    import jinja2

    raise jinja2.TemplateError(message)
