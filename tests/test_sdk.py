"""The C SDK tarballs of `make sdk` (scripts/make-sdk.sh), unpacked as a user would unpack them.

x86_64 runs natively; aarch64 is cross-built with Debian's toolchain and runs under
`qemu-aarch64 -cpu max` (scripts/install-cross-deps.sh installs both; `make test` runs it). The
models are encrypted on this x86 host by the `bmcrypt` CLI, so every aarch64 check is also a
cross-architecture one. The builds stay in build/sdk-<arch> between runs (seconds when nothing
changed).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from clitools import bmcrypt
from conftest import MLP, ROOT

ARCHES = ("x86_64", "aarch64")
VERSION = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), re.M)[1]
# The multiarch root: its ld-linux-aarch64.so.1 comes from the same libc6:arm64 as the libc.so.6
# that programs load. /usr/aarch64-linux-gnu (libc6-arm64-cross) has an older dynamic loader, and
# that mix hangs in the first pthread_create.
QEMU_LD_PREFIX = "/"
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}
SDK_DOC = ROOT / "docs" / "sdk.md"
# The newest glibc symbol version libbmcrypt.so may need; docs/sdk.md says the same.
GLIBC_FLOOR = (2, 36)

# bmcrypt_status codes (include/bmcrypt.h): bmcrypt-verify exits with them.
OK, TRUNCATED, WRONG_KEY, TAMPERED = 0, 3, 6, 7
NO_KEY, KEY_FILE, NOT_ENCRYPTED, FOREIGN = 8, 9, 10, 11


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run scripts/install-cross-deps.sh "
                    "(`make test` does it)")
    return path


def run_on(arch: str, program: Path | str, *args: str | os.PathLike[str],
           env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a program of `arch`: natively on x86_64, under user-mode qemu (any CPU feature on)
    for aarch64. Only the variables in `env` reach it, besides PATH and HOME; under qemu it also
    gets BMCRYPT_TEST_EMULATED=1 (qemu-user accepts madvise advice it does not apply)."""
    guest_env = {k: os.environ[k] for k in ("PATH", "HOME") if k in os.environ}
    guest_env.update(env or {})
    if arch == "aarch64":
        guest_env["BMCRYPT_TEST_EMULATED"] = "1"
    command = [str(program), *map(str, args)]
    if arch == "aarch64":
        # -E keeps the guest's LD_LIBRARY_PATH away from qemu's own (x86) dynamic loader.
        extra = [a for k, v in guest_env.items() if k == "LD_LIBRARY_PATH"
                 for a in ("-E", f"{k}={v}")]
        command = [_require("qemu-aarch64"), "-L", QEMU_LD_PREFIX, "-cpu", "max", *extra, *command]
        guest_env.pop("LD_LIBRARY_PATH", None)
    return subprocess.run(command, env=guest_env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def tarballs() -> dict[str, Path]:
    """Both tarballs, built (or brought up to date) by the script `make sdk` runs."""
    for tool in ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++", "qemu-aarch64", "pkg-config"):
        _require(tool)
    done = subprocess.run([str(ROOT / "scripts" / "make-sdk.sh"), *ARCHES], capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-4000:]
    paths = {arch: ROOT / "dist" / f"bmcrypt-sdk-{VERSION}-{arch}.tar.gz" for arch in ARCHES}
    assert done.stdout.split() == [str(p) for p in paths.values()]
    return paths


@pytest.fixture(scope="session")
def sdk(tarballs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """arch -> the unpacked SDK directory (nothing of the build tree is used from it)."""
    roots = {}
    for arch, tarball in tarballs.items():
        into = tmp_path_factory.mktemp(f"sdk-{arch}")
        with tarfile.open(tarball) as t:
            assert {m.name.split("/")[0] for m in t.getmembers()} == {tarball.name[:-7]}
            t.extractall(into, filter="data")
        roots[arch] = into / tarball.name[: -len(".tar.gz")]
    return roots


@dataclass
class Models:
    """Files made on this x86 host by the bmcrypt CLI, named as tests/native/sdk_check.c says."""

    dir: Path

    def __truediv__(self, name: str) -> Path:
        return self.dir / name


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    m = Models(tmp_path_factory.mktemp("sdk-models"))
    for key in ("model.key", "wrong.key", "open.key"):
        assert bmcrypt("keygen", "-o", m / key).returncode == 0
    (m / "open.key").chmod(0o644)
    r = bmcrypt("encrypt", "--key", m / "model.key", "-o", m / "good.bmodel", MLP)
    assert r.returncode == 0, r.stderr
    good = (m / "good.bmodel").read_bytes()
    tampered = bytearray(good)
    tampered[len(good) // 2] ^= 1  # inside the weight envelope of the binary region
    (m / "tampered.bmodel").write_bytes(bytes(tampered))
    (m / "truncated.bmodel").write_bytes(good[:1000])
    (m / "plain.bmodel").write_bytes(MLP.read_bytes())
    foreign = bytearray(MLP.read_bytes())
    foreign[8:64] = bytes(b ^ 0xFF for b in foreign[8:64])  # the vendor's sample cipher
    (m / "foreign.bmodel").write_bytes(bytes(foreign))
    (m / "junk.bmodel").write_bytes(b"not a bmodel at all\n" * 10)
    # Format 2 for a key and an X25519 device (issue 19): the device opens it with its identity.
    r = bmcrypt("keygen", "--x25519", "-o", m / "device.identity")
    assert r.returncode == 0, r.stderr
    recipient = r.stdout.split()[0]
    assert recipient.startswith("bmcrypt1")
    r = bmcrypt("encrypt", "--key", m / "model.key", "-r", recipient, "-o", m / "fleet.bmodel", MLP)
    assert r.returncode == 0, r.stderr
    # The x86 CLI's own verdicts, so that both sides are seen to agree.
    assert bmcrypt("verify", "--key", m / "model.key", m / "tampered.bmodel").returncode == 5
    return m


def build_dir(arch: str) -> Path:
    return ROOT / "build" / f"sdk-{arch}" / "tests" / "native"


def doc_block(doc: Path, name: str) -> str:
    """The shell block of `doc` tagged `<!-- test: NAME -->`: the tests run the docs."""
    match = re.search(rf"<!-- test: {name} -->\s*```sh\n(.*?)```", doc.read_text(), re.S)
    assert match, f"{doc.name} has no block tagged 'test: {name}'"
    return match[1]


def sdk_doc_block(name: str) -> str:
    """A tagged block of docs/sdk.md; README.md repeats it word for word."""
    block = doc_block(SDK_DOC, name)
    assert doc_block(ROOT / "README.md", name) == block, "README.md and docs/sdk.md differ"
    return block


# ---------------------------------------------------------------- what the tarballs hold


@pytest.mark.parametrize("arch", ARCHES)
def test_the_tarball_holds_library_header_cmake_pkgconfig_readme_and_tool(sdk, arch: str):
    root = sdk[arch]
    for rel in ("lib/libbmcrypt.so", "include/bmcrypt.h", "lib/cmake/bmcrypt/bmcryptConfig.cmake",
                "lib/cmake/bmcrypt/bmcryptConfigVersion.cmake", "lib/pkgconfig/bmcrypt.pc",
                "README.md", "bin/bmcrypt-verify", "share/bmcrypt/bmcrypt-verify.c"):
        assert (root / rel).is_file(), rel
    assert (root / "share/bmcrypt/aarch64-linux-gnu.cmake").is_file() == (arch == "aarch64")
    header = (root / "include" / "bmcrypt.h").read_bytes()
    assert header == (ROOT / "include" / "bmcrypt.h").read_bytes()
    assert f"SDK {VERSION} for {arch}" in (root / "README.md").read_text()
    for binary in ("lib/libbmcrypt.so", "bin/bmcrypt-verify"):
        head = (root / binary).read_bytes()[:20]
        assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == ELF_MACHINE[arch]
    assert os.access(root / "bin" / "bmcrypt-verify", os.X_OK)


def _dynamic(lib: Path) -> str:
    return subprocess.run(["readelf", "-W", "--dynamic", "--dyn-syms", str(lib)],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("arch", ARCHES)
def test_the_library_needs_only_glibc_and_exports_only_the_c_api(sdk, arch: str):
    info = _dynamic(sdk[arch] / "lib" / "libbmcrypt.so")
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", info))
    assert needed <= {"libc.so.6", "libm.so.6", "ld-linux-aarch64.so.1",
                      "ld-linux-x86-64.so.2"}, needed  # Crypto++ and libstdc++ are inside
    versions = {tuple(map(int, v.split("."))) for v in re.findall(r"@GLIBC_([0-9.]+)", info)}
    assert max(versions) <= GLIBC_FLOOR, max(versions)
    assert f"glibc {GLIBC_FLOOR[0]}.{GLIBC_FLOOR[1]}" in SDK_DOC.read_text()
    exported = set()
    for line in info.splitlines():
        fields = line.split()
        # Num: Value Size Type Bind Vis Ndx Name
        if len(fields) >= 8 and fields[4] == "GLOBAL" and fields[6] != "UND":
            exported.add(fields[7].split("@")[0])
    assert exported, info[-2000:]
    assert {n for n in exported if not n.startswith("bmcrypt_")} == {"decrypt", "encrypt"}


def test_pkg_config_finds_the_sdk_wherever_it_is_unpacked(sdk, tmp_path: Path):
    moved = tmp_path / "some-where" / "else"
    shutil.copytree(sdk["aarch64"], moved, symlinks=True)
    for root in (sdk["aarch64"], moved):
        env = {**os.environ, "PKG_CONFIG_PATH": str(root / "lib" / "pkgconfig")}
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "bmcrypt"], env=env,
                               capture_output=True, text=True, check=True).stdout.split()
        dirs = {f[:2]: Path(f[2:]).resolve() for f in flags if f[:2] in ("-I", "-L")}
        assert dirs == {"-I": (root / "include").resolve(), "-L": (root / "lib").resolve()}
        assert "-lbmcrypt" in flags


# ---------------------------------------------------------------- the ARMv8 crypto paths


def test_armv8_aes_and_pmull_instructions_are_in_the_library(sdk):
    """Crypto++ is linked statically; its ARMv8 AES and PMULL code paths must be in what ships."""
    objdump = _require("aarch64-linux-gnu-objdump")
    text = subprocess.run([objdump, "-d", str(sdk["aarch64"] / "lib" / "libbmcrypt.so")],
                          capture_output=True, text=True, check=True).stdout
    ops = ("aese", "aesd", "aesmc", "pmull", "pmull2")
    counts = {op: len(re.findall(rf"\t{op}\s+v", text)) for op in ops}
    assert all(counts.values()), counts


def test_crypto_pp_picks_the_armv8_aes_and_pmull_paths_at_run_time(tmp_path: Path):
    """The same static Crypto++ that make-sdk.sh links, asked what it detects (qemu -cpu max)."""
    program = tmp_path / "cpu_features"
    source = ROOT / "tests" / "native" / "cpu_features.cpp"
    subprocess.run([_require("aarch64-linux-gnu-g++"), "-O2", str(source),
                    "/usr/lib/aarch64-linux-gnu/libcryptopp.a", "-o", str(program)],
                   check=True, capture_output=True, timeout=300)
    r = run_on("aarch64", program)
    assert r.returncode == 0, r.stderr
    assert dict(line.split() for line in r.stdout.splitlines()) == {
        "arch": "aarch64", "HasAES": "1", "HasPMULL": "1", "HasSHA2": "1"}


# ---------------------------------------------------------------- the native tests, per arch


@pytest.mark.parametrize("arch", ARCHES)
def test_shared_vectors_through_the_packaged_library(sdk, arch: str):
    r = run_on(arch, build_dir(arch) / "test_vectors", ROOT / "tests" / "vectors",
               env={"LD_LIBRARY_PATH": str(sdk[arch] / "lib")})
    assert r.returncode == 0 and ", 0 failed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


@pytest.mark.parametrize("arch", ARCHES)
def test_c_api_tests_through_the_packaged_library(sdk, arch: str):
    r = run_on(arch, build_dir(arch) / "test_plugin", ROOT / "tests" / "fixtures",
               env={"LD_LIBRARY_PATH": str(sdk[arch] / "lib")}, timeout=600)
    assert r.returncode == 0 and ", 0 failed" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]


# ---------------------------------------------------------------- bmcrypt-verify


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize(("key", "model", "status", "words"), [
    ("model.key", "good.bmodel", OK, ""),
    ("wrong.key", "good.bmodel", WRONG_KEY, "wrong key"),
    ("model.key", "tampered.bmodel", TAMPERED, "does not authenticate"),
    ("model.key", "truncated.bmodel", TRUNCATED, ""),
    ("model.key", "plain.bmodel", NOT_ENCRYPTED, ""),
    ("model.key", "foreign.bmodel", FOREIGN, "another tool"),
    ("open.key", "good.bmodel", KEY_FILE, "open.key"),
    (None, "good.bmodel", NO_KEY, ""),
    ("device.identity", "fleet.bmodel", OK, ""),
    ("model.key", "fleet.bmodel", OK, ""),
    ("device.identity", "good.bmodel", WRONG_KEY, "wrong key"),
], ids=["ok", "wrong-key", "tampered", "truncated", "plain", "foreign", "open-key-file", "no-key",
        "identity", "fleet-key", "identity-not-a-recipient"])
def test_bmcrypt_verify_on_files_encrypted_by_the_x86_cli(sdk, models: Models, arch: str,
                                                          key: str | None, model: str, status: int,
                                                          words: str):
    env = {"BMCRYPT_KEY_FILE": str(models / key)} if key else {}
    r = run_on(arch, sdk[arch] / "bin" / "bmcrypt-verify", model, env=env, cwd=models.dir)
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    if status == OK:
        assert r.stdout == f"{model}: OK\n" and r.stderr == ""
        return
    lines = r.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("bmcrypt-verify: error: "), r.stderr
    assert lines[1].startswith("bmcrypt-verify: hint: ")
    assert words in lines[0]
    key_text = (models / "model.key").read_text()
    assert key_text.split()[-1] not in r.stdout + r.stderr  # the key itself never shows


def test_bmcrypt_verify_usage(sdk):
    r = run_on("aarch64", sdk["aarch64"] / "bin" / "bmcrypt-verify")
    assert r.returncode == 64 and r.stderr.startswith("usage: BMCRYPT_KEY_FILE=")
    r = run_on("aarch64", sdk["aarch64"] / "bin" / "bmcrypt-verify", "--version")
    assert r.returncode == 0 and r.stdout == f"bmcrypt-verify {VERSION}\n"


# ---------------------------------------------------------------- a program built on the SDK alone


def test_a_c_program_built_against_the_unpacked_aarch64_sdk_alone(tarballs, models: Models,
                                                                  tmp_path: Path):
    """docs/sdk.md's cross-build lines, run as written (unpack, pkg-config, compile) on
    tests/native/sdk_check.c: only the tarball's header and library are used."""
    shutil.copy(tarballs["aarch64"], tmp_path)
    shutil.copy(ROOT / "tests" / "native" / "sdk_check.c", tmp_path / "app.c")
    env = {k: os.environ[k] for k in ("PATH", "HOME")}
    build = subprocess.run(["bash", "-euo", "pipefail", "-c", sdk_doc_block("cross-build")],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    app = tmp_path / "app"
    assert app.read_bytes()[18] == ELF_MACHINE["aarch64"]
    r = run_on("aarch64", app, models.dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^sdk_check: \d+ checks, 0 failed$", r.stdout, re.M), r.stdout
    codes = {what: int(code) for what, code in re.findall(r"^(.+?): code (\d+) ", r.stdout, re.M)}
    assert codes["right key"] == OK
    assert codes["wrong key"] == WRONG_KEY and codes["tampered"] == TAMPERED


def test_the_cmake_package_of_the_unpacked_aarch64_sdk(tarballs, models: Models, tmp_path: Path):
    """docs/sdk.md's CMakeLists.txt and cross-build lines: find_package(bmcrypt) from the SDK."""
    shutil.copy(tarballs["aarch64"], tmp_path)
    shutil.copy(ROOT / "tests" / "native" / "sdk_check.c", tmp_path / "app.c")
    lists = re.search(r"<!-- test: cmake-lists -->\s*```cmake\n(.*?)```", SDK_DOC.read_text(), re.S)
    assert lists
    (tmp_path / "CMakeLists.txt").write_text(lists[1])
    env = {k: os.environ[k] for k in ("PATH", "HOME")}
    script = doc_block(SDK_DOC, "cross-build").splitlines()[0] + "\n" + doc_block(
        SDK_DOC, "cmake-cross-build")  # the same `tar xzf` first
    build = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    app = tmp_path / "build" / "app"
    assert app.read_bytes()[18] == ELF_MACHINE["aarch64"]
    r = run_on("aarch64", app, models.dir)
    assert r.returncode == 0 and re.search(r"^sdk_check: \d+ checks, 0 failed$", r.stdout, re.M), (
        r.stdout + r.stderr)


# ---------------------------------------------------------------- emulated speed (a report)


def test_emulated_decrypt_throughput_is_reported(sdk, capsys):
    """Decrypt speed under qemu-aarch64: says nothing about a device, only that it runs.

    bench_decrypt exits non-zero if the decrypted bytes differ. Its lines are printed with the
    label EMULATED (run pytest with -s to see them; docs/sdk.md has a measured run).
    """
    r = run_on("aarch64", build_dir("aarch64") / "bench_decrypt", "8", "1", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "open_envelope, 1 thread" in r.stdout
    with capsys.disabled():
        print("\nEMULATED (qemu-aarch64 -cpu max, not a device):\n" + r.stdout)
