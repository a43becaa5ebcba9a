"""Encrypting as a user who just built the model (issue 17): everything in the page cache.

`cp` + `sync` of the same file is the yardstick, timed in the same rounds: both write the whole
model to a new file on the same disk and wait until it is there. Dropping the page cache before
every command (the "Encrypting" sections, as root) lets the disk set the pace; here the work
itself does. The CPU time (user + sys) of `encrypt -o` is compared with `cp`'s too, and, as
evidence, with the floor of the work it must do on this CPU: SHA-256 over the weights (each is
checked against its check_code before it is encrypted) and over the whole original (the digest
the exact round trip records, FORMAT.md §8.4), plus AES-256-GCM over the weights, each at the
speed `openssl speed` measures for it on one core in the same rounds. (`encrypt` writes past the
page cache, so `cp`'s own work, the copy into it, is not part of its floor.) The wall-time floor
adds that work spread over every core to the start-up of encrypting a small model. The lowest
floor goes further: the two SHA-256 streams interleaved on one core where that helps
(bench/ciphers/sha_lanes.c measures how much faster two lanes of the CPU's SHA extensions run
than two OpenSSL passes), the whole original's stream on one core (it is one stream), and GCM at
Crypto++'s own speed (the project's cipher, bench/ciphers/gcm_engines.cpp).

An in-place encrypt does more on the disk than `cp` + `sync`: it makes the model just built
durable (the flush `sync` does), reads it back past the page cache to verify it as the backup,
and writes the encrypted model. `dd` does the same I/O with no other work in the same rounds:
the model copied in untimed (dirty in the page cache, like the in-place command's), then timed,
`sync` of it, then its read back (O_DIRECT) while a file of its size is written (O_DIRECT,
fsynced). That plus the start-up is the in-place command's wall-time floor on this disk.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

from env import Tools
from models import ROOT, ModelSpec, model_path
from sections import Log, Result, Section
from timing import Command, Quiet, interleave, loadavg, run_timed

ENCRYPT_GOAL, IN_PLACE_GOAL, CPU_GOAL = 1.3, 2.2, 1.5
_RATE = re.compile(r"([0-9.]+)k\s*$")


def _openssl_seconds(algorithm: str, size: int) -> float:
    """Seconds of one core that `openssl speed` needs for `size` bytes of `algorithm`."""
    out = subprocess.run(["openssl", "speed", "-seconds", "1", "-evp", algorithm, "-bytes",
                          str(1 << 20)], capture_output=True, text=True, check=True).stdout
    match = _RATE.search(out.strip().splitlines()[-1])
    if not match:
        raise RuntimeError(f"cannot read openssl speed output: {out[-300:]}")
    return size / (float(match[1]) * 1000)


def _two_lanes(t: Tools) -> tuple[float, float] | None:
    """GB/s (per CPU-second) of one core hashing two SHA-256 streams interleaved (SHA-NI, two
    lanes) and one after the other with OpenSSL: bench/ciphers/sha_lanes.c; None where it
    cannot be built or the CPU has no SHA extensions."""
    if t.sha_lanes is None:
        return None
    run = subprocess.run([str(t.sha_lanes)], capture_output=True, text=True)
    if run.returncode == 2:  # no SHA extensions on this CPU
        return None
    if run.returncode != 0:  # its states differ from OpenSSL's: a wrong measurement, not none
        raise RuntimeError(f"bench/ciphers/sha_lanes.c failed: {run.stderr.strip()}")
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    return figures["two_lanes_gbps"], figures["openssl_one_after_other_gbps"]


def _cryptopp_gcm_seconds(t: Tools, size: int) -> float:
    """Seconds of one core that Crypto++'s AES-256-GCM (the project's cipher) needs for `size`
    bytes in bmcrypt's segment loop (bench/ciphers/gcm_engines.cpp, 256 MiB)."""
    out = subprocess.run([str(t.engines), "256"], capture_output=True, text=True, check=True)
    rate = json.loads(out.stdout.strip().splitlines()[-1])["cryptopp_large"]
    return size / (rate * 1e9)


def lowest_floor(sha: float, gcm: float, speedup: float, cores: int) -> float:
    """Seconds of wall time `encrypt -o`'s work needs at least on `cores` cores, were its two
    hashes interleaved on one core wherever that helps (a fraction f of the weights):
    the whole original's SHA-256 is one stream, so the core that carries it works at least
    `sha + f * (paired - sha)`; all the work, `f * paired + 2 * (1 - f) * sha + gcm`, is spread
    over every core at best. `paired`: both streams over the same bytes, interleaved."""
    paired = 2 * sha / speedup
    best = float("inf")
    for i in range(1001):
        f = i / 1000
        one = sha + f * (paired - sha)
        total = f * paired + 2 * (1 - f) * sha + gcm
        best = min(best, max(one, total / cores))
    return best


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def encrypt_warm(t: Tools, spec: ModelSpec, runs: int, log: Log,
                 quiet: Quiet | None = None) -> Section:
    model = model_path(spec)
    w = t.work
    cp_out, enc_out, inplace = w / "warm-cp.out", w / "warm-enc.out", w / "warm-inplace.bmodel"
    small_out = w / "warm-small.out"
    debris = [inplace.with_name(inplace.name + s) for s in (".bak", ".bak.sha256")]

    def fresh(*paths: Path) -> Callable[[int], None]:
        def setup(_round: int) -> None:
            for p in paths:
                p.unlink(missing_ok=True)
        return setup

    def fresh_inplace(_round: int) -> None:
        for p in (inplace, *debris):
            p.unlink(missing_ok=True)
        subprocess.run(["cp", str(model), str(inplace)], check=True)  # stays in the cache

    cp = Command("cp + sync", ["sh", "-c", f"cp {model} {cp_out} && sync {cp_out}"],
                 fresh(cp_out))
    enc = Command("bmcrypt encrypt -o",
                  [t.bmcrypt, "encrypt", "-k", str(t.key1), "-o", str(enc_out), str(model)],
                  fresh(enc_out))
    inp = Command("bmcrypt encrypt (in place, backup)",
                  [t.bmcrypt, "encrypt", "-k", str(t.key1), str(inplace)], fresh_inplace)
    disk_in, disk_out = w / "warm-disk.in", w / "warm-disk.out"

    def fresh_disk(_round: int) -> None:
        for p in (disk_in, disk_out):
            p.unlink(missing_ok=True)
        subprocess.run(["cp", str(model), str(disk_in)], check=True)  # dirty, as in place

    blocks = -(-model.stat().st_size // (8 << 20))
    disk = Command(
        "the I/O of in place (dd: sync, read back, write; O_DIRECT)",
        ["sh", "-c", f"sync {disk_in} && {{ dd if={disk_in} of=/dev/null bs=8M iflag=direct "
                     f"status=none & r=$!; dd if=/dev/zero of={disk_out} bs=8M count={blocks} "
                     f"oflag=direct conv=fsync status=none && wait $r; }}"],
        fresh_disk)
    small = ROOT / "tests" / "fixtures" / "mlp_bm1684x_f16_nokernel.bmodel"
    start = Command("bmcrypt encrypt -o (32 KiB model)",
                    [t.bmcrypt, "encrypt", "-k", str(t.key1), "-o", str(small_out), str(small)],
                    fresh(small_out))
    # Where the work directory's file system refuses O_DIRECT (tmpfs before Linux 6.6, some
    # network file systems) this floor is not measured.
    probe = w / "warm-probe"
    direct = all(subprocess.run(["dd", *io, "bs=4096", "count=1", "status=none"]).returncode == 0
                 for io in (["if=/dev/zero", f"of={probe}", "oflag=direct"],
                            [f"if={probe}", "of=/dev/null", "iflag=direct"]))
    probe.unlink(missing_ok=True)
    commands = [cp, enc, inp, start] + ([disk] if direct else [])
    subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)  # warm it
    before = loadavg()
    interleave(commands, runs, cold=False, log=log, quiet=quiet)
    size = model.stat().st_size
    sha = [_openssl_seconds("sha256", size) for _ in range(3)]
    gcm = [_openssl_seconds("aes-256-gcm", size) for _ in range(3)]
    lanes = _two_lanes(t)
    cryptopp = statistics.median(_cryptopp_gcm_seconds(t, size) for _ in range(3))
    after = loadavg()
    for path in (enc_out, inplace):  # what was measured must be right
        run_timed([t.bmcrypt, "verify", "-q", "-k", str(t.key1), str(path)])
    for p in (cp_out, enc_out, inplace, small_out, disk_in, disk_out, *debris):
        p.unlink(missing_ok=True)

    load = (before, after)
    cores = _cores()
    work = 2 * statistics.median(sha) + statistics.median(gcm)
    wall_floor = start.median() + work / cores
    name = f"{spec.name} model, warm cache"
    section = Section(f"Encrypting the {spec.name} model just built (warm)", commands=commands,
                      cold=False, runs=runs)
    section.results += [
        Result(17, f"encrypt -o vs cp + sync, {name}", enc.name, cp.name, enc.median(),
               cp.median(), "s", ENCRYPT_GOAL, load=load),
        Result(17, f"encrypt in place with verified backup vs cp + sync, {name}", inp.name,
               cp.name, inp.median(), cp.median(), "s", IN_PLACE_GOAL, load=load),
        Result(17, f"CPU time (user + sys) of encrypt -o vs cp's, {name}", enc.name, cp.name,
               enc.median("cpu"), cp.median("cpu"), "s", CPU_GOAL, load=load),
        Result(17, f"evidence: the CPU floor of encrypt -o's work vs cp's CPU, {name}",
               "2 SHA-256 passes + AES-GCM at openssl speed", cp.name, work,
               cp.median("cpu"), "s", None, load=load,
               note=f"SHA-256 {size / statistics.median(sha) / 1e9:.2f} GB/s, AES-256-GCM "
                    f"{size / statistics.median(gcm) / 1e9:.2f} GB/s (1 MiB blocks, 1 core)"),
        Result(17, f"evidence: the check_code's SHA-256 alone vs cp's CPU, {name}",
               "1 SHA-256 pass at openssl speed", cp.name, statistics.median(sha),
               cp.median("cpu"), "s", None, load=load),
        Result(17, f"evidence: CPU time of encrypt -o vs that floor, {name}", enc.name,
               "the floor", enc.median("cpu"), work, "s", None, load=load),
        Result(17, f"evidence: the wall-time floor of encrypt -o vs cp + sync, {name}",
               f"start-up + the floor on {cores} cores", cp.name, wall_floor, cp.median(), "s",
               None, load=load, note=f"start-up: {start.name}, {start.median():.3f} s"),
        Result(17, f"evidence: encrypt -o vs its wall-time floor, {name}", enc.name,
               "the wall-time floor", enc.median(), wall_floor, "s", None, load=load),
    ]
    if lanes is not None:
        lowest = start.median() + lowest_floor(statistics.median(sha), cryptopp,
                                               lanes[0] / lanes[1], cores)
        section.results += [
            Result(17, "evidence: two SHA-256 streams on one core, interleaved (SHA-NI, 2 lanes) "
                   "vs one after the other (OpenSSL)", "2 lanes (per CPU-second)",
                   "one after the other (per CPU-second)", *lanes, "GB/s", None,
                   higher_is_better=True, load=load,
                   note="bench/ciphers/sha_lanes.c, checked against OpenSSL's states"),
            Result(17, f"evidence: the lowest wall-time floor of encrypt -o (its two hashes "
                   f"interleaved, 2 lanes; Crypto++'s GCM) vs cp + sync, {name}",
                   f"start-up + that floor on {cores} cores", cp.name, lowest, cp.median(), "s",
                   None, load=load,
                   note=f"SHA-256 {size / statistics.median(sha) / 1e9:.2f} GB/s one stream, "
                        f"{lanes[0] / lanes[1]:.2f} × that for two interleaved; Crypto++ "
                        f"AES-256-GCM {size / cryptopp / 1e9:.2f} GB/s; start-up "
                        f"{start.median():.3f} s; the core that carries the whole original's "
                        "SHA-256 pairs it with the check_codes' for as much as balances the "
                        "cores"),
        ]
    section.results += [] if not direct else [
        Result(17, f"evidence: the I/O of an in-place encrypt alone vs cp + sync, {name}",
               disk.name, cp.name, disk.median(), cp.median(), "s", None, load=load),
        Result(17, f"evidence: the wall-time floor of in place vs cp + sync, {name}",
               "start-up + the I/O of in place", cp.name, start.median() + disk.median(),
               cp.median(), "s", None, load=load,
               note=f"start-up: {start.name}, {start.median():.3f} s; the CPU work of in place "
                    f"(3 SHA-256 passes + AES-GCM at openssl speed) on {cores} cores: "
                    f"{(3 * statistics.median(sha) + statistics.median(gcm)) / cores:.3f} s"),
        Result(17, f"evidence: encrypt in place vs its wall-time floor, {name}", inp.name,
               "the wall-time floor of in place", inp.median(),
               start.median() + disk.median(), "s", None, load=load),
    ]
    return section
