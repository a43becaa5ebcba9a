"""Streaming an answer's text through the chat tokenizer (issue 17): the per-token cost must not
grow with the answer, so the cost at token 1,000 is compared with the cost at token 10, in one
process (bench/streaming_child.py), on the tiny Qwen2 fixture's real byte-level BPE tokenizer.
The old way (decode the whole answer so far on each token) is timed alongside, as evidence.
"""

from __future__ import annotations

import json
import statistics
import subprocess

from env import Tools
from models import ROOT
from sections import BENCH, Log, Result, Section
from timing import Quiet, loadavg

TOKENIZER = ROOT / "tests" / "fixtures" / "tiny-qwen2-tokenizer"
FLAT = 1.2  # the goal: cost at token 1,000 within 1.2x of the cost at token 10
TITLE = "Streaming an answer through the tokenizer (one process)"


def tokenizer(t: Tools, rounds: int, log: Log, quiet: Quiet | None = None) -> Section:
    """Per-token cost of `ChatTokenizer.stream()` around token 10 and around token 1,000."""
    log(f"bench: streaming 1,000 tokens, {rounds} round(s) of answers")
    if quiet:
        quiet.wait()
    before = loadavg()
    out = subprocess.run([t.python, str(BENCH / "streaming_child.py"), str(TOKENIZER),
                          str(rounds)], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    load = (before, loadavg())
    early = "tokens {}-{}".format(*data["early"])
    late = "tokens {}-{}".format(*data["late"])
    med = {way: {block: statistics.median(data[way][f"{block}_us"]) for block in ("early", "late")}
           for way in ("window", "old")}
    note = (f"per token, median of {data['answers']} answers of {data['tokens']} tokens "
            f"(every start in a {data['text_tokens']}-token English and Chinese text)")
    section = Section(TITLE, runs=data["answers"])
    section.results += [
        Result(17, "streaming 1,000 answer tokens: per-token cost at token 1,000 vs at token 10",
               f"ChatTokenizer.stream(), {late}", early, med["window"]["late"],
               med["window"]["early"], "µs", FLAT, load=load, note=note),
        Result(17, "evidence: the same, decoding the whole answer so far on each token (before)",
               f"decode everything, {late}", early, med["old"]["late"], med["old"]["early"],
               "µs", None, load=load, note=note),
        Result(17, "evidence: per-token cost at token 1,000, stream() vs decoding everything",
               "ChatTokenizer.stream()", "decode everything", med["window"]["late"],
               med["old"]["late"], "µs", None, load=load, note=note),
    ]
    return section
