"""`bmcrypt doctor`: render the findings of bmcrypt.doctor, exit non-zero on the first problem."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bmcrypt.cli import jsondoc, mode, output
from bmcrypt.cli.options import (
    JsonOut,
    KeyRing,
    Licences,
    Quiet,
    RuntimeDir,
    UsePassphrase,
    Verbose,
)

if TYPE_CHECKING:
    from bmcrypt.doctor import Check


def doctor(
    model: Annotated[Path | None, typer.Argument(
        metavar="[MODEL]", help="Also try to verify this model with the keys in sight.")] = None,
    key: KeyRing = None,
    passphrase: UsePassphrase = False,
    licence: Licences = None,
    runtime: RuntimeDir = None,
    json_: JsonOut = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Why won't my encrypted model load here? Runtime, plugin, keys, crypto, a trial verify."""
    from bmcrypt import doctor as dr
    from bmcrypt.cli.options import keyring, licensed

    checks: dict[str, Check] = {
        "runtime": dr.runtime_check(runtime),
        "plugin": dr.plugin_check(),
        "keys": dr.key_sources(key or []),
        "crypto": dr.crypto_check(),
    }
    if model is not None:
        checks["model"] = dr.trial_verify(
            model, lambda: licensed(keyring(key, passphrase), licence))
    problem = next((c.error for c in checks.values() if c.error is not None), None)
    if mode.current.json:
        jsondoc.emit(problem is None, jsondoc.error_json(problem) if problem else None,
                     **{name: _json(c) for name, c in checks.items()})
    elif not mode.current.quiet:
        for name, check in checks.items():
            _render(name, check)
    if problem is not None:
        raise problem


def _json(check: Check) -> dict[str, Any]:
    return {"ok": check.ok, **check.facts,
            "problem": jsondoc.error_json(check.error) if check.error else None}


def _render(name: str, check: Check) -> None:
    f = check.facts
    mark = "ok" if check.ok else "PROBLEM"
    if name == "runtime":
        where = f"{f['lib_dir']} ({f['version'] or 'version unknown'})" if f["found"] \
            else "not found"
        line = f"runtime   {where}"
    elif name == "plugin":
        line = f"plugin    {f.get('path') or 'not installed'}"
        if f.get("loads"):
            line += (f" (version {f['version']}, {f['api_declared']} functions of bmcrypt.h, "
                     f"{len(f['api_missing'])} missing)")
    elif name == "keys":
        seen = [f"{s['source']} {s['key_id'] or s['problem']}" for s in f["sources"]]
        line = f"keys      {'; '.join(seen)}"
    elif name == "crypto":
        used = ", ".join(n for n, on in f["cpu_features"].items() if on) or "none"
        line = (f"crypto    Crypto++ {f['cryptopp_version']}, format v{f['format_version']}, "
                f"CPU: {used}")
    else:
        verdict = {True: f"verified with key {f.get('key_id')}", False: "does not verify",
                   None: f"{f.get('state')}: nothing to verify"}[f.get("verified")]
        line = f"model     {f['path']}: {verdict}"
    output.data(f"{line}  [{mark}]")
    if check.error is not None:
        output.data(f"          {check.error.message}")
