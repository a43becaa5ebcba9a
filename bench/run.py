"""bmcrypt's benchmarks against same-run baselines; writes docs/benchmarks.md and its plot.

    make bench                                   # everything (~15 min on 2 cores)
    .venv/bin/python bench/run.py --quick        # 256 MiB only, fewer runs
    .venv/bin/python bench/run.py --only files --sizes 1GiB

Run it with the interpreter bmcrypt is installed in: it times that venv's `bmcrypt` command.
As root the page cache is dropped before every timed command (the data is cold for every side,
the programs are warmed again); otherwise, or with --warm, everything stays warm.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

import encrypt_warm
import env
import models
import report
import sections
import startup
import streaming
from sections import Result, Section
from timing import Command, Quiet, Sample, can_drop_caches

ROOT = models.ROOT
SECTIONS = ("startup", "warm", "files", "throughput", "load", "plugin", "share", "tokenizer")


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256MiB,1GiB", help="models for the file section")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"sections: {','.join(SECTIONS)}")
    p.add_argument("--runs", type=int, default=5, help="runs per command, 256 MiB model")
    p.add_argument("--runs-large", type=int, default=3, help="runs per command, 1 GiB model")
    p.add_argument("--runs-warm", type=int, default=9,
                   help="runs per command, encrypting the 1 GiB model just built (warm)")
    p.add_argument("--runs-plugin", type=int, default=9,
                   help="runs per command, the 1 GiB load through the plugin (within 5 %%)")
    p.add_argument("--runs-throughput", type=int, default=3)
    p.add_argument("--runs-startup", type=int, default=15, help="runs per start-up command")
    p.add_argument("--rounds-tokenizer", type=int, default=1,
                   help="streamed answers starting at every token of the text, this many times")
    p.add_argument("--quick", action="store_true", help="256 MiB only, 3 runs (not for docs)")
    p.add_argument("--warm", action="store_true", help="never drop the page cache")
    p.add_argument("--busy", type=float, default=0.2,
                   help="wait before each command until others use at most this share of the "
                        "CPUs (0..1; 1 = never wait)")
    p.add_argument("--patience", type=float, default=30, help="longest wait, in seconds")
    p.add_argument("--work", type=Path, default=Path("/tmp/bmcrypt-bench"),
                   help="scratch directory (outputs, keys); needs ~8 GB free")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--from-json", type=Path, help="only rewrite the docs from saved results")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.runs, args.runs_large, args.runs_throughput = "256MiB", 3, 3, 2
        args.runs_startup = 7
        args.runs_warm = args.runs_plugin = 3
    return args


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


Checkpoint = Callable[[list[Section], dict[str, str]], None]


def measure(args: argparse.Namespace,
            checkpoint: Checkpoint = lambda *_: None) -> tuple[list[Section], dict[str, str]]:
    """Run the chosen sections; `checkpoint` gets what is done after each one (a failing
    section then costs only itself: the saved results still make the docs)."""
    only = set(args.only.split(","))
    cold = not args.warm and can_drop_caches()
    if not args.warm and not cold:
        _log("bench: cannot drop the page cache (not root): everything stays warm")
    tools = env.prepare(args.work)
    machine = env.machine(args.work)
    specs = [models.SPECS[s] for s in args.sizes.split(",")]
    if only & {"warm", "files", "load", "plugin"}:
        for spec in specs:
            models.model_path(spec)  # build before anything is timed
    quiet = Quiet(args.busy, args.patience) if args.busy < 1 else None
    done = _Done(lambda sections: checkpoint(sections, machine))
    if "startup" in only:
        _log(f"bench: start-up and rekey, {args.runs_startup} runs")
        done.append(startup.startup(tools, args.runs_startup, _log, quiet))
    if "warm" in only:
        spec = max(specs, key=lambda s: s.weight_bytes)
        _log(f"bench: encrypting the {spec.name} model, warm cache, {args.runs_warm} runs")
        done.append(encrypt_warm.encrypt_warm(tools, spec, args.runs_warm, _log, quiet))
    if "files" in only:
        for spec in specs:
            runs = args.runs_large if spec.weight_bytes >= 1 << 30 else args.runs
            _log(f"bench: encrypting the {spec.name} model, {runs} runs")
            done.append(sections.files(tools, spec, runs, cold, _log, quiet))
    if "throughput" in only:
        _log(f"bench: decrypt throughput, {args.runs_throughput} runs")
        done.append(sections.throughput(tools, args.runs_throughput, _log, quiet))
    if "load" in only:
        _log(f"bench: loading the 256MiB model, {args.runs} runs")
        done.append(sections.loads(tools, models.SPECS["256MiB"], args.runs, cold, _log, quiet))
    if "plugin" in only:
        spec = models.SPECS["1GiB"]
        _log(f"bench: loading the {spec.name} model through the plugin, {args.runs_plugin} runs")
        done.append(sections.loads(tools, spec, args.runs_plugin, cold, _log, quiet,
                                   plugin_only=True))
    if "share" in only:
        done.append(sections.share_cache(tools, args.runs, _log))
    if "tokenizer" in only:
        done.append(streaming.tokenizer(tools, args.rounds_tokenizer, _log, quiet))
    return done, machine


class _Done(list[Section]):
    """The sections measured so far; each one appended is saved at once."""

    def __init__(self, save: Callable[[list[Section]], None]) -> None:
        super().__init__()
        self._save = save

    def append(self, section: Section) -> None:
        super().append(section)
        self._save(list(self))


# ---------------------------------------------------------------- saved results


def _to_json(done: list[Section], machine: dict[str, str], meta: dict[str, str]) -> str:
    def command(c: Command) -> dict[str, object]:
        return {"name": c.name, "samples": [dataclasses.asdict(s) for s in c.samples],
                "rates": getattr(c, "rates", None)}

    return json.dumps({
        "meta": meta, "machine": machine,
        "sections": [{"title": s.title, "cold": s.cold, "runs": s.runs,
                      "results": [dataclasses.asdict(r) for r in s.results],
                      "commands": [command(c) for c in s.commands]} for s in done],
    }, indent=1)


def _from_json(text: str) -> tuple[list[Section], dict[str, str], dict[str, str]]:
    data = json.loads(text)
    done = []
    for s in data["sections"]:
        cmds = []
        for c in s["commands"]:
            cmd = Command(c["name"], [])
            cmd.samples = [Sample(**x) for x in c["samples"]]
            if c["rates"]:
                cmd.rates = c["rates"]  # type: ignore[attr-defined]
            cmds.append(cmd)
        results = [Result(**{**r, "load": tuple(r["load"])}) for r in s["results"]]
        done.append(Section(s["title"], results, cmds, s["cold"], s["runs"]))
    return done, data["machine"], data["meta"]


def main(argv: list[str]) -> int:
    args = _parse(argv)
    try:
        import matplotlib  # noqa: F401 - checked before a long run, used by report.plot
    except ImportError:
        raise SystemExit(f"bench: matplotlib is missing: {sys.executable} -m pip install "
                         "matplotlib") from None
    if args.from_json:
        done, machine, meta = _from_json(args.from_json.read_text())
    else:
        started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        python = Path(sys.executable)
        shown = ".venv/bin/python" if python.parent.parent.name == ".venv" else str(python)
        meta = {"started": started,
                "command": f"{shown} bench/run.py {shlex.join(argv)}".strip() +
                           ("    # = make bench" if not argv else "")}
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        saved = models.cache_dir() / f"results-{stamp}.json"  # --from-json rewrites the docs
        saved.parent.mkdir(parents=True, exist_ok=True)
        done, machine = measure(
            args, lambda sections, machine: saved.write_text(_to_json(sections, machine, meta)))
        _log(f"bench: results saved to {saved}")
    png = args.out.with_suffix(".png")
    report.plot(done, png)
    notes_file = ROOT / "bench" / "notes.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    args.out.write_text(report.markdown(done, machine, meta["command"], meta["started"],
                                        png.name, notes))
    print(report.results_table(done))
    _log(f"bench: wrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
