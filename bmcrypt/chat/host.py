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

Residency: ``"all"`` (the default) keeps every model loaded; equal weights are on the device
once (libbmrt's per-device registry), each model's runtime memory (instructions, neurons, io)
stays allocated. ``"active"`` keeps one model loaded at a time, as LLM-TPU's share-cache demo
does with ``memory_prealloc``: ``activate(name)`` destroys the current model's bmruntime but
not its weights (``bmrt_destroy_without_coeff``) and loads the next one into memory allocated
for it (``Runtime.load_with_mem``); weights equal to the previous model's are found on the
device, not uploaded again. Only the next model's runtime memory is then allocated. Device
buffers that must outlive a switch (a KV cache) are allocated on ``runtime``, which holds no
model in this mode.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bmcrypt.chat.llm_nets import LlmLayout, read_layout
from bmcrypt.chat.load_plan import ModelPlan, plan_models
from bmcrypt.chat.memstat import DeviceMemoryMeter
from bmcrypt.crypto import Keyring
from bmcrypt.loader import Loaded, Strategy, load_model
from bmcrypt.runtime import Runtime, SiblingRuntime

Resident = Literal["all", "active"]


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
                 runtime_dir: str | os.PathLike[str] | None = None, resident: Resident = "all",
                 first: str | None = None) -> None:
        if not paths:
            raise ValueError("no model given")
        self.plans = plan_models(paths, keyring)
        self.resident = resident
        self.models: list[LoadedModel] = []
        self._siblings: list[SiblingRuntime] = []
        # "active" loads later models on demand, so it keeps the key for as long as it lives.
        self._keyring = keyring if resident == "active" else None
        self._strategy = strategy
        self.runtime = Runtime(runtime_dir)
        _open_hosts.add(self)
        try:
            self.meter = DeviceMemoryMeter(self.runtime)
            if resident == "all":
                for plan in self.plans:
                    self._load(plan, keyring, strategy)
            else:
                self._load(self._plan(first) if first else
                           min(self.plans, key=lambda p: p.given_index), keyring, strategy)
            self.loaded_bytes = self.meter.read().used
        except BaseException:
            self.close()
            raise

    def _plan(self, name: str) -> ModelPlan:
        for plan in self.plans:
            if plan.name == name:
                return plan
        raise KeyError(name)

    def _load(self, plan: ModelPlan, keyring: Keyring | None, strategy: Strategy) -> LoadedModel:
        before = self.meter.read().used
        rt: Runtime = self.runtime
        if self.models or self.resident == "active":
            rt = SiblingRuntime(self.runtime)
            self._siblings.append(rt)
        loaded = load_model(rt, plan.path, keyring, strategy=strategy,
                            with_mem=self.resident == "active")
        measured = self.meter.read().used - before
        layout = read_layout(rt, plan.name)
        model = LoadedModel(plan, rt, loaded, layout, measured)
        self.models.append(model)
        return model

    def activate(self, name: str) -> LoadedModel:
        """``"active"`` residency: make ``name`` the one loaded model (see the module docstring);
        with ``"all"``, just the loaded model of that name."""
        if self.resident == "all":
            return self.model(name)
        current = self.models[0]
        if current.name == name:
            return current
        plan = self._plan(name)
        sibling = self._siblings.pop()
        self.models.clear()
        sibling.close(keep_weights=True)
        return self._load(plan, self._keyring, self._strategy)

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
