"""The interactive loop of ``bmcrypt chat``: read a line, stream the answer, repeat.

Input is any iterable of lines (stdin, a pseudo-terminal, a list in tests); everything the
user sees goes through a ``Renderer``, so this module prints nothing itself. Lines starting
with ``/`` are commands:

    /exit, /quit      end the chat (as does end of input)
    /clear            forget the conversation (the system prompt stays)
    /models           list the loaded models, the answering one marked
    /model NAME       let NAME answer from now on
    /help             list these commands

A failed answer (a message too long for the model, say) is reported and the chat goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bmcrypt.chat.session import Answer, ChatSession
from bmcrypt.errors import ChatError

COMMANDS = {
    "/exit": "end the chat (also /quit, or end of input)",
    "/clear": "forget the conversation (the system prompt stays)",
    "/models": "list the loaded models",
    "/model NAME": "let NAME answer from now on",
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
    else:
        for usage, what in COMMANDS.items():
            renderer.note(f"{usage:<14} {what}")
    return True
