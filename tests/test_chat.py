"""bmcrypt.chat and `bmcrypt chat` against the real vendor runtime on its CPU simulator.

Order matters for speed, and pytest keeps file order:

1. the CLI in child processes, first: once this process has loaded a model, the simulator's
   threads keep spinning until it exits and would slow every child down;
2. in-process sessions, one ``ModelHost`` at a time (two runtimes in one process corrupt each
   other). The plain builds share one host: that also exercises several models on one device
   and the runtime's weight sharing. Each encrypted file gets a host of its own: loaded next
   to a plain copy, its weights would be shared with the plain ones instead of decrypted, and
   the test would prove nothing.

The reference: prompt ids [1, 17, 42, 99, 256, 3] -> 16 greedy tokens, the same for all three
builds (tests/fixtures/qwen2_tiny_expected.json).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from clitools import assert_clean_error, json_document

from bmcrypt.chat import (
    ChatError,
    ChatSession,
    ChatTokenizer,
    GenerationConfig,
    UnsupportedGeneration,
    generate,
)
from bmcrypt.chat.heads import TokenPicker
from bmcrypt.chat.sampling import candidates
from bmcrypt.crypto import Secret
from bmcrypt.inspect import KeyChoice, inspect_file
from bmcrypt.keys import generate_key_file
from bmcrypt.loader import Strategy
from bmcrypt.workflow import encrypt_model

pytestmark = pytest.mark.runtime

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
TOKENIZER = FIX / "tiny-qwen2-tokenizer"
BUILDS = {
    "static": FIX / "qwen2_tiny_bf16_seq64_nokernel.bmodel",
    "dynamic": FIX / "qwen2_tiny_bf16_seq64_dynamic_nokernel.bmodel",
    "sample": FIX / "qwen2_tiny_sample_bf16_seq64_nokernel.bmodel",
}
REFERENCE = json.loads((FIX / "qwen2_tiny_expected.json").read_text())
PROMPT: list[int] = REFERENCE["prompt_ids"]
EXPECTED: list[int] = REFERENCE["greedy_tokens"]
GREEDY = GenerationConfig(max_new_tokens=len(EXPECTED))
SAMPLED = GenerationConfig(mode="penalty_sample", max_new_tokens=6, temperature=0.9, top_p=0.8,
                           repeat_penalty=1.2, repeat_last_n=16, seed=1234)


# ---------------------------------------------------------------------------- fixtures


class Encrypted:
    """Encrypted copies of the three builds under one key file."""

    def __init__(self, root: Path) -> None:
        self.key_file = root / "chat.key"
        self.key: Secret = generate_key_file(self.key_file)
        self.files = {name: root / f"{name}.bmodel" for name in BUILDS}
        for name, src in BUILDS.items():
            encrypt_model(src, self.key, output=self.files[name])

    def tampered_weights(self, root: Path) -> Path:
        """The static build with one bit flipped inside an encrypted weight region."""
        src = self.files["static"]
        report = inspect_file(src, KeyChoice(lambda: self.key, explicit=True))
        region = next(p for p in report.layout if p.kind == "coeff_envelope")
        data = bytearray(src.read_bytes())
        data[region.offset + region.size // 2] ^= 0x01
        out = root / "tampered.bmodel"
        out.write_bytes(bytes(data))
        return out


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> Encrypted:
    return Encrypted(tmp_path_factory.mktemp("chat"))


class Sessions:
    """One open ChatSession at a time, reopened only when a test needs other models."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self._key: tuple[object, ...] | None = None
        self._session: ChatSession | None = None

    def get(self, paths: list[Path], keyring: Secret | None = None,
            strategy: Strategy = "callback") -> ChatSession:
        key = (tuple(paths), strategy, id(keyring))
        if self._key != key or self._session is None:
            self.close()
            self._session = ChatSession.open(paths, TOKENIZER, keyring, strategy=strategy,
                                             runtime_dir=self.runtime_dir)
            self._key = key
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
        self._session, self._key = None, None


@pytest.fixture(scope="module")
def sessions(vendor_dir: Path) -> Iterator[Sessions]:
    holder = Sessions(vendor_dir)
    yield holder
    holder.close()


@pytest.fixture
def plain(sessions: Sessions) -> ChatSession:
    """All three plain builds on one device; the static build answers unless told otherwise."""
    session = sessions.get(list(BUILDS.values()))
    session.use(BUILDS["static"].stem)
    session.reset()
    return session


@pytest.fixture(scope="module")
def tokenizer() -> ChatTokenizer:
    return ChatTokenizer(TOKENIZER)


def chat_cli(*args: object, stdin: str = "", vendor_dir: Path) -> subprocess.CompletedProcess[str]:
    """`bmcrypt chat ARGS` in a child process, on the test's runtime."""
    return subprocess.run(
        [sys.executable, "-P", "-m", "bmcrypt.cli.main", "chat", *map(str, args),
         "--tokenizer", str(TOKENIZER), "--runtime", str(vendor_dir)],
        input=stdin, capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={k: v for k, v in os.environ.items()
             if k not in ("BMCRYPT_KEY_FILE", "BMCRYPT_PASSPHRASE")})


# ---------------------------------------------------------------------------- CLI (children)


def test_cli_json_answer_of_an_encrypted_model(encrypted: Encrypted, vendor_dir: Path) -> None:
    ids = ",".join(map(str, PROMPT))
    run = chat_cli(encrypted.files["static"], "--key", encrypted.key_file, "--prompt-ids", ids,
                   "--max-new-tokens", 4, "--json", vendor_dir=vendor_dir)
    assert run.returncode == 0, run.stderr
    out = json_document(run, "chat")  # one document, nothing else on stdout
    assert set(out) == {"schema", "command", "ok", "prompt_ids", "tokens", "text", "stats"}
    assert out["prompt_ids"] == PROMPT and out["tokens"] == EXPECTED[:4]
    stats = out["stats"]
    assert stats["new_tokens"] == 4 and stats["stop"] == "max_new_tokens"
    assert stats["first_token_s"] > 0 and stats["tokens_per_s"] > 0
    (model,) = stats["device_memory"]["models"]
    assert model["state"] == "bmcrypt" and model["strategy"] == "callback"
    assert "loaded static (callback)" in run.stderr


def test_cli_prompt_goes_through_the_chat_template(vendor_dir: Path,
                                                   tokenizer: ChatTokenizer) -> None:
    run = chat_cli(BUILDS["static"], "--prompt", "hi", "--system", "Be brief.",
                   "--max-new-tokens", 2, "--json", vendor_dir=vendor_dir)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["prompt_ids"] == tokenizer.prompt_ids(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert len(out["tokens"]) <= 2 and out["text"] == tokenizer.decode(
        [t for t in out["tokens"] if t not in tokenizer.eos_ids])


def test_cli_interactive_chat_on_stdin(vendor_dir: Path) -> None:
    too_long = "word " * 100
    lines = f"hello\n/models\n\n{too_long}\nhow are you\n/exit\nnever answered\n"
    run = chat_cli(BUILDS["static"], "--max-new-tokens", 2, stdin=lines, vendor_dir=vendor_dir)
    assert run.returncode == 0, run.stderr
    stats = [line for line in run.stderr.splitlines() if "first token" in line]
    assert len(stats) == 2 and all("tokens/s" in s and "stop:" in s for s in stats)
    assert run.stdout.endswith("\n")  # each streamed answer ends its line
    assert "* qwen2_tiny_bf16_seq64_nokernel (seq 64, greedy)" in run.stderr  # /models
    assert "device memory in use" in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("bmcrypt: error:")]
    assert len(errors) == 1 and "holds 64 tokens" in errors[0]  # reported, and the chat went on


def test_cli_interactive_json_is_one_valid_document_per_turn(vendor_dir: Path) -> None:
    lines = f"hello\n{'word ' * 100}\n/exit\n"
    run = chat_cli(BUILDS["static"], "--max-new-tokens", 2, "--json", stdin=lines,
                   vendor_dir=vendor_dir)
    assert run.returncode == 0, run.stderr
    turns = run.stdout.splitlines()
    assert len(turns) == 2  # JSON Lines: the answer, then the turn that was too long
    docs = [json_document(subprocess.CompletedProcess([], 0 if i == 0 else 1, t, ""), "chat")
            for i, t in enumerate(turns)]
    assert docs[0]["ok"] and len(docs[0]["tokens"]) <= 2
    assert docs[1]["error"]["kind"] == "prompt_too_long"


@pytest.mark.parametrize("case", ["wrong key", "no key", "tampered/callback", "tampered/memory",
                                  "top-1 build sampling"])
def test_cli_refuses_cleanly(case: str, encrypted: Encrypted, vendor_dir: Path,
                             tmp_path: Path) -> None:
    static = encrypted.files["static"]
    args: list[object]
    if case == "wrong key":
        generate_key_file(tmp_path / "other.key")
        args, code, phrase = [static, "--key", tmp_path / "other.key"], 4, "wrong key"
    elif case == "no key":
        args, code, phrase = [static], 7, "a key is needed"
    elif case.startswith("tampered"):
        bad = encrypted.tampered_weights(tmp_path)
        args = [bad, "--key", encrypted.key_file, "--strategy", case.split("/")[1]]
        code, phrase = 5, "weights"
    else:
        args = [BUILDS["static"], "--generation-mode", "penalty_sample"]
        code, phrase = 1, "penalty_sample is impossible"
    run = chat_cli(*args, "--prompt", "hi", vendor_dir=vendor_dir)
    assert_clean_error(run, code, phrase)
    assert run.stdout == ""  # nothing was generated


# ---------------------------------------------------------------------------- plain builds


@pytest.mark.parametrize("build, picked_by", [("static", "lm_head"), ("dynamic", "lm_head"),
                                              ("sample", "greedy_head")])
def test_plain_builds_reproduce_the_reference(plain: ChatSession, build: str,
                                              picked_by: str) -> None:
    plain.use(BUILDS[build].stem)
    answer = plain.complete(PROMPT, config=GREEDY)
    assert answer.tokens == EXPECTED
    assert answer.stats.picked_by == picked_by and answer.stats.stop == "max_new_tokens"


def test_models_load_largest_first_and_share_weights(plain: ChatSession) -> None:
    host = plain.host
    assert [m.name for m in host.models] == [BUILDS[b].stem for b in ("dynamic", "static",
                                                                       "sample")]
    dynamic, static, sample = host.models
    # The sampling build holds the static build's weights plus 12 KiB: the runtime reused
    # them, so loading it took less device memory than its weights alone.
    assert sample.plan.shared_bytes == static.plan.device_mem.weight
    assert 0 < sample.measured_bytes < sample.plan.device_mem.weight
    assert static.measured_bytes < dynamic.measured_bytes
    report = host.memory_json()
    assert report["loaded"] == sum(m.measured_bytes for m in host.models)
    assert report["in_use"] >= report["loaded"] and report["method"] == "probe"


def test_generation_stops_at_eos(plain: ChatSession, tokenizer: ChatTokenizer) -> None:
    # The reference continuation's second token, declared EOS, must end the answer there.
    result = generate(plain.engine, PROMPT, GREEDY, eos_ids={EXPECTED[1]})
    assert result.tokens == EXPECTED[:2] and result.stats.stop == "eos"
    saved = plain.tokenizer.eos_ids
    plain.tokenizer.eos_ids = frozenset({EXPECTED[1]})
    try:
        answer = plain.complete(PROMPT, config=GREEDY)
    finally:
        plain.tokenizer.eos_ids = saved
    assert answer.tokens == EXPECTED[:2] and answer.text == tokenizer.decode(EXPECTED[:1])


def test_top1_build_refuses_sampling_before_generating(plain: ChatSession) -> None:
    with pytest.raises(UnsupportedGeneration, match="penalty_sample is impossible"):
        plain.complete(PROMPT, config=SAMPLED)
    with pytest.raises(UnsupportedGeneration):
        ChatSession(plain.host, plain.tokenizer, SAMPLED)  # the static build answers first
    other = ChatSession(plain.host, plain.tokenizer, SAMPLED, model=BUILDS["sample"].stem)
    assert other.active.name == BUILDS["sample"].stem
    other.close()  # frees its engine's buffers; the host is not its own
    with pytest.raises(ChatError, match="no model named 'nope'"):
        plain.use("nope")


def test_seeded_sampling_repeats(plain: ChatSession, sampled_reference: list[int]) -> None:
    plain.use(BUILDS["sample"].stem)
    again = plain.complete(PROMPT, config=SAMPLED)
    assert again.tokens == sampled_reference and again.stats.picked_by == "sample_head"
    assert len(sampled_reference) == SAMPLED.max_new_tokens


@pytest.fixture(scope="module")
def sampled_reference(sessions: Sessions) -> list[int]:
    session = sessions.get(list(BUILDS.values()))
    session.use(BUILDS["sample"].stem)
    return session.complete(PROMPT, config=SAMPLED).tokens


def test_host_sampling_matches_the_sample_head(plain: ChatSession) -> None:
    plain.use(BUILDS["sample"].stem)
    engine = plain.engine
    engine.prefill(PROMPT)
    picker = TokenPicker(engine, SAMPLED)
    probs, ids = picker.candidates(PROMPT)  # on the device
    host_probs, host_ids = candidates(picker.logits(), PROMPT, SAMPLED)
    assert ids.tolist() == host_ids.tolist()[:len(ids)]
    np.testing.assert_allclose(probs, host_probs[:len(probs)], atol=2e-3)


def test_long_conversation_stays_within_the_sequence(plain: ChatSession,
                                                     tokenizer: ChatTokenizer) -> None:
    plain.conversation.system = "Be brief."
    system = tokenizer.encode("<|im_start|>system\nBe brief.<|im_end|>\n")
    config = GenerationConfig(max_new_tokens=2)
    try:
        answers = [plain.ask(f"Tell me about thing number {i}.", config=config) for i in range(3)]
    finally:
        plain.conversation.system = None
    seq = plain.active.layout.seq_len
    for a in answers:
        assert len(a.prompt_ids) + len(a.tokens) <= seq
        assert a.prompt_ids[:len(system)] == system  # the system prompt is always kept
    assert sum(a.dropped_turns for a in answers) > 0
    assert len(plain.conversation.turns) < 3


# ---------------------------------------------------------------------------- encrypted builds


@pytest.mark.parametrize("build, strategy, count", [
    ("static", "callback", 16), ("static", "memory", 16),
    # The other builds share their nets' code with the plain runs above, and bmrt_trace proves
    # their decrypted weights byte-exact; half the reference keeps the suite within budget.
    ("dynamic", "callback", 8), ("sample", "callback", 8)])
def test_encrypted_builds_reproduce_the_reference(sessions: Sessions, encrypted: Encrypted,
                                                  build: str, strategy: Strategy,
                                                  count: int) -> None:
    session = sessions.get([encrypted.files[build]], encrypted.key, strategy)
    (model,) = session.host.models
    assert model.loaded.strategy == strategy and model.plan.state == "bmcrypt"
    assert session.host.runtime.trace() == 0  # the decrypted weights on the device are exact
    answer = session.complete(PROMPT, config=GenerationConfig(max_new_tokens=count))
    assert answer.tokens == EXPECTED[:count]


def test_encrypted_sampling_matches_plain(sessions: Sessions, encrypted: Encrypted,
                                          sampled_reference: list[int]) -> None:
    session = sessions.get([encrypted.files["sample"]], encrypted.key)
    assert session.complete(PROMPT, config=SAMPLED).tokens == sampled_reference
