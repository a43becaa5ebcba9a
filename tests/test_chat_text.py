"""bmcrypt.chat without the simulator: tokenizer folder, chat template, history truncation,
sampling arithmetic, load planning, and the CLI's usage errors. Fast; no runtime needed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from bmcrypt.chat import (
    ChatError,
    ChatTokenizer,
    Conversation,
    GenerationConfig,
    PromptTooLong,
    TokenizerError,
    fit_prompt,
    plan_models,
)
from bmcrypt.chat.sampling import candidates, draw, penalize, penalty_window
from bmcrypt.cli.main import main as cli_main
from bmcrypt.crypto import UserKey
from bmcrypt.errors import NoKey, Tampered, WrongKey
from bmcrypt.workflow import encrypt_model

FIX = Path(__file__).resolve().parent / "fixtures"
TOKENIZER = FIX / "tiny-qwen2-tokenizer"
STATIC = FIX / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
DYNAMIC = FIX / "qwen2_tiny_bf16_seq64_dynamic_nokernel.bmodel"
SAMPLE = FIX / "qwen2_tiny_sample_bf16_seq64_nokernel.bmodel"


@pytest.fixture(scope="module")
def tok() -> ChatTokenizer:
    return ChatTokenizer(TOKENIZER)


# ---------------------------------------------------------------------------- template


def test_two_turn_conversation_renders_exactly(tok: ChatTokenizer) -> None:
    conv = Conversation(system="You are terse.")
    conv.add("Hi!", "Hello.")
    text = tok.render(conv.messages("What is 2+2?"))
    assert text == ("<|im_start|>system\nYou are terse.<|im_end|>\n"
                    "<|im_start|>user\nHi!<|im_end|>\n"
                    "<|im_start|>assistant\nHello.<|im_end|>\n"
                    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                    "<|im_start|>assistant\n")


def test_special_tokens_in_the_template_become_their_ids(tok: ChatTokenizer) -> None:
    ids = tok.prompt_ids([{"role": "user", "content": "hi"}])
    assert ids[0] == 1 and ids.count(1) == 2 and ids.count(2) == 1  # im_start x2, im_end x1
    assert tok.decode(ids) == "user\nhi\nassistant\n"


def test_template_from_tokenizer_config_when_no_jinja_file(tmp_path: Path) -> None:
    shutil.copy(TOKENIZER / "tokenizer.json", tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": "<|im_end|>",
         "chat_template": "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
                          "{{ eos_token }}"}))
    tok = ChatTokenizer(tmp_path)
    assert tok.render([{"role": "user", "content": "x"}]) == "[user:x]<|im_end|>"


def test_missing_template_and_missing_tokenizer_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="no tokenizer.json"):
        ChatTokenizer(tmp_path)
    shutil.copy(TOKENIZER / "tokenizer.json", tmp_path)
    tok = ChatTokenizer(tmp_path)
    with pytest.raises(TokenizerError, match="no chat template") as info:
        tok.render([{"role": "user", "content": "x"}])
    assert "--prompt-ids" in (info.value.hint or "")


def test_template_errors_are_tokenizer_errors(tmp_path: Path) -> None:
    shutil.copy(TOKENIZER / "tokenizer.json", tmp_path)
    (tmp_path / "chat_template.jinja").write_text("{{ raise_exception('no system role') }}")
    with pytest.raises(TokenizerError, match="no system role"):
        ChatTokenizer(tmp_path).render([{"role": "user", "content": "x"}])


# ---------------------------------------------------------------------------- tokens


def test_eos_tokens_come_from_the_configs(tok: ChatTokenizer) -> None:
    assert tok.eos_ids == {tok.token_id("<|im_end|>"), tok.token_id("<|endoftext|>")} == {0, 2}


# ---------------------------------------------------------------------------- history


def test_long_conversation_is_cut_from_the_oldest_turn(tok: ChatTokenizer) -> None:
    conv = Conversation(system="Sys.")
    for i in range(12):
        conv.add(f"question {i}", f"answer {i}")
    fitted = fit_prompt(tok, conv, "last question", seq_len=128, reserve=8)
    assert len(fitted.ids) + 8 <= 128
    assert fitted.dropped_turns > 0 and len(conv.turns) == 12 - fitted.dropped_turns
    text = tok.decode(fitted.ids)
    assert text.startswith("system\nSys.\n")  # the system prompt stays
    assert "answer 11" in text and "question 0" not in text  # newest kept, oldest gone
    assert text.endswith("user\nlast question\nassistant\n")


def test_message_that_cannot_fit_is_refused(tok: ChatTokenizer) -> None:
    with pytest.raises(PromptTooLong, match="holds 64 tokens"):
        fit_prompt(tok, Conversation(), "word " * 200, seq_len=64, reserve=8)


def test_reserve_gives_way_before_the_new_message(tok: ChatTokenizer) -> None:
    conv = Conversation()
    user = "a b c d e f g h i j k l m n o p q r s t u v w x y z"
    need = len(tok.prompt_ids(conv.messages(user)))
    fitted = fit_prompt(tok, conv, user, seq_len=need + 1, reserve=10)
    assert len(fitted.ids) == need  # one token of answer still fits


# ---------------------------------------------------------------------------- sampling


def test_generation_config_is_checked() -> None:
    for bad in ({"mode": "beam"}, {"temperature": 0}, {"top_p": 0}, {"top_p": 1.5},
                {"top_k": 0}, {"max_new_tokens": 0}, {"repeat_last_n": -1}):
        with pytest.raises(ChatError):
            GenerationConfig(**bad)


def test_repetition_penalty_follows_the_sign_of_the_logit() -> None:
    logits = np.array([2.0, -2.0, 1.0, -1.0], np.float32)
    out = penalize(logits, [0, 1, 1, 2], GenerationConfig(repeat_penalty=2.0, repeat_last_n=3))
    assert out.tolist() == [2.0, -4.0, 0.5, -1.0]  # token 0 is outside the last 3
    assert penalty_window([5, 6, 7], 10) == [5, 6, 7] and penalty_window([5, 6, 7], 0) == []


def test_nucleus_cut_keeps_at_least_five_candidates() -> None:
    logits = np.array([10.0, 1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4], np.float32)
    probs, ids = candidates(logits, [], GenerationConfig(top_p=0.5, top_k=8))
    assert ids.tolist() == list(range(8))
    assert probs[:5].min() > 1e-6 and probs[5:].max() < 1e-30  # only the forced 5 survive
    assert probs.sum() == pytest.approx(1.0)
    probs, _ = candidates(logits, [], GenerationConfig(top_k=3))
    assert len(probs) == 3


def test_seeded_draws_repeat() -> None:
    probs, ids = np.full(10, 0.1), np.arange(100, 110)
    a = [draw(probs, ids, r) for r in [GenerationConfig(seed=7).rng()] for _ in range(20)]
    b = [draw(probs, ids, r) for r in [GenerationConfig(seed=7).rng()] for _ in range(20)]
    assert a == b and len(set(a)) > 1 and all(100 <= t < 110 for t in a)


# ---------------------------------------------------------------------------- planning


def test_plan_loads_largest_runtime_memory_first_and_predicts_sharing() -> None:
    plans = plan_models([STATIC, SAMPLE, DYNAMIC])
    assert [p.path for p in plans] == [DYNAMIC, STATIC, SAMPLE]  # dynamic needs most; ties stable
    assert [p.given_index for p in plans] == [2, 0, 1]
    dyn, static, sample = plans
    assert dyn.device_mem.runtime > static.device_mem.runtime == sample.device_mem.runtime
    assert dyn.shared_bytes == 0
    assert 0 < static.shared_bytes < static.device_mem.weight  # embedding + lm_head only
    # The sampling build has the static build's weights plus sample_head's constants.
    assert sample.shared_bytes == static.device_mem.weight < sample.device_mem.weight


def test_plan_of_encrypted_files(tmp_path: Path) -> None:
    key = UserKey(os.urandom(32))
    enc = tmp_path / "static.bmodel"
    encrypt_model(STATIC, key, output=enc)
    plain, sealed = plan_models([STATIC, enc], key)
    assert sealed.state == "bmcrypt" and sealed.device_mem == plain.device_mem
    assert sealed.shared_bytes == plain.device_mem.weight  # same check codes, same sizes
    with pytest.raises(WrongKey):
        plan_models([enc], UserKey(os.urandom(32)))
    with pytest.raises(NoKey, match="is encrypted"):
        plan_models([enc])
    data = bytearray(enc.read_bytes())
    data[200] ^= 1  # inside the FlatBuffer envelope
    enc.write_bytes(bytes(data))
    with pytest.raises(Tampered):
        plan_models([enc], key)


# ---------------------------------------------------------------------------- CLI usage


@pytest.mark.parametrize("args, phrase", [
    (["--prompt", "x", "--prompt-ids", "1"], "not both"),
    (["--prompt-ids", "1,x"], "integers"),
    (["--generation-mode", "beam", "--prompt", "x"], "greedy"),
    (["--strategy", "disk", "--prompt", "x"], "callback"),
])
def test_usage_errors_exit_2_before_anything_loads(args: list[str], phrase: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["chat", str(STATIC), "--tokenizer", str(TOKENIZER), *args])
    assert code == 2
    assert phrase in capsys.readouterr().err


def test_bad_tokenizer_folder_fails_before_the_runtime(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["chat", str(STATIC), "--tokenizer", str(tmp_path), "--prompt", "x"])
    err = capsys.readouterr().err
    assert code == 1 and "no tokenizer.json" in err and "hint:" in err
