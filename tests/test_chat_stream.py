"""Streaming an answer's text token by token (``ChatTokenizer.stream()``) with the real tokenizer
of the tiny Qwen2 fixture: the pieces are exactly what decoding the whole answer so far on every
token printed (the old way, kept here as the reference), and each token costs a bounded decode,
whatever its position in the answer. No runtime needed."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bmcrypt.chat import ChatTokenizer

TOKENIZER = Path(__file__).resolve().parent / "fixtures" / "tiny-qwen2-tokenizer"
VOCAB = 1024
SPECIALS = (0, 1, 2)  # <|endoftext|>, <|im_start|>, <|im_end|>

#: Multi-byte text: the fixture's vocabulary has no merges for it, so every character is split
#: into byte tokens (2, 3 and 4 bytes, and emoji joined by U+200D).
MULTIBYTE = ("中文的流式输出：每个汉字占三个字节。Ünïcödé, €uro, 𝄞 clef, 😀🙂 emoji, "
             "👩‍👩‍👧 family, 🇫🇷 flag, ½ ≠ ∞ — done.")
ANSWER = ("The answer, streamed token by token, mixes English with 中文（汉字）and emoji 🙂; "
          "each line ends here.\n")


@pytest.fixture(scope="module")
def tok() -> ChatTokenizer:
    return ChatTokenizer(TOKENIZER)


def old_pieces(tok: ChatTokenizer, ids: Sequence[int]) -> list[str]:
    """What streaming printed before: decode every token so far on each token, print what is new
    unless the text ends in a partial character; at the end, print the rest."""
    pieces, shown = [], 0
    for n in range(1, len(ids) + 1):
        text = tok.decode(ids[:n])
        if text.endswith("\ufffd"):
            pieces.append("")
            continue
        pieces.append(text[shown:])
        shown = max(shown, len(text))
    return pieces + [tok.decode(ids)[shown:]]


def streamed(tok: ChatTokenizer, ids: Sequence[int]) -> list[str]:
    stream = tok.stream()
    return [stream.push(i) for i in ids] + [stream.flush()]


def with_specials(ids: Sequence[int], seed: int, runs: int = 40) -> list[int]:
    """`ids` with special tokens inserted at random places, alone and in runs of up to 30,
    between the bytes of one character too."""
    rng = random.Random(seed)
    out = list(ids)
    for _ in range(runs):
        at = rng.randrange(len(out) + 1)
        out[at:at] = [rng.choice(SPECIALS) for _ in range(rng.choice((1, 1, 2, 30)))]
    return out


# ---------------------------------------------------------------------------- same text


@pytest.mark.parametrize("seed", range(8))
def test_random_ids_stream_exactly_as_decoding_everything_did(tok: ChatTokenizer,
                                                              seed: int) -> None:
    # Random ids of the whole vocabulary: byte tokens that never form a character, lone
    # continuation bytes, specials; 1000 of them, as long as the answers we want to stream.
    ids = [random.Random(seed).randrange(VOCAB) for _ in range(1000)]
    pieces = streamed(tok, ids)
    assert pieces == old_pieces(tok, ids)
    assert "".join(pieces) == tok.decode(ids)


def test_a_long_answer_streams_exactly_as_decoding_everything_did(tok: ChatTokenizer) -> None:
    ids = tok.encode(ANSWER * 40)[:1000]
    assert len(ids) == 1000
    pieces = streamed(tok, ids)
    assert pieces == old_pieces(tok, ids)
    assert "".join(pieces) == tok.decode(ids)


def test_multibyte_characters_are_shown_only_once_complete(tok: ChatTokenizer) -> None:
    ids = tok.encode(MULTIBYTE)
    assert len(ids) > len(MULTIBYTE)  # characters are split over several tokens
    pieces = streamed(tok, ids)
    assert "".join(pieces) == MULTIBYTE
    assert pieces == old_pieces(tok, ids)
    assert not any("\ufffd" in p for p in pieces)
    assert "" in pieces  # tokens were held back until their character was complete
    # Every piece ends on a whole character: the emoji's bytes come out together.
    assert "😀" in pieces and "𝄞" in pieces


def test_special_tokens_inside_are_skipped_as_decode_skips_them(tok: ChatTokenizer) -> None:
    for seed in range(4):
        ids = with_specials(tok.encode(MULTIBYTE + ANSWER), seed)
        pieces = streamed(tok, ids)
        assert "".join(pieces) == tok.decode(ids) == MULTIBYTE + ANSWER
        assert pieces == old_pieces(tok, ids)
    # A special token between the three bytes of one character does not split it.
    a, b, c = tok.encode("中")
    assert streamed(tok, [a, 2, b, 1, 1, c]) == ["", "", "", "", "", "中", ""]


def test_an_answer_cut_inside_a_character_flushes_what_decode_shows(tok: ChatTokenizer) -> None:
    ids = tok.encode("ok 中")[:-1]  # the answer stopped (max tokens) one byte short
    pieces = streamed(tok, ids)
    assert pieces == old_pieces(tok, ids)
    assert "".join(pieces) == tok.decode(ids) == "ok \ufffd"
    assert pieces[-1] == "\ufffd"  # held back while it could still complete, shown at the end


def test_each_answer_streams_on_its_own(tok: ChatTokenizer) -> None:
    first, second = tok.stream(), tok.stream()
    ids = tok.encode("ab 中")
    assert "".join(first.push(i) for i in ids) == "ab 中"
    assert first.flush() == ""
    assert "".join(second.push(i) for i in ids) + second.flush() == "ab 中"


# ---------------------------------------------------------------------------- bounded work


class CountingTokenizer:
    """The real `tokenizers.Tokenizer`, counting how many ids each decode is given."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.sizes: list[int] = []

    def decode(self, ids: list[int], **kwargs: Any) -> str:
        self.sizes.append(len(ids))
        return str(self._real.decode(ids, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def decoded_per_token(ids: Sequence[int]) -> list[int]:
    """How many ids the library decodes for each token pushed (flush included)."""
    tok = ChatTokenizer(TOKENIZER)
    counting = CountingTokenizer(tok._tok)
    tok._tok = counting
    stream = tok.stream()
    per_token = []
    for i in [*ids, None]:
        counting.sizes.clear()
        piece = stream.push(i) if i is not None else stream.flush()
        assert "\ufffd" not in piece
        per_token.append(sum(counting.sizes))
    return per_token


def test_streaming_decodes_a_bounded_window_per_token() -> None:
    """Linear streaming: each token costs a decode of a few ids, not of the answer so far
    (the old way decoded 1000 ids for the 1000th token, 2000 for a 2000-token answer)."""
    ids = with_specials(ChatTokenizer(TOKENIZER).encode((MULTIBYTE + ANSWER) * 20), 7)
    assert len(ids) > 2000
    per_token = decoded_per_token(ids)
    # Two decodes per token (the context and context + new), each at most the held-back bytes
    # of one 4-byte character and the previous piece's tokens; runs of 30 specials add nothing.
    assert max(per_token) <= 16
    early, late = per_token[:200], per_token[-201:-1]
    assert max(late) <= max(early) and sum(late) <= 1.25 * sum(early)
