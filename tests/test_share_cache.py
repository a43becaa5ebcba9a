"""Sequence sharing on share-cache builds (LLM-TPU's share_cache_demo layout), on the simulator.

A prefix is prefilled once, three questions are asked against it, and every answer's greedy
tokens must equal Hugging Face's on prefix+question (tests/fixtures/share_cache.json), for
each share build plain and encrypted (both load strategies), static and dynamic, and equal the
standard llm_convert build's answer on the whole prefix+question. Switching between the two
share builds (equal weights, different unshare lengths) keeps the prefix and one copy of the
weights on the device.

As in test_chat.py: one ModelHost at a time in this process (two runtimes corrupt each other),
and each encrypted file gets a host of its own (next to a plain copy its weights would be found
on the device instead of decrypted).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bmcrypt.chat import ChatError, ChatSession, GenerationConfig
from bmcrypt.errors import PromptTooLong
from bmcrypt.keys import generate_key_file
from bmcrypt.workflow import encrypt_model

pytestmark = pytest.mark.runtime

FIX = Path(__file__).resolve().parent / "fixtures"
CASE = json.loads((FIX / "share_cache.json").read_text())
TOKENIZER = FIX / CASE["tokenizer"]
SHARE = [FIX / m["file"] for m in CASE["share_models"]]  # largest unshare length first
DYNAMIC = FIX / CASE["dynamic_model"]["file"]
STANDARD = FIX / CASE["standard_model"]["file"]
S = CASE["share_models"][0]["share_length"]
U = CASE["share_models"][0]["unshare_length"]
SEQ = CASE["share_models"][0]["seq_length"]
PREFIX: list[int] = CASE["prefix_ids"]
QUESTIONS: list[list[int]] = CASE["questions"]
REFERENCE: list[list[int]] = CASE["reference"]
GREEDY = GenerationConfig(max_new_tokens=CASE["max_new_tokens"])


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("share")
    key = generate_key_file(root / "share.key")
    files = {}
    for src in [*SHARE, DYNAMIC]:
        files[src.name] = root / src.name
        encrypt_model(src, key, output=files[src.name])
    return {"key": key, "files": files}


def session(paths: list[Path], key: object = None, **kwargs: object) -> ChatSession:
    return ChatSession.open(paths, TOKENIZER, key, config=GREEDY, **kwargs)  # type: ignore[arg-type]


def answers(chat: ChatSession) -> list[list[int]]:
    return [chat.complete(q).tokens for q in QUESTIONS]


# ---------------------------------------------------------------- greedy, against the reference


@pytest.mark.parametrize("name", [p.name for p in [*SHARE, DYNAMIC]])
def test_one_prefix_three_questions_plain(name: str):
    with session([FIX / name]) as chat:
        shared = chat.share(PREFIX)
        assert shared.ids == PREFIX
        got = answers(chat)
        assert chat.shared is not None  # still valid after three questions
    assert got == REFERENCE


# Each build once, and both strategies on the dynamic one (the switching tests below load the
# static builds from memory too): the simulator takes about 25 s per session.
@pytest.mark.parametrize(("name", "strategy"), [
    (SHARE[0].name, "callback"), (SHARE[1].name, "memory"),
    (DYNAMIC.name, "callback"), (DYNAMIC.name, "memory"),
])
def test_one_prefix_three_questions_encrypted(name: str, strategy: str, encrypted: dict):
    with session([encrypted["files"][name]], encrypted["key"], strategy=strategy) as chat:
        chat.share(PREFIX)
        assert answers(chat) == REFERENCE


def test_the_standard_build_answers_prefix_and_question_alike():
    with session([STANDARD]) as chat:
        got = [chat.complete(PREFIX + q).tokens for q in QUESTIONS]
    assert got == REFERENCE


def test_penalty_sampling_is_the_same_plain_and_encrypted(encrypted: dict):
    config = GenerationConfig(mode="penalty_sample", max_new_tokens=8, temperature=0.9,
                              top_p=0.8, repeat_penalty=1.2, repeat_last_n=16, seed=77)
    outs = []
    for path, key in ((SHARE[0], None), (encrypted["files"][SHARE[0].name], encrypted["key"])):
        with session([path], key) as chat:
            chat.share(PREFIX)
            outs.append([chat.complete(q, config=config).tokens for q in QUESTIONS])
    assert outs[0] == outs[1]
    assert all(len(t) == 8 for t in outs[0])


# ---------------------------------------------------------------- switching models


@pytest.mark.parametrize("resident", ["all", "active"])
def test_switching_builds_keeps_the_prefix_and_one_copy_of_the_weights(resident: str,
                                                                        encrypted: dict):
    files = [encrypted["files"][p.name] for p in SHARE]
    first, second = (p.stem for p in files)
    with session(files, encrypted["key"], resident=resident, strategy="memory",
                 model=first) as chat:
        chat.share(PREFIX)
        got = [chat.complete(QUESTIONS[0]).tokens]
        prefilled = chat.shared
        chat.use(second)
        assert chat.shared is not None and chat.shared.model == second
        assert chat.shared.prefill_s == prefilled.prefill_s  # carried, not prefilled again
        got += [chat.complete(q).tokens for q in QUESTIONS[1:]]
        weights = chat.host.plans[0].device_mem.weight
        in_use = chat.host.meter.read().used
        loaded = chat.host.models
    assert got == REFERENCE
    # The second build's weights were found on the device, not uploaded again.
    assert chat.host.plans[1].shared_bytes == sum(chat.host.plans[1].coeffs.values())
    if resident == "active":
        assert len(loaded) == 1 and loaded[0].measured_bytes < weights
    assert in_use < 2 * weights


# ---------------------------------------------------------------- limits


def test_limits_are_clear_errors_and_generate_nothing():
    s, u = S, U
    with session([SHARE[0]]) as chat:
        with pytest.raises(PromptTooLong, match="shared prefix has"):
            chat.share([5] * (s + 1))
        assert chat.shared is None
        chat.share(PREFIX)
        with pytest.raises(PromptTooLong, match="question has"):
            chat.complete([5] * (u + 1))
        long = chat.complete(QUESTIONS[0], config=GenerationConfig(max_new_tokens=None))
        assert long.stats.stop in ("sequence_full", "eos")
        assert len(PREFIX) + len(QUESTIONS[0]) + len(long.tokens) <= SEQ
    with session([STANDARD]) as chat, pytest.raises(ChatError, match="not a share-cache build"):
        chat.share(PREFIX)
