"""The interactive loop of ``bmcrypt chat``: read a line, stream the answer, repeat.

Input is any iterable of lines (stdin, a pseudo-terminal, a list in tests); everything the
user sees goes through a ``Renderer``, so this module prints nothing itself. Lines starting
with ``/`` are commands:

    /exit, /quit      end the chat (as does end of input)
    /clear            forget the conversation (the system prompt stays)
    /models           list the loaded models, the answering one marked
    /model NAME       let NAME answer from now on (a shared prefix carries over)
    /share TEXT|@FILE prefill TEXT (or FILE's text) once; lines are then questions against it
    /help             list these commands

A failed answer (a message too long for the model, say) is reported and the chat goes on.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from bmcrypt.chat.session import Answer, ChatSession
from bmcrypt.errors import ChatError

COMMANDS = {
    "/exit": "end the chat (also /quit, or end of input)",
    "/clear": "forget the conversation (the system prompt stays)",
    "/models": "list the loaded models",
    "/model NAME": "let NAME answer from now on",
    "/share TEXT|@FILE": "prefill a shared prefix once; lines are then questions against it",
    "/help": "this list",
}


class Renderer(Protocol):
    """Where the loop's output goes."""

    def prompt(self) -> None:
        """Ask for the next line."""

    def text(self, piece: str) -> None:
        """A piece of the answer being streamed."""

    def answer(self, answer: Answer) -> None:
        """The answer is complete (end the line, show the stats)."""

    def note(self, message: str) -> None:
        """A message for the user, not part of any answer."""

    def error(self, exc: ChatError) -> None:
        """An answer failed; the chat goes on."""


def run_repl(session: ChatSession, lines: Iterable[str], renderer: Renderer) -> int:
    """Chat until ``/exit`` or the end of ``lines``; return the number of answers given."""
    answers = 0
    renderer.prompt()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.strip().startswith("/"):
            if not _command(session, line.strip(), renderer):
                break
        elif line.strip():
            try:
                answer = session.ask(line, on_text=renderer.text)
            except ChatError as exc:
                renderer.error(exc)
            else:
                answers += 1
                renderer.answer(answer)
        renderer.prompt()
    return answers


def _command(session: ChatSession, line: str, renderer: Renderer) -> bool:
    """Run one /command; False ends the chat."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("/exit", "/quit"):
        return False
    if name == "/clear":
        session.reset()
        renderer.note("conversation cleared")
    elif name == "/models":
        for m in session.host.models:
            mark = "*" if m is session.active else " "
            renderer.note(f"{mark} {m.name} (seq {m.layout.seq_len}, "
                          f"{'/'.join(m.layout.sampling_modes)})")
    elif name == "/model" and arg:
        try:
            session.use(arg)
        except ChatError as exc:
            renderer.error(exc)
        else:
            renderer.note(f"{arg} answers from now on")
    elif name == "/share" and arg:
        try:
            shared = session.share(read_prefix(arg))
        except ChatError as exc:
            renderer.error(exc)
        else:
            renderer.note(shared_note(shared.ids, shared.prefill_s))
    else:
        for usage, what in COMMANDS.items():
            renderer.note(f"{usage:<18} {what}")
    return True


def read_prefix(arg: str) -> str:
    """A prefix argument: ``@FILE`` is the file's text, anything else the text itself."""
    if not arg.startswith("@"):
        return arg
    path = Path(arg[1:])
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the open
            raise ChatError(f"{path} is not a regular file", hint="give a text file after @")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChatError(f"cannot read the prefix from {path}: {exc}",
                        hint="give a UTF-8 text file after @") from None


def shared_note(ids: list[int], seconds: float) -> str:
    """The one line that reports a shared prefix's prefill (once, not per question)."""
    return f"[shared prefix: {len(ids)} tokens, prefilled once in {seconds * 1000:.0f} ms]"
