"""Load plain or encrypted bmodels into the vendor runtime, decrypting only in memory.

Two strategies for bmcrypt files:

- **callback** (default): the native core verifies the whole file first (header, FlatBuffer,
  every weight envelope, the clear-region digest: what the runtime's per-region callback cannot
  check), then the runtime loads it through `bmrt_load_bmodel_with_decrypt` with bmcrypt's C
  decrypt callback. A wrong key or a tampered file is refused before the runtime sees a byte, so
  the runtime never hits a failing callback halfway (which leaves it unable to shut down).
- **memory**: the file is decrypted and authenticated into one buffer in memory and handed to
  `bmrt_load_bmodel_data` — for runtimes without the decrypt API, and for builds whose weight
  upload skips the callback.

Plaintext never touches the disk in either.

A file that demands a licence (FORMAT.md §8.5) opens with the licences on the keyring
(`bmcrypt.licence.with_licences`); for licences bound to devices the loader asks the device its
serial number (`Runtime.device_sn`, or a brief `read_device_sn` before the runtime is open).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bmcrypt.crypto import Keyring, Secret, wipe
from bmcrypt.crypto.secret import register_with_native
from bmcrypt.licence.check import DeviceSn, licences_of
from bmcrypt.protect.container import FileState, require_openable
from bmcrypt.protect.opened import open_encrypted
from bmcrypt.protect.unseal import unseal_to_memory
from bmcrypt.runtime import Runtime
from bmcrypt.runtime.serial import read_device_sn

Strategy = Literal["callback", "memory"]
STRATEGIES: tuple[Strategy, ...] = ("callback", "memory")


@dataclass(frozen=True)
class Loaded:
    """What `load_model` did."""

    path: Path
    state: str  # "plain" or "bmcrypt"
    strategy: str  # "plain", "callback" or "memory"
    nets: tuple[str, ...]  # the nets this file added to the runtime


def load_model(rt: Runtime, path: str | os.PathLike[str], keyring: Keyring | None = None, *,
               strategy: Strategy = "callback", with_mem: bool = False) -> Loaded:
    """Load `path` into `rt`: plain files as they are, bmcrypt files with `keyring`.

    When the runtime is not open yet, prefer `prepare` first and `Prepared.load_into` once it
    is: the simulator's threads compete for the CPUs while a runtime is open. `with_mem`: see
    `Prepared.load_into`. Device-bound licences are checked against `rt`'s device.
    """
    with prepare(path, keyring, strategy=strategy, device_sn=rt.device_sn) as prepared:
        return prepared.load_into(rt, with_mem=with_mem)


@contextmanager
def prepare(path: str | os.PathLike[str], keyring: Keyring | None = None, *,
            strategy: Strategy = "callback",
            device_sn: DeviceSn | None = None) -> Iterator[Prepared]:
    """Do everything a load needs that does not need the runtime: check the file's state,
    verify every byte (callback) or decrypt it into memory (memory). Secrets and plaintext live
    only inside the ``with`` block: native keys are cleared, the buffer is wiped on exit.

    `device_sn`: the serial number of the device the model goes to (or a function that reads
    it), for device-bound licences; by default device 0 is asked (`read_device_sn`), and only
    when a licence on the keyring lists serial numbers.
    """
    path = Path(path)
    state = require_openable(path, keyring)
    _on_device(keyring, device_sn)
    if state == FileState.PLAIN:
        yield Prepared(path, state, "plain")
        return
    assert keyring is not None
    if strategy == "memory":
        with open_encrypted(path, keyring) as opened:
            plain = unseal_to_memory(opened)
        try:
            yield Prepared(path, state, "memory", plain)
        finally:
            wipe(plain)  # do not leave the weights lying in freed memory
    elif strategy == "callback":
        from bmcrypt import _native

        _native.clear_keys()
        _native.clear_licences()
        try:
            for secret in _secrets(keyring):
                register_with_native(secret)
            _register_licences(keyring)
            _native.verify_file(path)  # everything, before the runtime sees anything
            yield Prepared(path, state, "callback")
        finally:
            _native.clear_keys()
            _native.clear_licences()
    else:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {STRATEGIES}")


@dataclass
class Prepared:
    """A model ready to go into a runtime (see `prepare`)."""

    path: Path
    state: str
    strategy: str
    plain: bytearray | None = None  # the memory strategy's decrypted model

    def load_into(self, rt: Runtime, *, with_mem: bool = False) -> Loaded:
        """Load into ``rt``. ``with_mem``: into device memory allocated for this model
        (``Runtime.load_with_mem``), freed with ``rt``, where the runtime can (plain files and
        the memory strategy; the decrypt callback has no such variant)."""
        before = set(rt.net_names())
        with_mem = with_mem and rt.has_mem_api
        if self.strategy == "plain":
            rt.load_with_mem(self.path) if with_mem else rt.load(self.path)
        elif self.strategy == "memory":
            assert self.plain is not None
            rt.load_with_mem(self.plain) if with_mem else rt.load_bytes(self.plain)
        else:
            from bmcrypt import _native

            rt.load_with_decrypt(self.path, _native.decrypt_callback_address())
        added = tuple(n for n in rt.net_names() if n not in before)
        return Loaded(self.path, self.state, self.strategy, added)


def _secrets(keyring: Keyring) -> list[Secret]:
    from bmcrypt.crypto.filekeys import secrets_of

    return secrets_of(keyring)


def _on_device(keyring: Keyring | None, device_sn: DeviceSn | None) -> None:
    """The keyring's licences learn where the serial number comes from: this load's device."""
    licences = licences_of(keyring)
    if licences and not licences.has_sn_source:
        licences.set_device_sn(device_sn if device_sn is not None else read_device_sn)


def _register_licences(keyring: Keyring) -> None:
    """The callback strategy's native check sees the same licences and serial number."""
    from bmcrypt import _native

    licences = licences_of(keyring)
    for lic in licences.licences:
        _native.register_licence(lic.raw, lic.source)
    if licences.binds_devices:  # only then is the device asked (it costs a device open)
        _native.set_device_sn(licences.device_sn())


@dataclass(frozen=True)
class LoadCheck:
    """What `check_load_and_run` saw: nets, bmrt_trace errors, and the outputs of one run."""

    strategy: str
    nets: tuple[str, ...]
    trace_errors: int
    outputs: tuple[object, ...]  # numpy arrays


def check_load_and_run(path: str, key_file: str | None = None, *, strategy: Strategy = "callback",
                       net: str | None = None, inputs: dict | None = None,
                       runtime_dir: str | None = None) -> LoadCheck:
    """Load `path` into a fresh runtime, check every weight on the device (`bmrt_trace`) and
    optionally run `net` on `inputs`. Picklable in and out, for `bmcrypt.runtime.run_isolated`."""
    from bmcrypt.keys import load_key_file

    keyring = load_key_file(key_file) if key_file else None
    with prepare(path, keyring, strategy=strategy) as prepared, Runtime(runtime_dir) as rt:
        loaded = prepared.load_into(rt)
        outputs = tuple(rt.run(net, inputs or {})) if net else ()
        return LoadCheck(loaded.strategy, loaded.nets, rt.trace(), outputs)
