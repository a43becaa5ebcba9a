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
    from bmcrypt.chat.host import Resident
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
    licence: options.Licences = None,
    prompt: Annotated[list[str] | None, typer.Option(
        "--prompt", metavar="TEXT",
        help="Answer this and exit (default: interactive); repeat for several questions.")
    ] = None,
    prompt_ids: Annotated[list[str] | None, typer.Option(
        "--prompt-ids", metavar="ID,ID,…",
        help="Feed these token ids as they are (no template) and exit; for exact reference "
             "checks. Repeat for several questions.")] = None,
    share_prefix: Annotated[str | None, typer.Option(
        "--share-prefix", metavar="TEXT|@FILE",
        help="Share-cache builds: prefill this text (or FILE's) once; every --prompt is then "
             "a question against it.")] = None,
    share_prefix_ids: Annotated[str | None, typer.Option(
        "--share-prefix-ids", metavar="ID,ID,…",
        help="The shared prefix as token ids.")] = None,
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
    resident: Annotated[str, typer.Option(
        "--resident", metavar="all|active",
        help="Keep every model loaded, or only the answering one: a switch (--model, /model) "
             "then frees the previous model's runtime memory and keeps equal weights on the "
             "device (LLM-TPU's memory_prealloc).")] = "all",
    runtime: options.RuntimeDir = None,
    strategy: options.Strategy = "callback",
) -> None:
    """Chat with LLM bmodels (plain or encrypted) on the vendor runtime.

    With --prompt or --prompt-ids: the answers, then exit. Otherwise an interactive chat on
    stdin. With --share-prefix (share-cache builds) the prefix is prefilled once and each
    question prefills only itself.

    Type /help in the chat for its commands. Latency and tokens/s of every answer go to stderr.
    """
    from bmcrypt.chat import GENERATION_MODES, ChatSession, GenerationConfig
    from bmcrypt.chat.repl import read_prefix, run_repl, shared_note
    from bmcrypt.loader import STRATEGIES

    paths = [Path(p.strip()) for arg in models for p in arg.split(",") if p.strip()]
    options.choice(strategy, STRATEGIES, "--strategy")
    options.choice(mode, GENERATION_MODES, "--generation-mode")
    options.choice(resident, ("all", "active"), "--resident")
    if prompt and prompt_ids:
        raise typer.BadParameter("give --prompt or --prompt-ids, not both",
                                 param_hint="--prompt-ids")
    if share_prefix is not None and share_prefix_ids is not None:
        raise typer.BadParameter("give --share-prefix or --share-prefix-ids, not both",
                                 param_hint="--share-prefix-ids")
    questions: list[str | list[int]] = ([_parse_ids(p, "--prompt-ids") for p in prompt_ids]
                                        if prompt_ids else list(prompt or []))
    prefix: str | list[int] | None = (
        _parse_ids(share_prefix_ids, "--share-prefix-ids") if share_prefix_ids is not None
        else read_prefix(share_prefix) if share_prefix is not None else None)
    config = GenerationConfig(mode=cast("GenerationMode", mode), max_new_tokens=max_new_tokens,
                              temperature=temperature, top_p=top_p, top_k=top_k,
                              repeat_penalty=repeat_penalty, repeat_last_n=repeat_last_n,
                              seed=seed)
    keyring = options.licensed(options.secret_if_needed(paths, key, passphrase), licence,
                               on_device=True)
    with ChatSession.open(paths, tokenizer, keyring, config=config,
                          strategy=cast("Strategy", strategy), runtime_dir=runtime,
                          system=system, model=model_name,
                          resident=cast("Resident", resident)) as session:
        _report_load(session)
        if prefix is not None:
            shared = session.share(prefix)
            output_.note(shared_note(shared.ids, shared.prefill_s))
        terminal = _Terminal(json_, session)
        if questions:
            stream = None if json_ else _Terminal.stream_text
            for question in questions:
                answer = (session.ask(question, on_text=stream) if isinstance(question, str)
                          else session.complete(question, on_text=stream))
                terminal.answer(answer, indent=2 if len(questions) == 1 else None)
        else:
            run_repl(session, sys.stdin, terminal)


def _parse_ids(text: str, flag: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise typer.BadParameter("token ids are integers separated by commas",
                                 param_hint=flag) from None
    if not ids or any(i < 0 for i in ids):
        raise typer.BadParameter("give at least one non-negative token id", param_hint=flag)
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
    prompt = f"{s.prompt_tokens} prompt"
    if answer.shared_prefix_tokens:  # the prefix's prefill was reported once, not here
        prompt = f"{s.prompt_tokens} question (after {answer.shared_prefix_tokens} shared)"
    return (f"[{answer.model}: {prompt} + {s.new_tokens} new tokens, "
            f"first token {s.first_token_s * 1000:.0f} ms, {rate}, stop: {s.stop}{dropped}]")
