"""`bmcrypt doctor`: why won't my encrypted model load here? Facts about this machine.

Plain data, no terminal code: the runtime (found or not, its version when the path says it), the
plugin (path, its exported C API against include/bmcrypt.h), the key sources in sight (key ids
only, never a key), the crypto (Crypto++ version, the CPU's AES and carry-less multiply
instructions), and, for a model, a trial verification with those keys.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bmcrypt.errors import BmcryptError

#: The CPU flags (/proc/cpuinfo) the AES-GCM code paths of Crypto++ use when present.
CRYPTO_FLAGS = {
    "aes": "AES-NI (x86) / AES (Arm): the AES rounds",
    "pclmulqdq": "PCLMUL (x86): GHASH, GCM's authentication",
    "pmull": "PMULL (Arm): GHASH, GCM's authentication",
    "sha_ni": "SHA extensions (x86): SHA-256 of weights and backups",
    "sha2": "SHA-2 (Arm): SHA-256 of weights and backups",
    "avx2": "AVX2 (x86)",
}
_API = re.compile(r"^BMCRYPT_API\s+[\w\s\*]*?\b(\w+)\s*\(", re.MULTILINE)
_VERSION_IN_PATH = re.compile(r"(tpu_mlir|libsophon)-(\d[\w.]*)")


@dataclass
class Check:
    """One finding: ``ok`` False means this can keep a model from loading; ``error`` says why."""

    ok: bool
    facts: dict[str, Any] = field(default_factory=dict)
    error: BmcryptError | None = None


def runtime_check(runtime_dir: str | os.PathLike[str] | None = None) -> Check:
    """Is the vendor runtime there, where, and which version (when its path names one)?"""
    from bmcrypt.runtime.locate import find_lib_dir

    try:
        lib = find_lib_dir(runtime_dir)
    except BmcryptError as exc:
        return Check(False, {"found": False, "lib_dir": None, "version": None}, exc)
    match = _VERSION_IN_PATH.search(str(lib.resolve()))
    return Check(True, {"found": True, "lib_dir": str(lib),
                        "version": f"{match.group(1)} {match.group(2)}" if match else None})


def plugin_check() -> Check:
    """libbmcrypt.so: where it is, whether it loads, and which functions of bmcrypt.h it has."""
    from bmcrypt.plugin import include_dir, plugin_path

    try:
        path = plugin_path()
    except BmcryptError as exc:
        return Check(False, {"path": None}, exc)
    header = include_dir() / "bmcrypt.h"
    declared = _API.findall(header.read_text()) if header.is_file() else []
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:  # a missing dependency, a foreign architecture
        return Check(False, {"path": str(path), "loads": False}, BmcryptError(
            f"libbmcrypt.so does not load: {exc}", hint="reinstall bmcrypt on this machine"))
    missing = [name for name in declared if not hasattr(lib, name)]
    version = None
    if hasattr(lib, "bmcrypt_version"):
        lib.bmcrypt_version.restype = ctypes.c_char_p
        version = lib.bmcrypt_version().decode()
    facts = {"path": str(path), "loads": True, "version": version, "header": str(header),
             "api_declared": len(declared), "api_missing": missing}
    if missing:
        return Check(False, facts, BmcryptError(
            f"libbmcrypt.so lacks {', '.join(missing)} of bmcrypt.h",
            hint="the plugin and the header come from different builds; reinstall bmcrypt"))
    return Check(True, facts)


def key_sources(key_files: Sequence[Path] = (), env: dict[str, str] | None = None) -> Check:
    """The keys a command (or the plugin, through $BMCRYPT_KEY_FILE) would use: ids only."""
    from bmcrypt.keys import ENV_KEY_FILE, ENV_PASSPHRASE, load_key_file

    env = dict(os.environ) if env is None else env
    sources: list[dict[str, Any]] = []
    named = [("--key", str(p)) for p in key_files]
    if env.get(ENV_KEY_FILE):
        named.append((f"${ENV_KEY_FILE}", env[ENV_KEY_FILE]))
    first_problem: BmcryptError | None = None
    for origin, path in named:
        try:
            sources.append({"source": origin, "path": path,
                            "key_id": load_key_file(path).key_id_hex, "problem": None})
        except BmcryptError as exc:
            first_problem = first_problem or exc
            sources.append({"source": origin, "path": path, "key_id": None,
                            "problem": exc.message})
    if not env.get(ENV_KEY_FILE):  # what the plugin in the vendor runtime reads: say it is unset
        sources.append({"source": f"${ENV_KEY_FILE}", "path": None, "key_id": None,
                        "problem": "not set"})
    # A passphrase is never read here: only whether one is set (its key id differs per file).
    sources.append({"source": f"${ENV_PASSPHRASE}", "path": None, "key_id": None,
                    "problem": None if env.get(ENV_PASSPHRASE) else "not set"})
    return Check(first_problem is None, {"sources": sources}, first_problem)


def crypto_check(cpuinfo: Path = Path("/proc/cpuinfo")) -> Check:
    """The Crypto++ build, and which of the CPU instructions it uses this machine has."""
    from bmcrypt import _native
    from bmcrypt.crypto.envelope_header import VERSION

    flags: set[str] = set()
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.split(":")[0].strip() in ("flags", "Features"):
                flags.update(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    present = {name: name in flags for name in CRYPTO_FLAGS}
    return Check(True, {"cryptopp_version": _native.cryptopp_version(),
                        "native_version": _native.version(), "format_version": VERSION,
                        "cpu_features": present,
                        "cpu_features_in_use": [CRYPTO_FLAGS[n] for n, on in present.items()
                                                if on]})


def trial_verify(model: Path, keyring: Callable[[], Any]) -> Check:
    """Verify `model` as `bmcrypt verify` would (read only, no lock), with the keys in sight."""
    from bmcrypt.protect.container import FileState, file_state
    from bmcrypt.protect.opened import open_encrypted
    from bmcrypt.protect.unseal import unseal_file

    try:
        state = file_state(model)
        facts: dict[str, Any] = {"path": str(model), "state": state.value}
        if state != FileState.BMCRYPT:
            return Check(True, {**facts, "verified": None})
        with open_encrypted(model, keyring()) as opened:
            report = unseal_file(opened, None)
        return Check(True, {**facts, "verified": True, "key_id": report.key_id})
    except BmcryptError as exc:
        return Check(False, {"path": str(model), "verified": False}, exc)
