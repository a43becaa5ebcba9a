"""The native side (csrc/): the C++ test programs of tests/native/, built here with cmake (once as
shipped, once under AddressSanitizer + UBSan), the plugin against the vendor runtime, and the
`_native` extension from Python (the installed one, or else the one of this build).

Builds go to a temporary directory; set BMCRYPT_NATIVE_BUILD_DIR to keep them between runs
(incremental rebuilds take seconds).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
FIXTURES = ROOT / "tests" / "fixtures"
MLP = FIXTURES / "mlp_bm1684x_f16_nokernel.bmodel"
QWEN = FIXTURES / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
SANITIZE = "-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

NATIVE_TESTS = {
    "test_vectors": [VECTORS],
    "test_core": [FIXTURES],
    "test_format2": [FIXTURES],
    "test_plugin": [FIXTURES],
}

pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")


def _installed_native() -> ModuleType | None:
    try:
        from bmcrypt import _native  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _native


def _build(build_dir: Path, targets: list[str], *options: str) -> Path:
    """Configure the project with its native tests into build_dir and build `targets`."""
    jobs = str(os.cpu_count() or 2)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = ["cmake", "-S", str(ROOT), "-B", str(build_dir), *generator,
                 "-DBMCRYPT_BUILD_TESTS=ON", f"-DPython_EXECUTABLE={sys.executable}", *options]
    build = ["cmake", "--build", str(build_dir), "-j", jobs, "--target", *targets]
    for cmd in (configure, build):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return build_dir


def _build_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    keep = os.environ.get("BMCRYPT_NATIVE_BUILD_DIR")
    return Path(keep) / name if keep else tmp_path_factory.mktemp(name)


@pytest.fixture(scope="session")
def native_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Release build of the tests (and of _native when the package has none installed)."""
    options = ["-DCMAKE_BUILD_TYPE=Release"]
    targets = [*NATIVE_TESTS, "test_runtime", "bmcrypt"]
    if _installed_native() is None:
        import pybind11

        options.append(f"-Dpybind11_DIR={pybind11.get_cmake_dir()}")
        targets.append("_native")
    else:
        options.append("-DBMCRYPT_BUILD_PYTHON=OFF")
    return _build(_build_dir(tmp_path_factory, "native-release"), targets, *options)


@pytest.fixture(scope="session")
def asan_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(_build_dir(tmp_path_factory, "native-asan"), list(NATIVE_TESTS),
                  "-DCMAKE_BUILD_TYPE=Debug",
                  "-DBMCRYPT_BUILD_PYTHON=OFF", f"-DCMAKE_CXX_FLAGS={SANITIZE}",
                  f"-DCMAKE_EXE_LINKER_FLAGS={SANITIZE}", f"-DCMAKE_SHARED_LINKER_FLAGS={SANITIZE}")


def _run(program: Path, *args: str | Path, env: dict[str, str] | None = None,
         timeout: int = 300) -> str:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("BMCRYPT_")}
    run_env.update(env or {})
    done = subprocess.run([str(program), *map(str, args)], capture_output=True, text=True,
                          env=run_env, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{program.name} failed ({done.returncode}):\n{output[-6000:]}"
    return output


@pytest.mark.parametrize("name", NATIVE_TESTS)
def test_native_program(native_build: Path, name: str) -> None:
    out = _run(native_build / "tests" / "native" / name, *NATIVE_TESTS[name])
    assert ", 0 failed" in out


@pytest.mark.slow
def test_native_programs_under_sanitizers(asan_build: Path) -> None:
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:strict_string_checks=1",
           "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    for name, args in NATIVE_TESTS.items():
        out = _run(asan_build / "tests" / "native" / name, *args, env=env)
        assert ", 0 failed" in out and "Sanitizer" not in out, out[-3000:]


def test_plugin_exports_only_the_c_api(native_build: Path) -> None:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm is not installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(native_build / "csrc" / "libbmcrypt.so")],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert {"decrypt", "encrypt", "bmcrypt_load_bmodel", "bmcrypt_last_error"} <= names
    assert all(n in ("decrypt", "encrypt") or n.startswith("bmcrypt_") for n in names), names


# ---------------------------------------------------------------- the vendor runtime


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.parametrize("fixture", [MLP, QWEN], ids=lambda p: p.stem)
def test_load_bmodel_into_the_runtime(native_build: Path, vendor_dir: Path, fixture: Path) -> None:
    """bmcrypt_load_bmodel verifies, then the runtime loads; every coeff on the device matches."""
    lib = vendor_dir / "lib"
    out = _run(native_build / "tests" / "native" / "test_runtime", lib, "load", fixture,
               env={"LD_LIBRARY_PATH": str(lib)})
    assert "Total 0 errors" in out and ", 0 failed" in out


@pytest.mark.runtime
@pytest.mark.slow
@pytest.mark.parametrize("fixture", [MLP, QWEN], ids=lambda p: p.stem)
def test_format2_for_three_recipients_loads(native_build: Path, vendor_dir: Path, fixture: Path,
                                            tmp_path: Path) -> None:
    """A format 2 file for a key, a passphrase and an X25519 identity: bmcrypt_load_bmodel loads
    it with each of them (and refuses another key); the vendor's own
    bmrt_load_bmodel_with_decrypt_lib loads it through the plugin with the identity file in
    BMCRYPT_KEY_FILE (the DK of E1 opens E2 and the weights, region by region)."""
    lib, plugin = vendor_dir / "lib", native_build / "csrc" / "libbmcrypt.so"
    program = native_build / "tests" / "native" / "test_runtime"
    model, identity = tmp_path / "v2.bmodel", tmp_path / "device.identity"
    out = _run(program, lib, "load2", fixture, model, identity, env={"LD_LIBRARY_PATH": str(lib)})
    assert out.count("Total 0 errors") == 3 and ", 0 failed" in out
    assert model.read_bytes()[12] == 2  # E1's format version
    out = _run(program, lib, "lib", model, plugin,
               env={"LD_LIBRARY_PATH": str(lib), "BMCRYPT_KEY_FILE": str(identity)})
    assert "Total 0 errors" in out and ", 0 failed" in out


@pytest.mark.runtime
@pytest.mark.slow
def test_model_tool_encrypts_with_the_plugin(native_build: Path, vendor_dir: Path,
                                             tmp_path: Path) -> None:
    """model_tool --encrypt -lib libbmcrypt.so; the result verifies and loads through the vendor's
    own bmrt_load_bmodel_with_decrypt_lib; model_tool --decrypt gives the plain model back (the
    same binary region; model_tool rewrites the FlatBuffer)."""
    lib, plugin = vendor_dir / "lib", native_build / "csrc" / "libbmcrypt.so"
    key = tmp_path / "k.key"
    key.write_text("bmcrypt-key-v1\nkey: " + os.urandom(32).hex() + "\n")
    key.chmod(0o600)
    env = {"LD_LIBRARY_PATH": str(lib), "BMCRYPT_KEY_FILE": str(key)}
    encrypted, decrypted = tmp_path / "enc.bmodel", tmp_path / "dec.bmodel"
    model_tool = vendor_dir / "bin" / "model_tool"
    _run(model_tool, "--encrypt", "-model", MLP, "-net", "mlp", "-lib", plugin, "-o", encrypted,
         env=env)
    out = _run(native_build / "tests" / "native" / "test_runtime", lib, "lib", encrypted, plugin,
               env=env)
    assert "Total 0 errors" in out and ", 0 failed" in out
    _run(model_tool, "--decrypt", "-model", encrypted, "-lib", plugin, "-o", decrypted, env=env)
    plain, original = decrypted.read_bytes(), MLP.read_bytes()
    assert plain[:8] == original[:8] and len(plain) == len(original)
    fb_size = int.from_bytes(plain[8:12], "little")
    assert plain[64 + fb_size:] == original[64 + int.from_bytes(original[8:12], "little"):]


# ---------------------------------------------------------------- _native from Python


@pytest.fixture(scope="session")
def native_module(request: pytest.FixtureRequest) -> ModuleType:
    installed = _installed_native()
    if installed is not None:
        return installed
    build: Path = request.getfixturevalue("native_build")
    so = next((build / "csrc").glob("_native*.so"))
    # Loaded without entering sys.modules: the rest of the suite keeps seeing no _native.
    spec = importlib.util.spec_from_file_location("bmcrypt._native", so)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def native(native_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.delenv("BMCRYPT_KEY_FILE", raising=False)
    monkeypatch.delenv("BMCRYPT_PASSPHRASE", raising=False)
    native_module.clear_keys()
    yield native_module
    native_module.clear_keys()
    native_module.set_threads(0)


def _vectors() -> list[Path]:
    return sorted(VECTORS.glob("*.txt"))


def _read_vector(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(": ")
            fields[name] = value
    return fields


def test_native_opens_every_vector(native: ModuleType) -> None:
    from bmcrypt import errors

    expected_class = {"wrong_key": errors.WrongKey, "tampered": errors.Tampered,
                      "truncated": errors.Truncated, "corrupt": errors.Corrupt,
                      "unsupported_version": errors.UnsupportedVersion}
    assert _vectors()
    for path in _vectors():
        v = _read_vector(path)
        native.clear_keys()
        if "key" in v:
            native.register_key(bytes.fromhex(v["key"]))
        elif "identity" in v:
            native.register_identity(bytes.fromhex(v["identity"]))
        else:
            native.register_passphrase(v["passphrase"])
        if "header" in v:  # version 2: its E1 first, whose data key then opens the envelope
            assert len(native.open(bytes.fromhex(v["header"]))) == 56, path.stem
        envelope = bytes.fromhex(v["envelope"])
        if v["expect"] == "success":
            assert native.open(envelope) == bytes.fromhex(v["plaintext"]), path.stem
            out = bytearray(len(v["plaintext"]) // 2 + 3)
            assert native.open_into(memoryview(envelope), out) == len(out) - 3
            assert native.parse_header(envelope).kind == int(v["kind"])
        else:
            with pytest.raises(expected_class[v["expect"]]):
                native.open(envelope)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 5 * 4096 + 3])
def test_python_opens_what_native_seals(native: ModuleType, size: int) -> None:
    from bmcrypt.crypto import UserKey, parse_header, unseal

    k = os.urandom(32)
    keys = native.FileKeys.create(key=k)
    data = os.urandom(size)
    for kind in (0, 3):
        envelope = keys.seal(bytearray(data), kind=kind, seg_log2=12)
        assert len(envelope) == native.envelope_size(size, 12)
        assert unseal(envelope, UserKey(k)) == data
        assert parse_header(envelope).kind == kind
        assert parse_header(envelope).file_id == keys.file_id
    out = bytearray(native.envelope_size(size, 12) + 1)
    assert keys.seal_into(data, out, kind=3, seg_log2=12) == len(out) - 1
    assert unseal(bytes(out[:-1]), UserKey(k)) == data
    assert keys.open(out[:-1]) == data
    target = bytearray(size + 2)
    assert keys.open_into(memoryview(out)[:-1], memoryview(target)[1:]) == size
    assert target[1:size + 1] == data


def test_native_opens_what_python_seals(native: ModuleType) -> None:
    from bmcrypt.crypto import Kind, Passphrase, UserKey, new_file, seal

    k = os.urandom(32)
    data = os.urandom(3 * (1 << 20) + 5)
    envelope = seal(new_file(UserKey(k), version=1), Kind.WEIGHTS, data)
    native.register_key(k)
    assert native.open(envelope) == data
    native.clear_keys()
    native.register_passphrase("pässwörd 🔑")
    envelope = seal(new_file(Passphrase("pässwörd 🔑", log2n=10), version=1), Kind.GENERIC,
                    data[:100])
    assert native.open(envelope) == data[:100]


def test_native_opens_python_format2_with_each_recipient(native: ModuleType) -> None:
    """Version 2 from pycryptodome, opened by Crypto++ the way the runtime's callback sees it:
    E1 with any one recipient's secret, then E3 with the data key kept for the file."""
    from bmcrypt import errors
    from bmcrypt.crypto import Identity, Kind, Passphrase, UserKey, new_file, seal
    from bmcrypt.protect.container import pack_tail

    k, device = os.urandom(32), Identity.generate()
    keys = new_file([UserKey(k), Passphrase("fleet", log2n=10), device.recipient], slots=4)
    e1 = seal(keys, Kind.HEADER_TAIL, pack_tail(1234, 5678))
    data = os.urandom(2 * (1 << 20) + 7)
    e3 = seal(keys, Kind.WEIGHTS, data)
    for register in (lambda: native.register_key(k), lambda: native.register_passphrase("fleet"),
                     lambda: native.register_identity(device._secret_bytes())):
        native.clear_keys()
        register()
        with pytest.raises(errors.WrongKey, match="open the header first"):
            native.open(e3)
        assert native.open(e1) == pack_tail(1234, 5678)
        assert native.open(e3) == data
        assert native.parse_header(e1).version == 2 and len(native.parse_header(e1).key_area) == 16 + 4 * 128
    native.clear_keys()
    native.register_identity(Identity.generate()._secret_bytes())
    with pytest.raises(errors.WrongKey, match=device.key_id_hex):
        native.open(e1)


def test_native_errors_are_bmcrypt_errors(native: ModuleType, tmp_path: Path) -> None:
    from bmcrypt import errors

    keys = native.FileKeys.create(key=b"\x01" * 32)
    envelope = keys.seal(b"abc")
    with pytest.raises(errors.NoKey):
        native.open(envelope)
    native.register_key(b"\x02" * 32)
    with pytest.raises(errors.WrongKey, match="key id"):
        native.open(envelope)
    native.register_key(b"\x01" * 32)
    assert native.open(envelope) == b"abc"
    with pytest.raises(errors.Tampered):
        native.open(envelope[:-1] + bytes([envelope[-1] ^ 1]))
    with pytest.raises(errors.Truncated):
        native.open(envelope[:-1])
    with pytest.raises(errors.Corrupt):
        native.open(b"garbage" * 40)
    with pytest.raises(ValueError):
        native.register_key(b"short")
    with pytest.raises(ValueError):
        native.open_into(envelope, bytearray(2))
    with pytest.raises(errors.InputFileError):
        native.verify_file(tmp_path / "missing.bmodel")
    with pytest.raises(errors.NotEncrypted):
        native.verify_file(MLP)


def test_native_reads_key_files(native: ModuleType, tmp_path: Path) -> None:
    from bmcrypt import errors
    from bmcrypt.keys import generate_key_file

    path = tmp_path / "model.key"
    key = generate_key_file(path)
    native.register_key_file(path)
    assert native.FileKeys.create().key_id == key.key_id
    path.chmod(0o640)
    with pytest.raises(errors.KeyFileError, match="other users"):
        native.register_key_file(str(path))


def test_decrypt_callback_is_the_vendor_contract(native: ModuleType) -> None:
    """What bmrt_load_bmodel_with_decrypt calls: malloc'ed plaintext, NULL on any failure."""
    signature = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint64,
                                 ctypes.POINTER(ctypes.c_uint64))
    decrypt = signature(native.decrypt_callback_address())
    encrypt = signature(native.encrypt_callback_address())
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]
    native.register_key(os.urandom(32))
    n = ctypes.c_uint64()
    sealed = encrypt(b"weights" * 1000, 7000, ctypes.byref(n))
    envelope = ctypes.string_at(sealed, n.value)
    libc.free(sealed)
    plain = decrypt(envelope, len(envelope), ctypes.byref(n))
    assert plain and ctypes.string_at(plain, n.value) == b"weights" * 1000
    libc.free(plain)
    assert not decrypt(envelope[:-1], len(envelope) - 1, ctypes.byref(n)) and n.value == 0
    assert not decrypt(None, 0, ctypes.byref(n))


def test_native_verifies_files_python_encrypts(native: ModuleType, tmp_path: Path) -> None:
    from bmcrypt import errors
    from bmcrypt.crypto import UserKey
    from bmcrypt.workflow import encrypt_model

    k = os.urandom(32)
    for fixture in (MLP, QWEN):
        source = tmp_path / fixture.name
        shutil.copyfile(fixture, source)
        encrypted = tmp_path / (fixture.stem + ".enc.bmodel")
        encrypt_model(source, UserKey(k), output=encrypted)
        native.clear_keys()
        native.register_key(k)
        report = native.verify_file(encrypted)
        assert report.typed and report.clear_covered and report.weight_envelopes >= 1
        assert report.key_id == UserKey(k).key_id
        data = bytearray(encrypted.read_bytes())
        for offset, what in ((len(data) // 2, None), (len(data) - 3, None)):
            damaged = bytearray(data)
            damaged[offset] ^= 0x10
            bad = tmp_path / "damaged.bmodel"
            bad.write_bytes(damaged)
            with pytest.raises(errors.Tampered):
                native.verify_file(bad)
        native.clear_keys()
        native.register_key(os.urandom(32))
        with pytest.raises(errors.WrongKey):
            native.verify_file(encrypted)


def test_threads_setting(native: ModuleType) -> None:
    native.set_threads(1)
    assert native.max_threads() == 1
    keys = native.FileKeys.create(key=b"\x03" * 32)
    data = os.urandom(6 << 20)
    envelope = keys.seal(data)
    native.set_threads(0)
    assert native.max_threads() >= 1
    assert keys.open(envelope) == data


def test_stub_matches_the_module(native: ModuleType) -> None:
    """bmcrypt/_native.pyi names exactly what the extension defines (functions, classes, members)."""
    import ast

    stub = ast.parse((ROOT / "bmcrypt" / "_native.pyi").read_text(encoding="utf-8"))
    declared: set[str] = set()
    for node in stub.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            declared.add(node.name)
        if isinstance(node, ast.ClassDef):
            declared |= {f"{node.name}.{m.name}" for m in node.body if isinstance(m, ast.FunctionDef)}
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            declared.add(node.target.id)
    actual: set[str] = set()
    for name, value in vars(native).items():
        if name.startswith("_"):
            continue
        actual.add(name)
        if isinstance(value, type):
            actual |= {f"{name}.{m}" for m in vars(value) if not m.startswith("_")}
    assert declared == actual
