"""`bmcrypt chat`: parse the arguments, open a ChatSession (bmcrypt.chat), answer, render.

Answers stream to stdout; load reports, prompts and per-answer statistics go to stderr, so
`bmcrypt chat … > answer.txt` keeps only the answer. `--json` prints one object per answer
instead (indented for a single answer, one line per answer in interactive mode).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from bmcrypt.cli import jsondoc, options
from bmcrypt.cli import mode as mode_
from bmcrypt.cli import output as output_

if TYPE_CHECKING:  # the chat pipeline (numpy, tokenizers) loads only when `chat` runs
    from bmcrypt.chat import Answer, ChatError, ChatSession
    from bmcrypt.chat.sampling import GenerationMode
    from bmcrypt.loader import Strategy

_MIB = 1 << 20


def chat_cmd(
    models: Annotated[list[str], typer.Argument(
        metavar="MODEL...", help="LLM bmodels, plain or encrypted (several: separate arguments "
                                 "or a comma-separated list).")],
    tokenizer: Annotated[Path, typer.Option(
        "--tokenizer", "-t", metavar="DIR",
        help="The model's tokenizer folder (tokenizer.json, tokenizer_config.json, chat "
             "template).")],
    key: options.KeyRing = None,
    passphrase: options.UsePassphrase = False,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", metavar="TEXT", help="Answer this once and exit (default: interactive).")
    ] = None,
    prompt_ids: Annotated[str | None, typer.Option(
        "--prompt-ids", metavar="ID,ID,…",
        help="Feed these token ids as they are (no template) and exit; for exact reference "
             "checks.")] = None,
    system: Annotated[str | None, typer.Option(
        "--system", metavar="TEXT", help="System prompt.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        "--max-new-tokens", min=1, metavar="N",
        help="Stop after N tokens (default: at EOS or the end of the sequence).")] = None,
    mode: Annotated[str, typer.Option(
        "--generation-mode", metavar="greedy|penalty_sample",
        help="Most likely token, or penalty sampling.")] = "greedy",
    temperature: Annotated[float, typer.Option(
        "--temperature", help="penalty_sample: temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(
        "--top-p", help="penalty_sample: nucleus probability.")] = 1.0,
    top_k: Annotated[int, typer.Option(
        "--top-k", help="penalty_sample: candidates at most.")] = 50,
    repeat_penalty: Annotated[float, typer.Option(
        "--repeat-penalty", help="penalty_sample: repetition penalty.")] = 1.0,
    repeat_last_n: Annotated[int, typer.Option(
        "--repeat-last-n", help="penalty_sample: penalise the last N tokens.")] = 32,
    seed: Annotated[int | None, typer.Option(
        "--seed", help="penalty_sample: random seed.")] = None,
    model_name: Annotated[str | None, typer.Option(
        "--model", metavar="NAME", help="Which loaded model answers (its file name without "
                                        ".bmodel; default: the first given).")] = None,
    json_: Annotated[bool, typer.Option(
        "--json", callback=options.set_json_mode,
        help="Print each answer as one JSON document: {schema, command, ok, prompt_ids, tokens, "
             "text, stats}.")] = False,
    quiet: options.Quiet = False,
    verbose: options.Verbose = False,
    runtime: options.RuntimeDir = None,
    strategy: options.Strategy = "callback",
) -> None:
    """Chat with LLM bmodels (plain or encrypted) on the vendor runtime.

    With --prompt or --prompt-ids: one answer, then exit. Otherwise an interactive chat on stdin.

    Type /help in the chat for its commands. Latency and tokens/s of every answer go to stderr.
    """
    from bmcrypt.chat import GENERATION_MODES, ChatSession, GenerationConfig
    from bmcrypt.chat.repl import run_repl
    from bmcrypt.loader import STRATEGIES

    paths = [Path(p.strip()) for arg in models for p in arg.split(",") if p.strip()]
    options.choice(strategy, STRATEGIES, "--strategy")
    options.choice(mode, GENERATION_MODES, "--generation-mode")
    if prompt is not None and prompt_ids is not None:
        raise typer.BadParameter("give --prompt or --prompt-ids, not both",
                                 param_hint="--prompt-ids")
    ids = _parse_ids(prompt_ids) if prompt_ids is not None else None
    config = GenerationConfig(mode=cast("GenerationMode", mode), max_new_tokens=max_new_tokens,
                              temperature=temperature, top_p=top_p, top_k=top_k,
                              repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
                              seed=seed)
    keyring = options.secret_if_needed(paths, key, passphrase)
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
            obj = {"schema": jsondoc.SCHEMA, "command": "chat", "ok": True, **answer.to_json()}
            obj["stats"]["device_memory"] = {**self.session.host.memory_json(),
                                             "engines": self.session.engine_bytes()}
            sys.stdout.write(json.dumps(obj, indent=indent) + "\n")
            sys.stdout.flush()
            mode_.current.document_printed = True
        else:
            self.stream_text("\n")
        output_.note(_stats_line(answer))

    def note(self, message: str) -> None:
        output_.note(message)

    def error(self, exc: ChatError) -> None:
        output_.error(exc)
        if self.json:  # the turn failed, the chat goes on: one document per turn
            doc = {"schema": jsondoc.SCHEMA, "command": "chat", "ok": False,
                   "error": jsondoc.error_json(exc)}
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()


def _stats_line(answer: Answer) -> str:
    s = answer.stats
    rate = f"{s.tokens_per_s:.2f} tokens/s" if s.tokens_per_s is not None else "- tokens/s"
    dropped = f", dropped {answer.dropped_turns} old turn(s)" if answer.dropped_turns else ""
    return (f"[{answer.model}: {s.prompt_tokens} prompt + {s.new_tokens} new tokens, "
            f"first token {s.first_token_s * 1000:.0f} ms, {rate}, stop: {s.stop}{dropped}]")
