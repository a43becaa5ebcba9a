"""The measured comparisons, one function per section of docs/benchmarks.md.

Each returns `Result`s (a ratio against its goal, both sides measured in the same interleaved
run) and the `Command`s it timed (for the detail table and the plot).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from env import Tools
from models import MiB, ModelSpec, model_path
from timing import Command, Quiet, interleave, loadavg, run_timed

BENCH = Path(__file__).resolve().parent
Log = Callable[[str], None]


@dataclass
class Result:
    goal: int  # the goal's number in the issue (1-6)
    what: str
    ours: str
    base: str
    ours_value: float
    base_value: float
    unit: str  # "s", "GB/s", "MiB"
    limit: float | None  # None: reported, no goal
    higher_is_better: bool = False
    note: str = ""
    load: tuple[float, float] = (0.0, 0.0)  # 1-minute load average before and after

    @property
    def ratio(self) -> float:
        return self.ours_value / self.base_value if self.base_value else float("nan")

    @property
    def goal_text(self) -> str:
        if self.limit is None:
            return "—"
        return f"≥ {self.limit:g}" if self.higher_is_better else f"≤ {self.limit:g}"

    @property
    def met(self) -> bool | None:
        if self.limit is None:
            return None
        return self.ratio >= self.limit if self.higher_is_better else self.ratio <= self.limit


@dataclass
class Section:
    title: str
    results: list[Result] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    cold: bool = False
    runs: int = 0


def _rm(*paths: Path) -> Callable[[int], None]:
    def setup(_round: int) -> None:
        for p in paths:
            p.unlink(missing_ok=True)
    return setup


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def _nets(spec: ModelSpec) -> str:
    return ",".join(f"block_{i}" for i in range(spec.nets))


def _check(argv: list[str]) -> None:
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


# ---------------------------------------------------------------- 1, 2, 5, 6: encrypting files


def files(t: Tools, spec: ModelSpec, runs: int, cold: bool, log: Log,
          quiet: Quiet | None = None) -> Section:
    """encrypt -o, in place, rekey, and the two baselines, against cp + sync of the model."""
    model = model_path(spec)
    w = t.work
    cp_out, enc_out, vendor_out, pyc_out = (w / f"{n}.out" for n in ("cp", "enc", "vendor", "pyc"))
    inplace, rekeyed = w / "inplace.bmodel", w / "rekey.bmodel"
    inplace_bak = w / "inplace.bmodel.bak"
    _check([t.bmcrypt, "encrypt", "-k", str(t.key1), "-o", str(rekeyed), str(model)])
    bmcrypt_warm = [t.bmcrypt, "--version"]

    def fresh_inplace(_round: int) -> None:
        for p in (inplace, inplace_bak, w / "inplace.bmodel.bak.sha256"):
            p.unlink(missing_ok=True)
        subprocess.run(["cp", str(model), str(inplace)], check=True)

    def rekey_argv(r: int) -> list[str]:
        old, new = (t.key1, t.key2) if r % 2 == 0 else (t.key2, t.key1)
        return [t.bmcrypt, "rekey", "-k", str(old), "--new-key", str(new), str(rekeyed)]

    cp = Command("cp + sync", _sh(f"cp {model} {cp_out} && sync {cp_out}"), _rm(cp_out),
                 warm=["cp", "--version"])
    enc = Command("bmcrypt encrypt -o",
                  [t.bmcrypt, "encrypt", "-k", str(t.key1), "-o", str(enc_out), str(model)],
                  _rm(enc_out), warm=bmcrypt_warm)
    inp = Command("bmcrypt encrypt (in place, backup)",
                  [t.bmcrypt, "encrypt", "-k", str(t.key1), str(inplace)], fresh_inplace,
                  warm=bmcrypt_warm)
    rekey = Command("bmcrypt rekey", rekey_argv, warm=bmcrypt_warm)
    start = Command("bmcrypt --version", bmcrypt_warm, warm=bmcrypt_warm)
    pyc = Command("pycryptodome single-shot (Python)",
                  [t.python, str(BENCH / "pycryptodome_baseline.py"), str(model), str(pyc_out)],
                  _rm(pyc_out),
                  warm=[t.python, "-c", "import Crypto.Cipher.AES, bmcrypt.bmodel.reader"])
    vendor = Command("model_tool --encrypt (Crypto++ GCM lib) + sync",
                     _sh(f"{t.model_tool} --encrypt -model {model} -net {_nets(spec)} "
                         f"-lib {t.gcm_lib} -o {vendor_out} >/dev/null && sync {vendor_out}"),
                     _rm(vendor_out),
                     warm=_sh(f"{t.model_tool} >/dev/null 2>&1; cat {t.gcm_lib} >/dev/null"))
    commands = [cp, enc, inp, rekey, start, pyc, vendor]
    before = loadavg()
    interleave(commands, runs, cold=cold, log=log, quiet=quiet)
    after = loadavg()
    # What was measured must be right: every output authenticates with the key it should have.
    final_key = t.key1 if runs % 2 == 0 else t.key2
    for path, key in ((enc_out, t.key1), (inplace, t.key1), (rekeyed, final_key)):
        _check([t.bmcrypt, "verify", "-k", str(key), str(path)])
    for p in (cp_out, enc_out, vendor_out, pyc_out, inplace, inplace_bak, rekeyed,
              w / "inplace.bmodel.bak.sha256"):
        p.unlink(missing_ok=True)

    size = f"{spec.name} model"
    load = (before, after)
    floor = cp.median()
    section = Section(f"Encrypting the {spec.name} model", commands=commands, cold=cold,
                      runs=runs)
    section.results += [
        Result(1, f"encrypt to a new file, {size}", enc.name, cp.name, enc.median(), floor,
               "s", 1.5, load=load),
        Result(1, f"encrypt in place with verified backup, {size}", inp.name, cp.name,
               inp.median(), floor, "s", 2.5, load=load),
        Result(2, f"rekey vs encrypt, {size}", rekey.name, enc.name, rekey.median(),
               enc.median(), "s", 0.05, load=load),
        Result(2, f"rekey vs encrypt in place (both change the model in place), {size}",
               rekey.name, inp.name, rekey.median(), inp.median(), "s", 0.05, load=load),
        Result(2, f"evidence: the CLI's start-up in a rekey, {size}", start.name, rekey.name,
               start.median(), rekey.median(), "s", None, load=load,
               note="a command that does nothing but start"),
        Result(6, f"vs straight pycryptodome, {size}", enc.name, pyc.name, enc.median(),
               pyc.median(), "s", None, load=load),
        Result(6, f"vs the vendor flow, {size}", enc.name, vendor.name, enc.median(),
               vendor.median(), "s", None, load=load),
    ]
    # The same two operations as library calls in one process: what they cost without the
    # interpreter's start-up and imports (the same for both, and most of a rekey's time).
    sample, text = run_timed([t.python, str(BENCH / "inprocess_child.py"), str(model), str(w),
                              str(t.key1), str(t.key2), str(runs), "1" if cold else "0"])
    calls = json.loads(text.strip().splitlines()[-1])
    lib_rekey, lib_enc = statistics.median(calls["rekey"]), statistics.median(calls["encrypt"])
    section.results.append(Result(2, f"rekey vs encrypt as library calls, {size}",
                                  "workflow.rekey_model", "workflow.encrypt_model(output=…)",
                                  lib_rekey, lib_enc, "s", 0.05, load=load,
                                  note=f"{runs} calls each, interleaved, in one process"))
    if spec.weight_bytes >= 1024 * MiB:
        for cmd in (enc, inp):
            peak = max(s.maxrss for s in cmd.samples) / MiB
            section.results.append(Result(5, f"peak RSS of {cmd.name}, {size}", cmd.name,
                                          "256 MiB", peak, 256, "MiB", 1.0, load=load,
                                          note="largest of all runs"))
    return section


# ---------------------------------------------------------------- 3: decrypt throughput

_RATE = re.compile(r"([0-9.]+)k\s*$")


def _openssl_rate(text: str) -> float:
    """GB/s from the last line of `openssl speed -bytes N` (it prints 1000s of bytes/s)."""
    match = _RATE.search(text.strip().splitlines()[-1])
    if not match:
        raise RuntimeError(f"cannot read openssl speed output: {text[-300:]}")
    return float(match[1]) * 1000 / 1e9


class _Rate(Command):
    """A command whose result is the rate it prints, not its time."""

    def __init__(self, name: str, argv: list[str], parse: Callable[[str], float]) -> None:
        super().__init__(name, argv)
        self.parse = parse
        self.rates: list[float] = []


def throughput(t: Tools, runs: int, log: Log, quiet: Quiet | None = None) -> Section:
    cores = os.cpu_count() or 1
    speed = ["openssl", "speed", "-seconds", "3", "-evp", "aes-256-gcm", "-bytes", "1048576"]
    child = [t.python, str(BENCH / "throughput_child.py")]

    def native(key: str) -> Callable[[str], float]:  # a rate from a child's JSON line
        return lambda text: float(json.loads(text.strip().splitlines()[-1])[key])

    cmds = {
        "openssl": _Rate("openssl speed (1 core, per CPU-second)", speed, _openssl_rate),
        "openssl_wall": _Rate("openssl speed -elapsed (1 core, wall)",
                              speed[:2] + ["-elapsed"] + speed[2:], _openssl_rate),
        "openssl_multi": _Rate(f"openssl speed -multi {cores} -elapsed (all cores, wall)",
                               speed[:2] + ["-multi", str(cores), "-elapsed"] + speed[2:],
                               _openssl_rate),
        "large": _Rate("bmcrypt native open, 1 thread, 256 MiB envelope (per CPU-second)",
                       child + ["1", "256", "5"], native("cpu_gbps")),
        "hot": _Rate("bmcrypt native open, 1 thread, 1 MiB envelope in cache (per CPU-second)",
                     child + ["1", "1", "5"], native("cpu_gbps")),
        "all": _Rate(f"bmcrypt native open, {cores} threads, 256 MiB envelope (wall)",
                     child + ["0", "256", "5"], native("wall_gbps")),
    }
    # Evidence for the engine: bmcrypt's segment loop alone, through Crypto++ and OpenSSL's EVP.
    engines = _Rate("segment loop by engine (bench/ciphers/gcm_engines.cpp)",
                    [str(t.engines), "256"], lambda text: 0.0)
    cmds["engines"] = engines
    import memory_goals  # here: it builds on this module's Result

    memory = _Rate("bmcrypt_decrypt + free(), 1 GiB, fresh buffer, all cores (C API)",
                   memory_goals.argv(t), lambda text: memory_goals.parse(text)["fresh_gbps"])
    cmds["memory"] = memory
    memory_runs: list[dict[str, object]] = []
    engine_rates: list[dict[str, float]] = []
    before = loadavg()
    for r in range(runs):
        for cmd in cmds.values():
            busy = quiet.wait() if quiet else 0.0
            sample, out = run_timed(cmd.argv)  # type: ignore[arg-type]
            sample.busy = busy
            cmd.samples.append(sample)
            cmd.rates.append(cmd.parse(out))
            if cmd is engines:
                engine_rates.append(json.loads(out.strip().splitlines()[-1]))
            if cmd is memory:
                memory_runs.append(memory_goals.parse(out))
            log(f"  round {r + 1}/{runs} {cmd.name:<62} {cmd.rates[-1]:6.2f} GB/s  "
                f"load {loadavg():.1f}")
    load = (before, loadavg())

    def med(key: str) -> float:
        rates = sorted(cmds[key].rates)
        return rates[len(rates) // 2]

    section = Section("Decrypt throughput of the native core", runs=runs)
    section.results += [
        Result(3, "decrypt, 1 core, large envelope", cmds["large"].name, cmds["openssl"].name,
               med("large"), med("openssl"), "GB/s", 0.8, higher_is_better=True, load=load,
               note="what a load does: 256 MiB streamed through memory, vs openssl's 1 MiB "
                    "block in cache"),
        Result(3, "decrypt, 1 core, 1 MiB in cache (like for like)", cmds["hot"].name,
               cmds["openssl"].name, med("hot"), med("openssl"), "GB/s", 0.8,
               higher_is_better=True, load=load),
        Result(3, f"decrypt, all {cores} cores, large envelope", cmds["all"].name,
               cmds["openssl_multi"].name, med("all"), med("openssl_multi"), "GB/s", 0.8,
               higher_is_better=True, load=load, note="both by wall-clock time"),
    ]
    section.results.append(Result(3, "openssl by wall-clock time (for reference)",
                                  cmds["openssl_wall"].name, cmds["openssl"].name,
                                  med("openssl_wall"), med("openssl"), "GB/s", None, True,
                                  load=load))
    for engine, name in (("cryptopp", "Crypto++"), ("openssl", "OpenSSL EVP")):
        for case, what in (("hot", "1 MiB in cache"), ("large", "256 MiB")):
            rate = statistics.median(r[f"{engine}_{case}"] for r in engine_rates)
            section.results.append(Result(
                3, f"evidence: the segment loop through {name}, 1 core, {what}",
                f"{name} segment loop", cmds["openssl"].name, rate, med("openssl"), "GB/s",
                None, True, load=load, note="bench/ciphers/gcm_engines.cpp"))
    section.results += memory_goals.results(memory_runs, load)
    del cmds["engines"]
    section.commands = list(cmds.values())
    return section


# ---------------------------------------------------------------- 4: loading into the runtime


def loads(t: Tools, spec: ModelSpec, runs: int, cold: bool, log: Log,
          quiet: Quiet | None = None, *, plugin_only: bool = False) -> Section:
    """A model loaded whole (process start to exit) through libbmcrypt.so against the same model
    sealed by the vendor's tool with a copy-only cipher library (the same runtime path,
    `bmrt_load_bmodel_with_decrypt_lib`), and, unless `plugin_only` (issue 17's 1 GiB row), the
    plain load and bmcrypt's two loader strategies."""
    model = model_path(spec)
    name = "load1g" if plugin_only else "load"
    ours, copied = t.work / f"{name}-bmcrypt.bmodel", t.work / f"{name}-copy.bmodel"
    for p in (ours, copied):
        p.unlink(missing_ok=True)
    _check([t.bmcrypt, "encrypt", "-k", str(t.key1), "-o", str(ours), str(model)])
    _check([t.model_tool, "--encrypt", "-model", str(model), "-net", _nets(spec), "-lib",
            str(t.copy_lib), "-o", str(copied)])
    child = [t.python, str(BENCH / "load_child.py")]
    libs = " ".join(str(p) for p in sorted((t.vendor / "lib").glob("*.so*")))
    warm = _sh(f"cat {libs} {t.plugin} {t.copy_lib} >/dev/null; "
               f"{t.python} -c 'import bmcrypt.runtime, bmcrypt.loader'")
    copy = _Timed("decrypt_lib + copy-only lib", child + ["lib", str(copied), str(t.copy_lib)],
                  warm=warm)
    plugin = _Timed("decrypt_lib + libbmcrypt.so", child + ["lib", str(ours), str(t.plugin)],
                    warm=warm, env={"BMCRYPT_KEY_FILE": str(t.key1)})
    plain = Command("plain bmrt_load_bmodel", child + ["plain", str(model)], warm=warm)
    callback = Command("bmcrypt callback strategy", child + ["callback", str(ours), "-",
                                                             str(t.key1)], warm=warm)
    memory = Command("bmcrypt memory strategy", child + ["memory", str(ours), "-", str(t.key1)],
                     warm=warm)
    commands = [copy, plugin] if plugin_only else [plain, copy, plugin, callback, memory]
    before = loadavg()
    interleave(commands, runs, cold=cold, log=log, quiet=quiet)
    load = (before, loadavg())
    for p in (ours, copied):
        p.unlink(missing_ok=True)
    whole = "whole process: interpreter, simulator start, load, exit"
    if plugin_only:
        section = Section(f"Loading the {spec.name} model through the plugin (simulator)",
                          commands=commands, cold=cold, runs=runs)
        section.results += [
            Result(17, f"load through the plugin vs the copy-only cipher, {spec.name} model",
                   plugin.name, copy.name, plugin.median(), copy.median(), "s", 1.05,
                   load=load, note=whole),
            Result(17, f"evidence: the load call alone, {spec.name} model", plugin.name,
                   copy.name, plugin.load_median(), copy.load_median(), "s", None, load=load,
                   note="seconds inside bmrt_load_bmodel_with_decrypt_lib, as the child "
                        "reports"),
        ]
        return section
    section = Section(f"Loading the {spec.name} model into the vendor runtime (simulator)",
                      commands=commands, cold=cold, runs=runs)
    section.results += [
        Result(4, "load through the plugin library", plugin.name, copy.name, plugin.median(),
               copy.median(), "s", 1.10, load=load, note=whole),
        Result(4, "load through the callback strategy (verifies first)", callback.name,
               copy.name, callback.median(), copy.median(), "s", 1.10, load=load, note=whole),
        Result(4, "load through the memory strategy", memory.name, plain.name, memory.median(),
               plain.median(), "s", 1.15, load=load, note=whole),
    ]
    return section


class _Timed(Command):
    """A load command whose child also reports the seconds of the load call itself."""

    def __init__(self, name: str, argv: list[str], **kw: object) -> None:
        super().__init__(name, argv, **kw)  # type: ignore[arg-type]
        self.loads: list[float] = []

    def record(self, out: str) -> None:
        self.loads.append(float(json.loads(out.strip().splitlines()[-1])["load_s"]))

    def load_median(self) -> float:
        return statistics.median(self.loads)


def share_cache(t: Tools, runs: int, log: Log) -> Section:
    """Sequence sharing (issue: the share-cache workflow), measured inside one process each:
    a question's first-token latency against a prefix shared once vs prefix+question prefilled
    whole, on the same share-cache build; device memory of two builds with equal weights
    loaded together vs each alone."""
    case = json.loads((BENCH.parent / "tests" / "fixtures" / "share_cache.json").read_text())
    builds = [BENCH.parent / "tests" / "fixtures" / m["file"] for m in case["share_models"]]
    child = [t.python, str(BENCH / "share_child.py")]

    def run(*args: str) -> dict[str, float]:
        out = subprocess.run(child + list(args), capture_output=True, text=True, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    encrypted = t.work / "share-encrypted.bmodel"
    encrypted.unlink(missing_ok=True)
    _check([t.bmcrypt, "encrypt", "-k", str(t.key1), "-o", str(encrypted), str(builds[0])])
    before = loadavg()
    log(f"bench: share cache latency, {runs} rounds of {len(case['questions'])} questions")
    plain = run("latency", str(builds[0]), str(runs))
    sealed = run("latency", str(encrypted), str(runs), str(t.key1))
    together = run("memory", *map(str, builds))
    alone = [run("memory", str(b))["loaded_bytes"] for b in builds]
    load = (before, loadavg())
    encrypted.unlink(missing_ok=True)
    sim = "simulator: each net launch costs 50-400 ms whatever its size; see docs/chat.md"
    section = Section("Sequence sharing (share-cache builds, simulator)", runs=runs)
    section.results += [
        Result(7, "first token of a question, prefix shared once (plain)", "shared prefix",
               "prefix+question prefilled whole", plain["shared"], plain["whole"], "s", None,
               load=load, note=sim),
        Result(7, "the same, encrypted (callback strategy)", "shared prefix",
               "prefix+question prefilled whole", sealed["shared"], sealed["whole"], "s", None,
               load=load, note=sim),
        Result(7, "device memory, two builds with equal weights", "loaded together (weights "
               "once)", "each loaded alone, summed", together["loaded_bytes"] / MiB,
               sum(alone) / MiB, "MiB", None, load=load),
    ]
    return section
