"""Loading one or more LLM bmodels onto one device, and accounting for the device memory.

    with ModelHost(["a.bmodel", "b.bmodel"], keyring) as host:
        model = host.models[0]          # LoadedModel: runtime, layout, memory figures

Steps, in an order chosen so that problems surface as early and as cheaply as possible:

1. ``plan_models``: every file is read (encrypted ones authenticated) before the simulator
   starts: a missing file, a wrong key or a tampered header fails here, in milliseconds;
2. the runtime opens; each model gets its own bmruntime instance on that device (the first
   uses the ``Runtime`` itself, the others ``SiblingRuntime``s, see
   ``bmcrypt.runtime.sibling``), in the plan's order (largest runtime memory first);
3. each file goes through ``bmcrypt.loader.load_model`` (plain, or encrypted through the
   decrypt callback or from memory), device memory is measured before and after;
4. its nets are checked against the LLM layout (``NotAnLlm``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bmcrypt.chat.llm_nets import LlmLayout, read_layout
from bmcrypt.chat.load_plan import ModelPlan, plan_models
from bmcrypt.chat.memstat import DeviceMemoryMeter
from bmcrypt.crypto import Keyring
from bmcrypt.loader import Loaded, Strategy, load_model
from bmcrypt.runtime import Runtime, SiblingRuntime


@dataclass(frozen=True)
class LoadedModel:
    """One model on the device."""

    plan: ModelPlan
    runtime: Runtime
    loaded: Loaded
    layout: LlmLayout
    measured_bytes: int  # device memory its load took (bmruntime instance included)

    @property
    def name(self) -> str:
        return self.plan.name

    def memory_json(self) -> dict[str, Any]:
        """The model's memory figures, for reports."""
        dm = self.plan.device_mem
        return {
            "name": self.name, "path": str(self.plan.path), "state": self.plan.state,
            "strategy": self.loaded.strategy, "file_device_mem": dm.total,
            "weight": dm.weight, "instruct": dm.instruct, "runtime": dm.runtime,
            "shared_weight_predicted": self.plan.shared_bytes,
            "measured": self.measured_bytes,
        }


class ModelHost:
    """A ``Runtime`` with one or more LLMs loaded; a context manager."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]], keyring: Keyring | None = None,
                 *, strategy: Strategy = "callback",
                 runtime_dir: str | os.PathLike[str] | None = None) -> None:
        if not paths:
            raise ValueError("no model given")
        plans = plan_models(paths, keyring)
        self.models: list[LoadedModel] = []
        self._siblings: list[SiblingRuntime] = []
        self.runtime = Runtime(runtime_dir)
        _open_hosts.add(self)
        try:
            self.meter = DeviceMemoryMeter(self.runtime)
            for plan in plans:
                self._load(plan, keyring, strategy)
            self.loaded_bytes = self.meter.read().used
        except BaseException:
            self.close()
            raise

    def _load(self, plan: ModelPlan, keyring: Keyring | None, strategy: Strategy) -> None:
        before = self.meter.read().used
        rt: Runtime = self.runtime
        if self.models:
            rt = SiblingRuntime(self.runtime)
            self._siblings.append(rt)
        loaded = load_model(rt, plan.path, keyring, strategy=strategy)
        measured = self.meter.read().used - before
        layout = read_layout(rt, plan.name)
        self.models.append(LoadedModel(plan, rt, loaded, layout, measured))

    def model(self, name: str) -> LoadedModel:
        """The loaded model called ``name`` (its file stem)."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def memory_json(self) -> dict[str, Any]:
        """Device memory: per model (file figures, predicted sharing, measured), and in all."""
        return {"method": self.meter.method, "models": [m.memory_json() for m in self.models],
                "loaded": self.loaded_bytes, "in_use": self.meter.read().used}

    # ------------------------------------------------------------------ lifetime

    @property
    def closed(self) -> bool:
        return self.runtime.closed

    def close(self) -> None:
        """Destroy every bmruntime instance (siblings first), then release the device."""
        for sibling in reversed(self._siblings):
            with contextlib.suppress(Exception):  # the device must be released regardless
                sibling.close()
        self._siblings.clear()
        self.runtime.close()
        _open_hosts.discard(self)

    def __enter__(self) -> ModelHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_open_hosts: weakref.WeakSet[ModelHost] = weakref.WeakSet()


@atexit.register
def _close_forgotten_hosts() -> None:
    # Registered after bmcrypt.runtime's own hook, so it runs first (atexit is LIFO): the
    # siblings must go before that hook closes their device under them.
    for host in list(_open_hosts):
        with contextlib.suppress(Exception):
            host.close()
