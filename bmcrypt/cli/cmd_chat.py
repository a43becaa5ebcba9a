"""`bmcrypt chat`: parse the arguments, open a ChatSession (bmcrypt.chat), answer, render.

Answers stream to stdout; load reports, prompts and per-answer statistics go to stderr, so
`bmcrypt chat … > answer.txt` keeps only the answer. `--json` prints one object per answer
instead (indented for a single answer, one line per answer in interactive mode).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, cast

import typer

from bmcrypt.cli import output as output_
from bmcrypt.cli.app import app
from bmcrypt.crypto import Secret
from bmcrypt.keys import ENV_KEY_FILE, ENV_PASSPHRASE, resolve_keys
from bmcrypt.workflow import file_state

if TYPE_CHECKING:  # the chat pipeline (numpy, tokenizers) loads only when `chat` runs
    from bmcrypt.chat import Answer, ChatError, ChatSession
    from bmcrypt.chat.sampling import GenerationMode
    from bmcrypt.loader import Strategy

_MIB = 1 << 20


@app.command("chat")
def chat_cmd(
    models: list[str] = typer.Argument(..., metavar="MODEL...",
                                       help="LLM bmodels, plain or encrypted (several: separate "
                                            "arguments or a comma-separated list)."),
    tokenizer: Path = typer.Option(..., "--tokenizer", "-t", metavar="DIR",
                                   help="The model's tokenizer folder (tokenizer.json, "
                                        "tokenizer_config.json, chat template)."),
    key: Path | None = typer.Option(None, "--key", "-k", metavar="KEYFILE",
                                    help="Key of encrypted models (default: $BMCRYPT_KEY_FILE)."),
    passphrase: bool = typer.Option(False, "--passphrase", "-p",
                                    help="Use a passphrase (prompted, or $BMCRYPT_PASSPHRASE)."),
    prompt: str | None = typer.Option(None, "--prompt", metavar="TEXT",
                                      help="Answer this once and exit (default: interactive)."),
    prompt_ids: str | None = typer.Option(None, "--prompt-ids", metavar="ID,ID,…",
                                          help="Feed these token ids as they are (no template) "
                                               "and exit; for exact reference checks."),
    system: str | None = typer.Option(None, "--system", metavar="TEXT", help="System prompt."),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", min=1, metavar="N",
                                              help="Stop after N tokens (default: at EOS or "
                                                   "the end of the sequence)."),
    mode: str = typer.Option("greedy", "--generation-mode", metavar="greedy|penalty_sample",
                             help="Most likely token, or penalty sampling."),
    temperature: float = typer.Option(1.0, "--temperature", help="penalty_sample: temperature."),
    top_p: float = typer.Option(1.0, "--top-p", help="penalty_sample: nucleus probability."),
    top_k: int = typer.Option(50, "--top-k", help="penalty_sample: candidates at most."),
    repeat_penalty: float = typer.Option(1.0, "--repeat-penalty",
                                         help="penalty_sample: repetition penalty."),
    repeat_last_n: int = typer.Option(32, "--repeat-last-n",
                                      help="penalty_sample: penalise the last N tokens."),
    seed: int | None = typer.Option(None, "--seed", help="penalty_sample: random seed."),
    model_name: str | None = typer.Option(None, "--model", metavar="NAME",
                                          help="Which loaded model answers (its file name "
                                               "without .bmodel; default: the first given)."),
    json_: bool = typer.Option(False, "--json", help="Print {prompt_ids, tokens, text, stats}."),
    runtime: Path | None = typer.Option(None, "--runtime", metavar="DIR",
                                        help="Vendor runtime directory (libbmrt.so, libbmlib.so)."),
    strategy: str = typer.Option("callback", "--strategy", metavar="callback|memory",
                                 help="How encrypted models are decrypted into the runtime."),
) -> None:
    """Chat with LLM bmodels (plain or encrypted) on the vendor runtime.

    With --prompt or --prompt-ids: one answer, then exit. Otherwise an interactive chat on stdin.

    Type /help in the chat for its commands. Latency and tokens/s of every answer go to stderr.
    """
    from bmcrypt.chat import GENERATION_MODES, ChatSession, GenerationConfig
    from bmcrypt.chat.repl import run_repl
    from bmcrypt.loader import STRATEGIES

    paths = [Path(p.strip()) for arg in models for p in arg.split(",") if p.strip()]
    if strategy not in STRATEGIES:
        raise typer.BadParameter(f"use one of {', '.join(STRATEGIES)}", param_hint="--strategy")
    if mode not in GENERATION_MODES:
        raise typer.BadParameter(f"use one of {', '.join(GENERATION_MODES)}",
                                 param_hint="--generation-mode")
    if prompt is not None and prompt_ids is not None:
        raise typer.BadParameter("give --prompt or --prompt-ids, not both",
                                 param_hint="--prompt-ids")
    ids = _parse_ids(prompt_ids) if prompt_ids is not None else None
    config = GenerationConfig(mode=cast("GenerationMode", mode), max_new_tokens=max_new_tokens,
                              temperature=temperature, top_p=top_p, top_k=top_k,
                              repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
                              seed=seed)
    keyring = _keyring(paths, key, passphrase)
    with ChatSession.open(paths, tokenizer, keyring, config=config,
                          strategy=cast("Strategy", strategy), runtime_dir=runtime,
                          system=system, model=model_name) as session:
        _report_load(session)
        if ids is not None or prompt is not None:
            stream = None if json_ else _Terminal.stream_text
            answer = (session.complete(ids, on_text=stream) if ids is not None
                      else session.ask(prompt or "", on_text=stream))
            _Terminal(json_, session).answer(answer, indent=2)
        else:
            run_repl(session, sys.stdin, _Terminal(json_, session))


def _parse_ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise typer.BadParameter("token ids are integers separated by commas",
                                 param_hint="--prompt-ids") from None
    if not ids or any(i < 0 for i in ids):
        raise typer.BadParameter("give at least one non-negative token id",
                                 param_hint="--prompt-ids")
    return ids


def _keyring(paths: list[Path], key: Path | None, passphrase: bool) -> Secret | None:
    """The key, when one is given or needed.

    --key / --passphrase are always honoured (a bad key file is an error even for plain
    models). The environment is consulted only when a model is encrypted; with no key at all,
    None: the planner then names the file that needs one.
    """
    if key is not None or passphrase:
        return resolve_keys(key, passphrase or None, prompt=getpass.getpass)
    if not any(p.is_file() and file_state(p) == "bmcrypt" for p in paths):
        return None
    if not (os.environ.get(ENV_KEY_FILE) or os.environ.get(ENV_PASSPHRASE)):
        return None
    return resolve_keys(None, None)


def _report_load(session: ChatSession) -> None:
    host = session.host
    for m in host.models:
        figures = f"{m.measured_bytes / _MIB:.2f} MiB measured, file says " \
                  f"{m.plan.device_mem.total / _MIB:.2f} MiB"
        if m.plan.shared_bytes:
            figures += f", {m.plan.shared_bytes / _MIB:.2f} MiB of weights already on the device"
        output_.note(f"loaded {m.name} ({m.loaded.strategy}): {figures}")
    method = "heap statistics" if host.meter.method == "heap" else "allocator probe"
    output_.note(f"device memory in use: {host.meter.read().used / _MIB:.2f} MiB "
                 f"(models {host.loaded_bytes / _MIB:.2f} MiB, KV caches and buffers "
                 f"{session.engine_bytes() / _MIB:.2f} MiB; {method})")


class _Terminal:
    """Renders answers for `bmcrypt chat`: text on stdout, everything else on stderr."""

    def __init__(self, json_: bool, session: ChatSession) -> None:
        self.json = json_
        self.session = session
        self.interactive_prompt = sys.stdin.isatty()

    @staticmethod
    def stream_text(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    def prompt(self) -> None:
        if self.interactive_prompt:
            output_.err.print("> ", end="", markup=False)

    def text(self, piece: str) -> None:
        if not self.json:
            self.stream_text(piece)

    def answer(self, answer: Answer, indent: int | None = None) -> None:
        if self.json:
            obj = answer.to_json()
            obj["stats"]["device_memory"] = {**self.session.host.memory_json(),
                                             "engines": self.session.engine_bytes()}
            sys.stdout.write(json.dumps(obj, indent=indent) + "\n")
            sys.stdout.flush()
        else:
            self.stream_text("\n")
        output_.note(_stats_line(answer))

    def note(self, message: str) -> None:
        output_.note(message)

    def error(self, exc: ChatError) -> None:
        output_.error(exc)


def _stats_line(answer: Answer) -> str:
    s = answer.stats
    rate = f"{s.tokens_per_s:.2f} tokens/s" if s.tokens_per_s is not None else "- tokens/s"
    dropped = f", dropped {answer.dropped_turns} old turn(s)" if answer.dropped_turns else ""
    return (f"[{answer.model}: {s.prompt_tokens} prompt + {s.new_tokens} new tokens, "
            f"first token {s.first_token_s * 1000:.0f} ms, {rate}, stop: {s.stop}{dropped}]")
