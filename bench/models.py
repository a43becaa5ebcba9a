"""The synthetic models the benchmark runs on, built once and cached.

Each model looks like a small LLM export: `nets` nets of one stage each, every net with its own
weight region of random bytes (incompressible, no two alike), 4 KiB-aligned like the vendor tool
writes. The nets are copies of the committed MLP fixture's net (real BM1684X commands, which the
runtime relocates while it loads; filler commands make it fail) with their weights replaced, so
the vendor runtime and its simulator load them. Built with the object API and the package's
writer.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

MiB = 1 << 20
GENERATOR = 2  # bump when the layout changes: cached files are keyed by it


@dataclass(frozen=True)
class ModelSpec:
    name: str
    weight_bytes: int
    nets: int

    @property
    def per_net(self) -> int:
        return self.weight_bytes // self.nets


SPECS = {
    "16MiB": ModelSpec("16MiB", 16 * MiB, 8),  # rekey's flatness: its time against 1GiB's
    "256MiB": ModelSpec("256MiB", 256 * MiB, 8),
    "1GiB": ModelSpec("1GiB", 1024 * MiB, 8),
}


def cache_dir() -> Path:
    base = os.environ.get("BMCRYPT_BENCH_CACHE")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "bmcrypt" / "bench"


def model_path(spec: ModelSpec) -> Path:
    """The cached plain model of `spec`, built on first use (atomically: temp file + rename)."""
    path = cache_dir() / f"synth-{spec.name}-g{GENERATOR}.bmodel"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    _build(spec, path)
    return path


TEMPLATE = ROOT / "tests" / "fixtures" / "mlp_bm1684x_f16_nokernel.bmodel"


def _build(spec: ModelSpec, path: Path) -> None:
    from synth import coeff_mem  # tests/synth.py

    from bmcrypt.bmodel.reader import read_raw
    from bmcrypt.bmodel.writer import BinaryRegion, write_bmodel

    print(f"bench: building {path} ({spec.weight_bytes // MiB} MiB of random weights)",
          file=sys.stderr)
    raw = read_raw(TEMPLATE)
    template = raw.unpack()
    with open(TEMPLATE, "rb") as f:
        f.seek(raw.header.binary_offset)
        commands = f.read(raw.header.binary_size)
    rng = np.random.default_rng(20260101 + spec.weight_bytes)
    region = BinaryRegion(align=4096)
    region.place(0, commands)  # the template's commands (and its small weights, unreferenced)
    (net0,) = template.net
    nets = []
    for i in range(spec.nets):
        n = copy.deepcopy(net0)
        n.name = f"block_{i}"
        weights = rng.bytes(spec.per_net)
        for p in n.parameter:
            p.coeffMem = coeff_mem(region.add(weights), weights, address=p.coeffMem.address)
        nets.append(n)
    template.net = nets
    model = template
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write_bmodel(f, model, region)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()
