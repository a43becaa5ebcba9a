"""What the benchmark runs with: tools, cipher libraries, keys, and a description of the machine."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from models import ROOT, cache_dir


@dataclass(frozen=True)
class Tools:
    python: str  # the interpreter bmcrypt is installed in
    bmcrypt: str
    vendor: Path  # holds bin/model_tool and lib/
    plugin: Path  # libbmcrypt.so
    copy_lib: Path  # bench/ciphers/copy_cipher.c
    gcm_lib: Path  # bench/ciphers/cryptopp_gcm.cpp
    engines: Path  # bench/ciphers/gcm_engines.cpp (an executable)
    decrypt_memory: Path  # bench/ciphers/decrypt_memory.cpp (an executable; dlopens `plugin`)
    sha_lanes: Path | None  # bench/ciphers/sha_lanes.c (an executable; x86-64 with SHA-NI only)
    work: Path
    key1: Path
    key2: Path

    @property
    def model_tool(self) -> str:
        return str(self.vendor / "bin" / "model_tool")


def _build(source: Path, out: Path, compiler: list[str], libs: list[str],
           shared: bool = True) -> Path:
    if not out.exists() or out.stat().st_mtime < source.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        kind = ["-shared", "-fPIC"] if shared else []
        subprocess.run([*compiler, "-O2", *kind, "-o", str(out), str(source), *libs], check=True)
    return out


def prepare(work: Path) -> Tools:
    """Find the tools, build the cipher libraries, make fresh keys in `work`."""
    bindir = Path(sys.executable).parent
    bmcrypt = bindir / "bmcrypt"
    if not bmcrypt.exists():
        raise SystemExit(f"bench: no bmcrypt next to {sys.executable}; run it with the venv "
                         "bmcrypt is installed in (make bench)")
    vendor = Path(subprocess.check_output([str(ROOT / "scripts" / "fetch-runtime.sh")],
                                          text=True).strip().splitlines()[-1])
    plugin = Path(subprocess.check_output(
        # -P: the installed package, not the source tree of the current directory
        [sys.executable, "-P", "-c",
         "from bmcrypt.plugin import plugin_path; print(plugin_path())"],
        text=True).strip())
    ciphers = ROOT / "bench" / "ciphers"
    build = cache_dir() / "build"
    copy_lib = _build(ciphers / "copy_cipher.c", build / "copy_cipher.so", ["cc"], [])
    gcm_lib = _build(ciphers / "cryptopp_gcm.cpp", build / "cryptopp_gcm.so", ["g++"],
                     ["-lcryptopp"])
    engines = _build(ciphers / "gcm_engines.cpp", build / "gcm_engines", ["g++"],
                     ["-lcryptopp", "-lcrypto"], shared=False)
    decrypt_memory = _build(ciphers / "decrypt_memory.cpp", build / "decrypt_memory", ["g++"],
                            ["-pthread", "-ldl"], shared=False)
    try:
        sha_lanes: Path | None = _build(ciphers / "sha_lanes.c", build / "sha_lanes",
                                        ["cc", "-Wno-deprecated-declarations"], ["-lcrypto"],
                                        shared=False)
    except subprocess.CalledProcessError:  # not x86-64: the evidence row is left out
        sha_lanes = None
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    keys = []
    for name in ("key1", "key2"):
        subprocess.run([str(bmcrypt), "keygen", "-o", str(work / name)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        keys.append(work / name)
    return Tools(sys.executable, str(bmcrypt), vendor, plugin, copy_lib, gcm_lib, engines,
                 decrypt_memory, sha_lanes, work, *keys)


def _first_line(argv: list[str]) -> str:
    try:
        return subprocess.check_output(argv, text=True, stderr=subprocess.STDOUT).splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def machine(work: Path) -> dict[str, str]:
    """The facts a reader needs to compare these numbers with theirs."""
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    accel = " ".join(x for x in ("aes", "pclmulqdq", "vaes", "vpclmulqdq", "avx512f", "sha_ni")
                     if x in flags)
    if "hypervisor" in flags:
        accel += "; a virtual machine"
    df = subprocess.run(["df", "-hT", str(work)], capture_output=True, text=True).stdout
    rows = df.splitlines()
    fs = " ".join(rows[-1].split()[:2]) if len(rows) > 1 else "?"
    from bmcrypt import _native

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores ({accel})",
        "memory": f"{mem_kb / 2**20:.1f} GiB",
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "filesystem": f"{fs} (models and outputs)",
        "python": platform.python_version(),
        "crypto++": _native.cryptopp_version(),
        "openssl": _first_line(["openssl", "version"]),
        "bmcrypt": _first_line([str(Path(sys.executable).parent / "bmcrypt"), "--version"]),
    }
