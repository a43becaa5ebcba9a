"""Before the runtime starts: what each model file needs on the device, and the load order.

Read from the FlatBuffer, without the runtime: plain files through the verifying reader,
bmcrypt files through ``open_encrypted`` (which authenticates the header and the FlatBuffer,
so a wrong key or a tampered header stops us here, before the simulator even starts).

Load order: largest *runtime* memory first (the neuron memory the nets compute in, the
"runtime" of ``model_tool --info``), the vendor demos' rule for runtimes that keep one
compute-memory region per device and let later models reuse it when it is large enough; equal
models keep the order given. (The simulator's libbmrt gives each net its own neuron memory;
there the order leaves the total unchanged, measured.) Encrypted files are planned from their
authenticated FlatBuffer, so their real figures are known, not guessed from the file size.

Weight sharing: libbmrt keys every loaded weight region by (SHA-256 ``check_code``, plaintext
size) and reuses a region already on the device instead of uploading it again, also across
files and across encrypted and plain copies. ``shared_bytes`` predicts how much of each file
that will be, given the files loaded before it; the host then measures what really happened.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bmcrypt.bmodel import decode_flatbuffer
from bmcrypt.bmodel.memory import memory_info
from bmcrypt.bmodel.model import DeviceMem
from bmcrypt.bmodel.reader import read_bmodel
from bmcrypt.crypto import Keyring
from bmcrypt.protect.container import FileState, require_openable
from bmcrypt.protect.opened import open_encrypted

CoeffKey = tuple[bytes, int]  # (check_code, plaintext size): libbmrt's key for a weight region


@dataclass(frozen=True)
class ModelPlan:
    """One model file as the runtime will see it."""

    path: Path
    name: str
    state: str  # "plain" or "bmcrypt"
    file_size: int
    device_mem: DeviceMem
    coeffs: dict[CoeffKey, int]  # distinct weight regions -> bytes
    given_index: int = 0  # position on the command line (the load order may differ)
    shared_bytes: int = 0  # weight bytes already on the device from earlier models (predicted)


def plan_models(paths: Sequence[str | os.PathLike[str]],
                keyring: Keyring | None = None) -> list[ModelPlan]:
    """Describe every file and return them in load order (see the module docstring)."""
    names = _names([Path(p) for p in paths])
    plans = [replace(_describe(Path(p), name, keyring), given_index=i)
             for i, (p, name) in enumerate(zip(paths, names, strict=True))]
    plans.sort(key=lambda p: -p.device_mem.runtime)  # stable: ties keep the order given
    seen: set[CoeffKey] = set()
    out = []
    for plan in plans:
        shared = sum(size for key, size in plan.coeffs.items() if key in seen)
        seen.update(plan.coeffs)
        out.append(replace(plan, shared_bytes=shared))
    return out


def _describe(path: Path, name: str, keyring: Keyring | None) -> ModelPlan:
    state = require_openable(path, keyring)  # InputFileError / NotABmodel for unusable paths
    if state == FileState.PLAIN:
        model = read_bmodel(path)
        coeffs = {(c.check_code, c.size): c.size for c in model.coeff_regions}
        return ModelPlan(path, name, state, model.file_size, model.device_mem, coeffs)
    assert keyring is not None
    with open_encrypted(path, keyring) as opened:
        root = decode_flatbuffer(opened.flatbuffer)
        size = opened.file_size
    plain_root = _plaintext_sizes(root)
    device, _host = memory_info(plain_root)
    return ModelPlan(path, name, state, size, device, dict(_coeff_keys(plain_root)))


def _plaintext_sizes(root: dict[str, Any]) -> dict[str, Any]:
    """A copy of a decoded Model whose encrypted weights carry their plaintext size.

    What the runtime uploads (and what model_tool reports for the decrypted file). Copies
    rather than edits: the walker shares tables referenced from several places.
    """
    def param(p: dict[str, Any]) -> dict[str, Any]:
        c = p["coeff_mem"]
        if c is None or not c["encrypt_mode"] or c["binary_coeff"] is None:
            return p
        return {**p, "coeff_mem": {**c, "binary_coeff": (c["binary_coeff"][0], c["decrypt_size"])}}

    nets = [{**n, "parameter": [param(p) for p in n["parameter"] or ()]} for n in root["net"]]
    return {**root, "net": nets}


def _coeff_keys(root: dict[str, Any]) -> Iterable[tuple[CoeffKey, int]]:
    for net in root["net"]:
        for param in net["parameter"] or ():
            c = param["coeff_mem"]
            if c is not None and c["binary_coeff"] is not None:
                size = int(c["binary_coeff"][1])
                yield (bytes(c["check_code"] or b""), size), size


def _names(paths: list[Path]) -> list[str]:
    """Short names for messages: the file stems, made unique with #2, #3 …"""
    out: list[str] = []
    for p in paths:
        name, n = p.stem, 1
        while name in out:
            n += 1
            name = f"{p.stem}#{n}"
        out.append(name)
    return out
