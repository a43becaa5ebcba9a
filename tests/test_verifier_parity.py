"""One verdict per file (issue 12, FORMAT.md §6.1): `bmcrypt verify`, the Python library and the
C API (`bmcrypt_verify_file`, `bmcrypt_load_bmodel`) agree.

The hostile files are authentic: a key holder decrypts a real sealed model, changes its plain
FlatBuffer (a region overlapping the weights, a field outside its table, a bad vtable, a DAG of
shared tables, ...) and seals it again with the same key, so every envelope and the clear-region
digest authenticate and only the FlatBuffer and layout rules can refuse the file.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import pytest
from clitools import bmcrypt
from conftest import MLP, ROOT
from synth import random_model

from bmcrypt import errors, workflow
from bmcrypt.bmodel import _walk
from bmcrypt.bmodel._fbs.bmodel import Model as ModelMod
from bmcrypt.bmodel._fbs.bmodel import Net as NetMod
from bmcrypt.bmodel._fbs.bmodel import NetParameter as ParamMod
from bmcrypt.bmodel._fbs.bmodel.Binary import BinaryT
from bmcrypt.bmodel._fbs.bmodel.Model import Model, ModelT
from bmcrypt.bmodel.writer import pack_flatbuffer
from bmcrypt.crypto import KEY_BLOCK_OFFSET, FileKeys, Kind, seal
from bmcrypt.keys import generate_key_file, load_key_file
from bmcrypt.plugin import plugin_path
from bmcrypt.protect.container import pack_tail
from bmcrypt.protect.manifest import Manifest, clear_digest, clear_spans
from bmcrypt.protect.opened import open_encrypted
from bmcrypt.protect.region_plan import walk_binaries

# bmcrypt.h's enum bmcrypt_status for each Python error, and the CLI's exit code for each.
C_CODE = {errors.NotABmodel: 2, errors.Truncated: 3, errors.Corrupt: 4,
          errors.UnsupportedVersion: 5, errors.WrongKey: 6, errors.Tampered: 7}
EXIT = {0: 0, 2: 3, 3: 3, 4: 3, 5: 3, 6: 4, 7: 5}
E_CORRUPT, E_TAMPERED, E_IO = 4, 7, 12


# ------------------------------------------------------------------ the three verifiers


class CLibrary:
    """A private copy of the installed libbmcrypt.so (its key ring is this test's alone)."""

    def __init__(self, path: Path, key: Path) -> None:
        lib = ctypes.CDLL(str(path))
        lib.bmcrypt_verify_file.argtypes = [ctypes.c_char_p]
        lib.bmcrypt_verify_file.restype = ctypes.c_bool
        lib.bmcrypt_register_key_file.argtypes = [ctypes.c_char_p]
        lib.bmcrypt_register_key_file.restype = ctypes.c_bool
        lib.bmcrypt_last_error.restype = ctypes.c_char_p
        assert lib.bmcrypt_register_key_file(str(key).encode())
        self.lib = lib

    def verify(self, path: Path) -> tuple[int, str]:
        """(bmcrypt_status, message) of bmcrypt_verify_file."""
        ok = self.lib.bmcrypt_verify_file(str(path).encode())
        code, message = self.lib.bmcrypt_last_error_code(), self.lib.bmcrypt_last_error().decode()
        assert ok == (code == 0), (ok, code, message)
        return code, message


def python_verdict(path: Path, key: Path) -> tuple[int, str]:
    """(bmcrypt_status, message) of the Python library's verify, through C_CODE."""
    try:
        workflow.verify_model(path, load_key_file(key))
    except errors.BmcryptError as e:
        return C_CODE[type(e)], str(e)
    return 0, ""


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "parity.key"
    generate_key_file(path)
    return path


@pytest.fixture(scope="module")
def clib(tmp_path_factory: pytest.TempPathFactory, key: Path) -> CLibrary:
    copy = tmp_path_factory.mktemp("lib") / "libbmcrypt_parity.so"
    shutil.copyfile(plugin_path(), copy)
    return CLibrary(copy, key)


# ------------------------------------------------------------------ sealing as a key holder


@dataclass
class Sealed:
    """A sealed model opened with its key: everything needed to seal a changed FlatBuffer."""

    keys: FileKeys
    flatbuffer: bytes
    binary: bytes
    manifest: Manifest
    restore: bytes = b""  # version 2: the packed restore record (FORMAT.md §8.4)

    def model(self) -> ModelT:
        return ModelT.InitFromObj(Model.GetRootAs(self.flatbuffer, 0))

    def digest(self, fb: bytes) -> tuple[int, bytes]:
        """The clear-region digest the changed FlatBuffer implies (the old one if none does)."""
        try:
            _walk.decode(fb)  # before the accessors expand a shared DAG
            ranges = [(p.coeffMem.binaryCoeff.start, p.coeffMem.binaryCoeff.size)
                      for n in ModelT.InitFromObj(Model.GetRootAs(fb, 0)).net
                      for p in n.parameter or ()
                      if p.coeffMem and p.coeffMem.binaryCoeff and p.coeffMem.encryptMode == 1]
            spans = clear_spans(len(self.binary), ranges)
        except Exception:  # a FlatBuffer the library cannot read: keep the digest as it was
            return self.manifest.clear_len, self.manifest.clear_digest
        return clear_digest(spans, [(o, self.binary[o:o + n]) for o, n in spans])

    def reseal(self, fb: bytes, out: Path, record: bytes | None = None) -> None:
        """Write the file with `fb` sealed in place of the FlatBuffer (and `record` as its
        restore record, with a version 2 manifest)."""
        keys = self.keys
        manifest = Manifest(len(fb), *self.digest(fb))
        if record is not None:
            manifest = Manifest(len(fb), *self.digest(fb), restore_len=len(record), version=2)
        e2 = bytes(seal(keys, Kind.FLATBUFFER, fb + (record or b"") + manifest.pack()))
        e1 = seal(keys, Kind.HEADER_TAIL, pack_tail(len(e2), len(self.binary)))
        out.write_bytes(b"\xee\xaa\x55\xff" + struct.pack("<I", 8 + len(e1)) + e1 + e2
                        + self.binary)


def _sealed(plain: Path, key: Path, out: Path) -> Sealed:
    workflow.encrypt_model(plain, load_key_file(key), output=out)
    with open_encrypted(out, load_key_file(key)) as o:
        record = o.restore.pack() if o.restore is not None else b""
        return Sealed(o.keys, o.flatbuffer, bytes(o.mm[o.binary_offset:]), o.manifest, record)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory, key: Path) -> Sealed:
    return _sealed(MLP, key, tmp_path_factory.mktemp("mlp") / "mlp.bmodel")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory, key: Path) -> Sealed:
    """A random model with every kind of Binary (kernel module, cpu params, core commands)."""
    d = tmp_path_factory.mktemp("synth")
    (d / "plain.bmodel").write_bytes(random_model(random.Random(12)))
    return _sealed(d / "plain.bmodel", key, d / "synth.bmodel")


# ------------------------------------------------------------------ hostile FlatBuffers


def _changed(s: Sealed, change: Callable[[ModelT], None]) -> bytes:
    m = s.model()
    change(m)
    return pack_flatbuffer(m)


def _overlap_weights(m: ModelT) -> None:
    stage = m.net[0].parameter[0]
    weights = stage.coeffMem.binaryCoeff
    group = stage.subNet[0].cmdGroup[0]
    group.binaryBdc.start, group.binaryBdc.size = weights.start + 10, 20


def _past_region(s: Sealed) -> Callable[[ModelT], None]:
    def change(m: ModelT) -> None:
        profile = BinaryT()
        profile.start, profile.size = len(s.binary) - 5, 10
        m.net[0].parameter[0].netProfile = profile
    return change


def _no_binary_coeff(m: ModelT) -> None:
    m.net[0].parameter[0].coeffMem.binaryCoeff = None


def _shape_vtable(fb: bytes) -> tuple[bytearray, int]:
    """A copy of fb and the vtable offset of the first input tensor's Shape table."""
    shape = Model.GetRootAs(fb, 0).Net(0).Parameter(0).InputTensor(0).Shape(0)
    pos = shape._tab.Pos
    return bytearray(fb), pos - struct.unpack_from("<i", fb, pos)[0]


def _field_outside_table(fb: bytes) -> bytes:
    buf, vt = _shape_vtable(fb)
    struct.pack_into("<H", buf, vt + 2, 4)  # table length 4: `dim` now lies past its end
    return bytes(buf)


def _bad_vtable(fb: bytes) -> bytes:
    buf, vt = _shape_vtable(fb)
    struct.pack_into("<H", buf, vt, 2)  # a vtable shorter than its own 4-byte head
    return bytes(buf)


def _shared_tables(nets: int = 2000, stages: int = 1000) -> bytes:
    """A small FlatBuffer whose shared tables expand to 2 million visits: within flatc's table
    budget (10 million), far over the walk's (its size + 1 million)."""
    b = flatbuffers.Builder(1024)
    empty = []
    for _ in range(2):
        ParamMod.StartInputTensorVector(b, 0)
        empty.append(b.EndVector())
    ParamMod.Start(b)
    ParamMod.AddInputTensor(b, empty[0])
    ParamMod.AddOutputTensor(b, empty[1])
    stage = ParamMod.End(b)
    NetMod.StartParameterVector(b, stages)
    for _ in range(stages):
        b.PrependUOffsetTRelative(stage)
    params = b.EndVector()
    name = b.CreateString("dag")
    NetMod.Start(b)
    NetMod.AddName(b, name)
    NetMod.AddParameter(b, params)
    net = NetMod.End(b)
    ModelMod.StartNetVector(b, nets)
    for _ in range(nets):
        b.PrependUOffsetTRelative(net)
    net_vector = b.EndVector()
    text = [b.CreateString(t) for t in ("B", "2.2", "now", "BM1684X")]
    ModelMod.Start(b)
    for add, value in zip((ModelMod.AddType, ModelMod.AddVersion, ModelMod.AddTime,
                           ModelMod.AddChip), text, strict=True):
        add(b, value)
    ModelMod.AddNet(b, net_vector)
    b.Finish(ModelMod.End(b))
    return bytes(b.Output())


#: name -> the hostile FlatBuffer
HOSTILE: dict[str, Callable[[Sealed], bytes]] = {
    "command_overlaps_weights": lambda s: _changed(s, _overlap_weights),
    "profile_past_binary_region": lambda s: _changed(s, _past_region(s)),
    "encrypted_coeff_without_binary": lambda s: _changed(s, _no_binary_coeff),
    "field_outside_its_table": lambda s: _field_outside_table(s.flatbuffer),
    "vtable_shorter_than_4_bytes": lambda s: _bad_vtable(s.flatbuffer),
    "shared_tables_blow_up": lambda s: _shared_tables(),
}


def test_an_unchanged_flatbuffer_sealed_again_passes_everywhere(mlp: Sealed, key: Path,
                                                                 clib: CLibrary,
                                                                 tmp_path: Path) -> None:
    path = tmp_path / "same.bmodel"
    mlp.reseal(mlp.flatbuffer, path)
    assert python_verdict(path, key) == (0, "")
    assert clib.verify(path) == (0, "")
    assert bmcrypt("verify", "-k", key, path).returncode == 0


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_authentic_file_gets_one_verdict(case: str, mlp: Sealed, key: Path,
                                                   clib: CLibrary, tmp_path: Path) -> None:
    path = tmp_path / f"{case}.bmodel"
    mlp.reseal(HOSTILE[case](mlp), path)
    py_code, py_message = python_verdict(path, key)
    c_code, c_message = clib.verify(path)
    assert py_code == E_CORRUPT, py_message
    assert c_code == E_CORRUPT, c_message
    cli = bmcrypt("verify", "-k", key, path)
    assert cli.returncode == EXIT[E_CORRUPT], cli.stderr
    assert _load_bmodel(path, key) == E_CORRUPT


def _load_bmodel(path: Path, key: Path) -> int:
    """bmcrypt_load_bmodel's status, in a child (a handle that is not a runtime: the call must
    refuse the file before it gets that far)."""
    code = f"""
import ctypes, sys
lib = ctypes.CDLL({str(plugin_path())!r})
lib.bmcrypt_register_key_file.argtypes = [ctypes.c_char_p]
lib.bmcrypt_load_bmodel.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.bmcrypt_load_bmodel.restype = ctypes.c_bool
assert lib.bmcrypt_register_key_file({str(key).encode()!r})
assert not lib.bmcrypt_load_bmodel(ctypes.c_void_p(8), {str(path).encode()!r})
print(lib.bmcrypt_last_error_code())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.parametrize(("where", "value", "expected"), [
    ("header_size", 0, E_CORRUPT), ("header_size", 100, E_CORRUPT),
    ("header_size", 231, E_CORRUPT),
    # E₂'s key source: its key block must equal E₁'s, so this is "another file", not a bad block
    ("e2_key_source", 0, E_TAMPERED), ("e2_key_source", 2, E_TAMPERED)])
def test_a_damaged_header_gets_one_verdict(where: str, value: int, expected: int, mlp: Sealed,
                                           key: Path, clib: CLibrary, tmp_path: Path) -> None:
    path = tmp_path / "damaged.bmodel"
    mlp.reseal(mlp.flatbuffer, path)
    data = bytearray(path.read_bytes())
    if where == "header_size":
        struct.pack_into("<I", data, 4, value)
    else:
        data[struct.unpack_from("<I", data, 4)[0] + KEY_BLOCK_OFFSET] = value
    path.write_bytes(data)
    assert python_verdict(path, key)[0] == expected
    assert clib.verify(path)[0] == expected


# ------------------------------------------------------------------ restore records (format 2)


def _extent(record: bytearray, i: int) -> int:
    """Offset of extent i in a packed restore record."""
    fb_len = struct.unpack_from("<Q", record, 104)[0]
    return 120 + fb_len + -fb_len % 8 + 32 * i


def _clear_extent(record: bytearray) -> int:
    """The offset of the first source-0 extent."""
    i = 0
    while struct.unpack_from("<I", record, _extent(record, i) + 24)[0] != 0:
        i += 1
    return _extent(record, i)


def _weight_extent(record: bytearray) -> int:
    i = 0
    while struct.unpack_from("<I", record, _extent(record, i) + 24)[0] != 1:
        i += 1
    return _extent(record, i)


def _set(fmt: str, at: Callable[[bytearray], int], value: Callable[[bytearray, int], int]
         ) -> Callable[[bytearray], None]:
    def change(r: bytearray) -> None:
        where = at(r)
        struct.pack_into(fmt, r, where, value(r, where))
    return change


def _flip(at: int) -> Callable[[bytearray], None]:
    def change(r: bytearray) -> None:
        r[at] ^= 1
    return change


#: name -> (change of the packed record, expected status): a key holder's forgeries, every
#: envelope authentic, so that only §8.4's rules can refuse the file. The original's SHA-256,
#: header and FlatBuffer are checked when decrypting rebuilds the original, not by verify.
RECORD_FORGERIES: dict[str, tuple[Callable[[bytearray], None], int]] = {
    "original_sha256": (_flip(0), 0),
    "original_header": (_flip(40 + 20), 0),
    "original_flatbuffer": (_flip(120 + 16), 0),
    "extent_reserved": (_set("<I", lambda r: _extent(r, 0) + 28, lambda r, a: 1), E_CORRUPT),
    "extent_source_2": (_set("<I", lambda r: _extent(r, 0) + 24, lambda r, a: 2), E_CORRUPT),
    "extent_gap": (_set("<Q", lambda r: _extent(r, 1), lambda r, a: struct.unpack_from(
        "<Q", r, a)[0] + 1), E_CORRUPT),
    "clear_extent_into_an_envelope": (_set("<Q", lambda r: _clear_extent(r) + 16,
                                           lambda r, a: struct.unpack_from(
                                               "<Q", r, _weight_extent(r) + 16)[0]), E_CORRUPT),
    "weight_extent_off_its_envelope": (_set("<Q", lambda r: _weight_extent(r) + 16,
                                            lambda r, a: struct.unpack_from("<Q", r, a)[0] + 8),
                                       E_CORRUPT),
    "weight_extent_length": (_set("<Q", lambda r: _weight_extent(r) + 8,
                                  lambda r, a: struct.unpack_from("<Q", r, a)[0] - 1), E_CORRUPT),
    "extent_count": (_set("<I", lambda r: 112, lambda r, a: struct.unpack_from("<I", r, a)[0] + 1),
                     E_CORRUPT),
    "original_too_short": (_set("<Q", lambda r: 32, lambda r, a: 10), E_CORRUPT),
}


def test_format2_files_carry_a_restore_record(mlp: Sealed, key: Path, clib: CLibrary,
                                              tmp_path: Path) -> None:
    assert mlp.restore and mlp.keys.version == 2
    path = tmp_path / "same.bmodel"
    mlp.reseal(mlp.flatbuffer, path, bytes(mlp.restore))
    assert python_verdict(path, key) == (0, "")
    assert clib.verify(path) == (0, "")


@pytest.mark.parametrize("case", RECORD_FORGERIES)
def test_a_forged_restore_record_gets_one_verdict(case: str, mlp: Sealed, key: Path,
                                                  clib: CLibrary, tmp_path: Path) -> None:
    change, expected = RECORD_FORGERIES[case]
    record = bytearray(mlp.restore)
    change(record)
    assert record != mlp.restore
    path = tmp_path / f"{case}.bmodel"
    mlp.reseal(mlp.flatbuffer, path, bytes(record))
    py_code, py_message = python_verdict(path, key)
    c_code, c_message = clib.verify(path)
    assert (py_code, c_code) == (expected, expected), (py_message, c_message)
    if expected:
        assert _load_bmodel(path, key) == expected


# ------------------------------------------------------------------ random mutations


def _mutations(s: Sealed, rng: random.Random, n: int) -> Iterator[bytes]:
    """Seeded: byte flips anywhere in the FlatBuffer, and Binaries moved next to, into or past
    the envelopes and the end of the region."""
    model_binaries = len(list(walk_binaries(s.model())))
    targets = [(b.start, b.size) for _, _, b in walk_binaries(s.model())]
    for _ in range(n):
        if rng.random() < 0.6:
            fb = bytearray(s.flatbuffer)
            for _ in range(rng.choice([1, 1, 2, 4])):
                at = rng.randrange(len(fb))
                fb[at] = rng.choice([0, 0xFF, rng.randrange(256), fb[at] ^ 1 << rng.randrange(8)])
            yield bytes(fb)
            continue
        m = s.model()
        _, _, b = list(walk_binaries(m))[rng.randrange(model_binaries)]
        start, size = rng.choice(targets)
        b.start = rng.choice([start, start + rng.randrange(-64, 64), len(s.binary) - 1,
                              len(s.binary), rng.randrange(len(s.binary) + 1)]) % (1 << 64)
        b.size = rng.choice([0, 1, size, rng.randrange(1, 4096)])
        if rng.random() < 0.2:
            m.net[0].parameter[0].coeffMem.encryptMode = rng.choice([0, 1, 2, -1])
        yield pack_flatbuffer(m)


# BMCRYPT_PARITY_N / BMCRYPT_PARITY_SEED run a longer campaign.
@pytest.mark.parametrize("base", ["mlp", "synthetic"])
def test_python_and_c_agree_on_random_mutations(base: str, request: pytest.FixtureRequest,
                                               key: Path, clib: CLibrary, tmp_path: Path) -> None:
    s: Sealed = request.getfixturevalue(base)
    rng = random.Random(int(os.environ.get("BMCRYPT_PARITY_SEED", "2026")))
    verdicts: dict[int, int] = {}
    path = tmp_path / "mutant.bmodel"
    for i, fb in enumerate(_mutations(s, rng, int(os.environ.get("BMCRYPT_PARITY_N", "150")))):
        s.reseal(fb, path)
        py_code, py_message = python_verdict(path, key)
        c_code, c_message = clib.verify(path)
        assert py_code == c_code, (i, py_message, c_message)
        verdicts[c_code] = verdicts.get(c_code, 0) + 1
    assert verdicts.get(0, 0) >= 10 and verdicts.get(E_CORRUPT, 0) >= 10, verdicts


# ------------------------------------------------------------------ the walk's rules, once


def test_the_c_walk_has_the_python_walks_schema() -> None:
    source = (ROOT / "csrc" / "bmodel" / "walk.cpp").read_text()
    tables = re.findall(r'\{"(\w+)", \{((?:\{"\w+", "[^"]*"\},?\s*)*)\}\}', source)
    c_schema = {name: re.findall(r'\{"(\w+)", "([^"]*)"\}', fields) for name, fields in tables}
    assert c_schema == _walk.SCHEMA
    limits = (ROOT / "csrc" / "bmodel" / "walk.h").read_text()
    assert "kMaxWalkExtraCost = 1'000'000" in limits and _walk.MAX_EXTRA_COST == 1_000_000
    assert "kMaxFlatBufferSize = uint64_t(1) << 30" in limits
    format_md = (ROOT / "docs" / "FORMAT.md").read_text()
    assert "### 6.1" in format_md and "1 GiB" in format_md and "1 000 000" in format_md


# ------------------------------------------------------------------ not a regular file


def test_the_c_library_refuses_a_fifo_socket_or_device_at_once(tmp_path: Path,
                                                              key: Path) -> None:
    fifo = tmp_path / "model.fifo"
    subprocess.run(["mkfifo", str(fifo)], check=True)
    sock_path = tmp_path / "model.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    paths = [str(fifo), str(sock_path), "/dev/null", str(tmp_path)]
    code = f"""
import ctypes, json, time
lib = ctypes.CDLL({str(plugin_path())!r})
lib.bmcrypt_last_error.restype = ctypes.c_char_p
lib.bmcrypt_load_bmodel.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.bmcrypt_register_key_file.argtypes = [ctypes.c_char_p]
assert lib.bmcrypt_register_key_file({str(key).encode()!r})
out = []
for p in {paths!r}:
    for call in (lambda: lib.bmcrypt_verify_file(p.encode()),
                 lambda: lib.bmcrypt_load_bmodel(ctypes.c_void_p(8), p.encode()),
                 lambda: lib.bmcrypt_register_key_file(p.encode())):
        t = time.monotonic()
        ok = call()
        out.append([p, ok, lib.bmcrypt_last_error_code(), lib.bmcrypt_last_error().decode(),
                    time.monotonic() - t])
print(json.dumps(out))
"""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=20)
    finally:
        sock.close()
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 3 * len(paths)
    for path, ok, status, message, seconds in results:
        assert not ok and seconds < 1.0, (path, seconds)
        if path == str(tmp_path):
            assert "is a directory" in message, message
        else:
            assert message.endswith(f"{path} is not a regular file"), message
        assert status in (E_IO, 9), (path, status)  # 9: BMCRYPT_E_KEY_FILE


def test_a_version_1_envelope_in_a_version_2_file_gets_one_verdict(mlp: Sealed, key: Path,
                                                                   clib: CLibrary,
                                                                   tmp_path: Path) -> None:
    # FORMAT.md §8: every envelope of one file has the same version. A key holder seals E₂ as a
    # version-1 envelope of the same file_id and DK (its own key block): every tag verifies.
    from bmcrypt.crypto.keyblock import wrap_v1

    keys = mlp.keys
    dk = keys._dk  # a key holder's forgery
    v1 = FileKeys(keys.file_id, wrap_v1(load_key_file(key), keys.file_id, dk), dk)
    manifest = Manifest(len(mlp.flatbuffer), mlp.manifest.clear_len, mlp.manifest.clear_digest,
                        restore_len=len(mlp.restore), version=2)
    e2 = bytes(seal(v1, Kind.FLATBUFFER, mlp.flatbuffer + mlp.restore + manifest.pack()))
    e1 = seal(keys, Kind.HEADER_TAIL, pack_tail(len(e2), len(mlp.binary)))
    path = tmp_path / "mixed.bmodel"
    path.write_bytes(b"\xee\xaa\x55\xff" + struct.pack("<I", 8 + len(e1)) + e1 + e2 + mlp.binary)
    py_code, py_message = python_verdict(path, key)
    c_code, c_message = clib.verify(path)
    assert (py_code, c_code) == (E_CORRUPT, E_CORRUPT), (py_message, c_message)


def test_a_header_envelope_of_another_length_gets_one_verdict(mlp: Sealed, key: Path,
                                                              clib: CLibrary,
                                                              tmp_path: Path) -> None:
    # E₁'s plaintext is the 56-byte tail (FORMAT.md §2); an E₁ that says 57 (one byte more in
    # the file, header_size to match) is refused before any key is tried, by both readers.
    path = tmp_path / "e1_57.bmodel"
    mlp.reseal(mlp.flatbuffer, path, bytes(mlp.restore))
    data = bytearray(path.read_bytes())
    header_size = struct.unpack_from("<I", data, 4)[0]
    struct.pack_into("<Q", data, 8 + 8, 57)
    data[header_size:header_size] = b"\0"
    struct.pack_into("<I", data, 4, header_size + 1)
    path.write_bytes(data)
    py_code, py_message = python_verdict(path, key)
    c_code, c_message = clib.verify(path)
    assert (py_code, c_code) == (E_CORRUPT, E_CORRUPT), (py_message, c_message)
