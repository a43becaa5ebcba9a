"""A multi-turn conversation, and fitting it into the model's sequence length.

The model sees the whole conversation again at every turn (prefill re-runs it, as in the
vendor demos). When it no longer fits, the oldest turns go first; the system prompt, if any,
always stays, and so does the new user message. A turn is one user message with its answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bmcrypt.chat.template import Message
from bmcrypt.chat.tokenizer import ChatTokenizer
from bmcrypt.errors import PromptTooLong


@dataclass(frozen=True)
class Turn:
    """One exchange."""

    user: str
    assistant: str


@dataclass
class Conversation:
    """The system prompt and the turns so far."""

    system: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def messages(self, user: str, *, keep: int | None = None) -> list[Message]:
        """The messages for a new ``user`` message, with only the last ``keep`` turns."""
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        start = 0 if keep is None else len(self.turns) - min(keep, len(self.turns))
        for turn in self.turns[start:]:
            out.append({"role": "user", "content": turn.user})
            out.append({"role": "assistant", "content": turn.assistant})
        out.append({"role": "user", "content": user})
        return out

    def add(self, user: str, assistant: str) -> None:
        self.turns.append(Turn(user, assistant))

    def clear(self) -> None:
        """Forget the turns (the system prompt stays)."""
        self.turns.clear()


@dataclass(frozen=True)
class FittedPrompt:
    """The prompt ids for the next answer, and how many old turns had to go."""

    ids: list[int]
    dropped_turns: int


def fit_prompt(tokenizer: ChatTokenizer, conversation: Conversation, user: str, seq_len: int,
               reserve: int) -> FittedPrompt:
    """The longest recent part of the conversation whose prompt leaves ``reserve`` tokens for
    the answer within ``seq_len``.

    If even the system prompt and the new message alone leave less than ``reserve``, they are
    used anyway as long as at least one token of answer fits; beyond that, ``PromptTooLong``.
    Dropped turns are removed from ``conversation`` (they would not fit next time either).
    """
    total = len(conversation.turns)
    for keep in range(total, -1, -1):
        ids = tokenizer.prompt_ids(conversation.messages(user, keep=keep))
        if len(ids) + reserve <= seq_len or (keep == 0 and len(ids) < seq_len):
            dropped = total - keep
            del conversation.turns[:dropped]
            return FittedPrompt(ids, dropped)
    raise PromptTooLong(
        f"the message needs {len(ids)} tokens with the chat template"
        f"{' and the system prompt' if conversation.system else ''}; the model holds "
        f"{seq_len} tokens in all, prompt and answer")
