"""Start-up and rekey as a user feels them (issue 17): whole commands against `python -c pass`.

Everything here is warm (the programs and the models are in the page cache), as right after a
build: what is measured is the interpreter, the imports and the command's own work. The goals
are absolute (milliseconds), so each command gets two rows: its ratio to the interpreter doing
nothing, timed in the same rounds (how much of the time is bmcrypt's), and its median against
the goal (a "ratio" ≤ 1 meets it). `rekey` also runs on a 16 MiB and a 1 GiB model in the same
rounds: a rekey rewrites key blocks only, so its time must not grow with the weights.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from env import Tools
from models import SPECS, model_path
from sections import Log, Result, Section
from timing import Command, Quiet, interleave, loadavg

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "fixtures" / "mlp_bm1684x_f16_nokernel.bmodel"  # 32 KiB, 1 net

#: (command, goal in seconds) from the issue's table.
GOALS = {"--version": 0.060, "--help": 0.120, "inspect": 0.150}
REKEY_GOAL = 0.200
REKEY_FLAT = 1.2  # 1 GiB within 1.2x of 16 MiB
RICH = ("from bmcrypt.cli.app import app; app.rich_markup_mode = 'rich'; "
        "app(['--help'], prog_name='bmcrypt')")

TITLE = "Start-up and rekey (warm)"
BASE = "python -c pass"
SHOWN = {"--version": "bmcrypt --version", "--help": "bmcrypt --help",
         "inspect": "bmcrypt inspect (32 KiB model)"}
REKEY_SMALL, REKEY_LARGE = "bmcrypt rekey, 16MiB model", "bmcrypt rekey, 1GiB model"
FORMATTER = "import typer.rich_utils (Typer's rich help)"
RICH_HELP = "bmcrypt --help in Typer's rich format (before)"


def startup(t: Tools, runs: int, log: Log, quiet: Quiet | None = None) -> Section:
    """--version, --help, inspect of a small model and rekey (16 MiB, 1 GiB), interleaved with
    `python -c pass` on the interpreter bmcrypt is installed in."""
    rekeyed = {}
    for name in ("16MiB", "1GiB"):
        rekeyed[name] = t.work / f"startup-rekey-{name}.bmodel"
        rekeyed[name].unlink(missing_ok=True)
        subprocess.run([t.bmcrypt, "encrypt", "-q", "-k", str(t.key1), "-o", str(rekeyed[name]),
                        str(model_path(SPECS[name]))], check=True)

    def rekey_argv(path: Path) -> Callable[[int], list[str]]:
        def argv(r: int) -> list[str]:
            old, new = (t.key1, t.key2) if r % 2 == 0 else (t.key2, t.key1)
            return [t.bmcrypt, "rekey", "-k", str(old), "--new-key", str(new), str(path)]
        return argv

    commands = [
        Command(BASE, [t.python, "-c", "pass"]),
        Command(SHOWN["--version"], [t.bmcrypt, "--version"]),
        Command(SHOWN["--help"], [t.bmcrypt, "--help"]),
        Command(SHOWN["inspect"], [t.bmcrypt, "inspect", str(SMALL)]),
        Command(REKEY_SMALL, rekey_argv(rekeyed["16MiB"])),
        Command(REKEY_LARGE, rekey_argv(rekeyed["1GiB"])),
        # Evidence for --help: what Typer's rich help formatter costs to import (rich.markdown
        # and rich.traceback with it), and the same help in its rich panels, as it was.
        Command(FORMATTER, [t.python, "-P", "-c", "import typer.rich_utils"]),
        Command(RICH_HELP, [t.python, "-P", "-c", RICH]),
    ]
    before = loadavg()
    interleave(commands, runs, cold=False, log=log, quiet=quiet)
    after = loadavg()
    final_key = t.key1 if runs % 2 == 0 else t.key2
    for path in rekeyed.values():  # what was measured must be right: the last key opens it
        subprocess.run([t.bmcrypt, "verify", "-q", "-k", str(final_key), str(path)], check=True)
        path.unlink()

    section = Section(TITLE, commands=commands, cold=False, runs=runs)
    section.results = results({c.name: c for c in commands}, (before, after))
    return section


def results(by_name: dict[str, Command], load: tuple[float, float]) -> list[Result]:
    """The section's rows from its timed commands (also from saved ones: `--from-json`)."""
    base, shown = by_name[BASE], {key: by_name[name] for key, name in SHOWN.items()}
    rows = []
    for key, cmd in shown.items():
        goal = f"goal {GOALS[key] * 1000:.0f} ms"
        rows += [
            Result(17, f"start-up: {cmd.name} vs its goal", cmd.name, goal, cmd.median(),
                   GOALS[key], "s", 1.0, load=load),
            Result(17, f"start-up: {cmd.name} vs the interpreter alone", cmd.name, base.name,
                   cmd.median(), base.median(), "s", None, load=load),
            # On a shared machine a command also waits for a CPU, longer the longer it runs;
            # the CPU times (user + sys) of both sides are what an idle core would take.
            Result(17, f"evidence: {cmd.name} vs the interpreter alone, CPU time (user + sys)",
                   cmd.name, base.name, cmd.median("cpu"), base.median("cpu"), "s", None,
                   load=load),
        ]
    helped, formatter, rich = shown["--help"], by_name[FORMATTER], by_name[RICH_HELP]
    small, large = by_name[REKEY_SMALL], by_name[REKEY_LARGE]
    return rows + [
        Result(17, "evidence: importing Typer's rich help formatter, in CPU time (user + sys)",
               formatter.name, helped.name, formatter.median("cpu"), helped.median("cpu"), "s",
               None, load=load),
        Result(17, "evidence: --help in Typer's rich panels (before) vs as shipped, CPU time",
               rich.name, helped.name, rich.median("cpu"), helped.median("cpu"), "s", None,
               load=load),
        Result(17, "rekey flat in model size: 1GiB vs 16MiB model", large.name, small.name,
               large.median(), small.median(), "s", REKEY_FLAT, load=load),
        Result(17, "rekey as a command vs its goal, 1GiB model", large.name,
               f"goal {REKEY_GOAL:.1f} s", large.median(), REKEY_GOAL, "s", 1.0, load=load),
        Result(17, "evidence: rekey, 1GiB model, CPU time (user + sys) vs its goal", large.name,
               f"goal {REKEY_GOAL:.1f} s", large.median("cpu"), REKEY_GOAL, "s", None,
               load=load),
    ]
