"""Real models that demand a licence (FORMAT.md §8.5), end to end: `encrypt --require-license`,
`license issue`, and every opening path refusing each bad licence with its own error — the CLI
(exit codes 10..15), the C API of libbmcrypt.so (codes 15..20), and the vendor runtime on the
simulator, which has no serial number."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt, json_document
from conftest import FIXTURES, MLP

from bmcrypt.plugin import plugin_path


@dataclass
class Vendor:
    """A model encrypted to demand licences from `signing_key`, and its licences."""

    dir: Path
    key: Path
    signing_key: Path
    model: Path
    other_model: Path  # the same vendor key, another file id

    def issue(self, name: str, *extra: str, model: Path | None = None,
              not_after: str = "2099-12-31") -> Path:
        out = self.dir / f"{name}.bmlic"
        result = bmcrypt("license", "issue", "--signing-key", self.signing_key, "--model",
                         model or self.model, "--not-after", not_after, "-o", out, *extra)
        assert result.returncode == 0, result.stderr
        return out


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Vendor:
    d = tmp_path_factory.mktemp("vendor")
    key, signing = d / "model.key", d / "vendor.key"
    assert bmcrypt("keygen", "-o", key).returncode == 0
    made = bmcrypt("license", "keygen", "-o", signing)
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip()
    models = []
    for name, policy in (("m", str(signing)), ("other", public)):  # a key file, or its public key
        out = d / f"{name}.bmodel"
        result = bmcrypt("encrypt", MLP, "-k", key, "--require-license", policy, "-o", out)
        assert result.returncode == 0, result.stderr
        models.append(out)
    return Vendor(d, key, signing, *models)


@pytest.fixture(scope="module")
def licences(vendor: Vendor) -> dict[str, Path]:
    """One licence file for every verdict of §8.5."""
    found = {
        "valid": vendor.issue("valid"),
        "expired": vendor.issue("expired", not_after="2020-01-01"),
        "other device": vendor.issue("device", "--device-sn", "HQDZKM5BAJEJG0A9B"),
        "other file": vendor.issue("other-file", model=vendor.other_model),
    }
    tampered = vendor.dir / "tampered.bmlic"
    data = bytearray(found["valid"].read_bytes())
    data[-7] ^= 0x10  # one bit of the signature
    tampered.write_bytes(bytes(data))
    found["tampered"] = tampered
    corrupt = vendor.dir / "corrupt.bmlic"
    corrupt.write_bytes(found["valid"].read_bytes()[:100])
    found["corrupt"] = corrupt
    return found


CLI_VERDICTS = [  # (licence, exit code, JSON kind, words of the message)
    ("expired", 14, "licence_expired", "expired at 2020-01-01T23:59:59Z"),
    ("other device", 15, "licence_for_another_device", "HQDZKM5BAJEJG0A9B"),
    ("tampered", 12, "bad_licence_signature", "does not verify"),
    ("other file", 13, "licence_for_another_file", "is for file"),
    (None, 10, "no_licence", "requires a licence signed by bmcryptlic1"),
    ("corrupt", 11, "corrupt_licence", "not a valid licence"),
]


def test_the_header_demands_the_vendors_key(vendor: Vendor):
    from bmcrypt.licence import load_signing_key
    from bmcrypt.licence.terms import read_terms

    for model in (vendor.model, vendor.other_model):
        terms = read_terms(model)
        assert terms.version == 2 and terms.requires_licence
        assert terms.licence_key == load_signing_key(vendor.signing_key).public_key
    assert read_terms(vendor.model).file_id != read_terms(vendor.other_model).file_id


def test_a_valid_licence_opens_and_decrypts_exactly(vendor: Vendor, licences: dict[str, Path]):
    ok = bmcrypt("verify", vendor.model, "-k", vendor.key, "--license", licences["valid"])
    assert ok.returncode == 0, ok.stderr
    plain = vendor.dir / "plain.bmodel"
    done = bmcrypt("decrypt", vendor.model, "-k", vendor.key, "--license", licences["valid"],
                   "-o", plain)
    assert done.returncode == 0, done.stderr
    assert hashlib.sha256(plain.read_bytes()).digest() == hashlib.sha256(MLP.read_bytes()).digest()


@pytest.mark.parametrize(("licence", "code", "kind", "words"), CLI_VERDICTS,
                         ids=[str(v[0]) for v in CLI_VERDICTS])
def test_each_bad_licence_is_refused_with_its_own_exit_code(
        vendor: Vendor, licences: dict[str, Path], licence: str | None, code: int, kind: str,
        words: str, tmp_path: Path):
    given = ["--license", licences[licence]] if licence else []
    result = bmcrypt("verify", vendor.model, "-k", vendor.key, *given)
    assert_clean_error(result, code, words)
    doc = json_document(bmcrypt("verify", vendor.model, "-k", vendor.key, *given, "--json"),
                        "verify")
    assert doc["error"]["kind"] == kind and doc["error"]["code"] == code
    # decrypt writes nothing when it refuses
    out = tmp_path / "plain.bmodel"
    assert bmcrypt("decrypt", vendor.model, "-k", vendor.key, *given, "-o", out).returncode == code
    assert not out.exists()


def test_a_wrong_key_reads_as_wrong_key_before_any_licence(vendor: Vendor, tmp_path: Path):
    other = tmp_path / "other.key"
    assert bmcrypt("keygen", "-o", other).returncode == 0
    assert_clean_error(bmcrypt("verify", vendor.model, "-k", other), 4)


def test_device_bound_licence_without_a_device_says_why(vendor: Vendor,
                                                        licences: dict[str, Path]):
    result = bmcrypt("verify", vendor.model, "-k", vendor.key, "--license",
                     licences["other device"])
    assert_clean_error(result, 15, "no device serial number is known here")
    assert "runs on none" in result.stderr


def test_one_passing_licence_is_enough_and_the_environment_works(vendor: Vendor,
                                                                 licences: dict[str, Path]):
    several = [licences["expired"], licences["other file"], licences["valid"]]
    env = {"BMCRYPT_LICENSE_FILE": ":".join(map(str, several))}
    assert bmcrypt("verify", vendor.model, "-k", vendor.key, env=env).returncode == 0
    env = {"BMCRYPT_LICENSE_FILE": f"{licences['other file']}:{licences['expired']}"}
    assert_clean_error(bmcrypt("verify", vendor.model, "-k", vendor.key, env=env), 14)
    # the command line wins over the environment
    assert_clean_error(bmcrypt("verify", vendor.model, "-k", vendor.key, "--license",
                               licences["tampered"], env={"BMCRYPT_LICENSE_FILE":
                                                          str(licences["valid"])}), 12)


def test_issue_refuses_licences_the_model_would_never_accept(vendor: Vendor, tmp_path: Path):
    plain_enc = tmp_path / "nolicence.bmodel"
    assert bmcrypt("encrypt", MLP, "-k", vendor.key, "-o", plain_enc).returncode == 0
    assert_clean_error(bmcrypt("license", "issue", "--signing-key", vendor.signing_key,
                               "--model", plain_enc, "--not-after", "2099-01-01", "-o",
                               tmp_path / "x.bmlic"), 2, "does not demand a license")
    stranger = tmp_path / "stranger.key"
    assert bmcrypt("license", "keygen", "-o", stranger).returncode == 0
    assert_clean_error(bmcrypt("license", "issue", "--signing-key", stranger, "--model",
                               vendor.model, "--not-after", "2099-01-01", "-o",
                               tmp_path / "x.bmlic"), 2, "not by this signing key")
    assert_clean_error(bmcrypt("license", "issue", "--signing-key", vendor.signing_key,
                               "--model", MLP, "--not-after", "2099-01-01", "-o",
                               tmp_path / "x.bmlic"), 6, "not encrypted")
    assert not (tmp_path / "x.bmlic").exists()


def test_issue_json_and_expired_warning(vendor: Vendor, tmp_path: Path):
    out = tmp_path / "j.bmlic"
    result = bmcrypt("license", "issue", "--signing-key", vendor.signing_key, "--model",
                     vendor.model, "--not-after", "2021-03-04T05:06:07Z", "--device-sn", "A",
                     "--device-sn", "B", "-o", out, "--json")
    doc = json_document(result, "license-issue")
    assert (doc["not_after"], doc["device_sns"], doc["expired"], doc["signature_ok"]) == (
        "2021-03-04T05:06:07Z", ["A", "B"], True, True)
    assert "expired already" in result.stderr


def test_require_license_refuses_a_mistyped_public_key(vendor: Vendor, tmp_path: Path):
    public = bmcrypt("license", "keygen", "-y", vendor.signing_key).stdout.strip()
    typo = public[:-1] + ("q" if public[-1] != "q" else "p")
    out = tmp_path / "t.bmodel"
    assert_clean_error(bmcrypt("encrypt", MLP, "-k", vendor.key, "--require-license", typo,
                               "-o", out), 2, "checksum")
    assert not out.exists()


def test_rotating_the_data_key_keeps_the_licence_requirement(vendor: Vendor,
                                                             licences: dict[str, Path],
                                                             tmp_path: Path):
    model = tmp_path / "rotate.bmodel"
    shutil.copyfile(vendor.model, model)
    rotated = bmcrypt("rekey", model, "-k", vendor.key, "--rotate-data-key", "--license",
                      licences["valid"])
    assert rotated.returncode == 0, rotated.stderr
    # a fresh data key comes with a fresh file id: licences are issued again after a rotation
    assert_clean_error(bmcrypt("verify", model, "-k", vendor.key, "--license",
                               licences["valid"]), 13)
    assert_clean_error(bmcrypt("verify", model, "-k", vendor.key), 10)


# ---------------------------------------------------------------- the C API (libbmcrypt.so)

C_VERDICTS = {"valid": 0, "expired": 19, "tampered": 17, "other file": 18, "other device": 20}
C_CHILD = r"""
import ctypes, json, os, sys
lib = ctypes.CDLL(sys.argv[1])
lib.bmcrypt_register_key_file.argtypes = [ctypes.c_char_p]
lib.bmcrypt_register_key_file.restype = ctypes.c_bool
lib.bmcrypt_register_licence_file.argtypes = [ctypes.c_char_p]
lib.bmcrypt_register_licence_file.restype = ctypes.c_bool
lib.bmcrypt_set_device_sn.argtypes = [ctypes.c_char_p]
lib.bmcrypt_set_device_sn.restype = ctypes.c_bool
lib.bmcrypt_verify_file.argtypes = [ctypes.c_char_p]
lib.bmcrypt_verify_file.restype = ctypes.c_bool
lib.bmcrypt_last_error.restype = ctypes.c_char_p
model, key, licences, sn = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), sys.argv[5]
assert lib.bmcrypt_register_key_file(key.encode())
out = {}
for name, path in licences.items():
    lib.bmcrypt_clear_licences()
    if sn:
        assert lib.bmcrypt_set_device_sn(sn.encode())
    if path and not lib.bmcrypt_register_licence_file(path.encode()):
        out[name] = [lib.bmcrypt_last_error_code(), lib.bmcrypt_last_error().decode()]
        continue
    ok = lib.bmcrypt_verify_file(model.encode())
    out[name] = [lib.bmcrypt_last_error_code(), lib.bmcrypt_last_error().decode()]
    assert ok == (out[name][0] == 0)
print(json.dumps(out))
"""


def _c_verdicts(vendor: Vendor, licences: dict[str, str | None], sn: str = "",
                env: dict[str, str] | None = None) -> dict[str, list]:
    import json
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BMCRYPT_")}
    full_env.update(env or {})
    result = subprocess.run([sys.executable, "-c", C_CHILD, str(plugin_path()), str(vendor.model),
                             str(vendor.key), json.dumps(licences), sn], capture_output=True,
                            text=True, env=full_env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_c_api_refuses_each_bad_licence_with_its_own_code(vendor: Vendor,
                                                          licences: dict[str, Path]):
    given = {name: str(licences[name]) for name in C_VERDICTS}
    given["none"] = None
    verdicts = _c_verdicts(vendor, given)
    codes = {name: v[0] for name, v in verdicts.items()}
    assert codes == {**C_VERDICTS, "none": 15}, verdicts
    assert "device" in verdicts["other device"][1]
    # the listed serial number, told through bmcrypt_set_device_sn, lets it open
    assert _c_verdicts(vendor, {"other device": str(licences["other device"])},
                       sn="HQDZKM5BAJEJG0A9B")["other device"][0] == 0
    assert _c_verdicts(vendor, {"corrupt": str(licences["corrupt"])})["corrupt"][0] == 16


def test_c_api_reads_the_environment_when_nothing_is_registered(vendor: Vendor,
                                                                licences: dict[str, Path]):
    env = {"BMCRYPT_LICENSE_FILE": str(licences["valid"])}
    assert _c_verdicts(vendor, {"env": None}, env=env)["env"][0] == 0
    env = {"BMCRYPT_LICENSE_FILE": str(licences["expired"])}
    assert _c_verdicts(vendor, {"env": None}, env=env)["env"][0] == 19


# ---------------------------------------------------------------- on the simulator


@pytest.mark.runtime
@pytest.mark.parametrize("strategy", ["callback", "memory"])
def test_run_with_a_valid_licence_and_refusals_on_the_simulator(
        vendor: Vendor, licences: dict[str, Path], vendor_dir: Path, tmp_path: Path,
        strategy: str):
    out = tmp_path / "out.npz"
    args = ["run", vendor.model, "-k", vendor.key, "-i", FIXTURES / "mlp_in.npz", "-o", out,
            "--runtime", vendor_dir / "lib", "--strategy", strategy]
    ok = bmcrypt(*args, "--license", licences["valid"])
    assert ok.returncode == 0, ok.stderr
    assert out.is_file()
    out.unlink()
    assert_clean_error(bmcrypt(*args, "--license", licences["expired"]), 14)
    # The simulator has no serial number: a device-bound licence never passes there.
    bound = bmcrypt(*args, "--license", licences["other device"])
    assert_clean_error(bound, 15, "no device serial number is known here")
    # the Python check (memory) and the native one (callback) say why in their own words
    assert ("BM_NOT_SUPPORTED" if strategy == "memory" else "the simulator has none") in \
        bound.stderr
    assert not out.exists()


@pytest.mark.runtime
def test_the_simulator_reports_no_serial_number(vendor_dir: Path):
    script = ("import sys; from bmcrypt.runtime import Runtime, exit_now\n"
              "from bmcrypt.runtime.serial import read_device_sn\n"
              "first = read_device_sn(sys.argv[1])\n"
              "with Runtime(sys.argv[1]) as rt: second = rt.device_sn()\n"
              "print(first, second); sys.stdout.flush(); exit_now(0)\n")
    result = subprocess.run([sys.executable, "-P", "-c", script, str(vendor_dir / "lib")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "None None"


def test_the_library_exports_the_licence_api():
    lib = ctypes.CDLL(str(plugin_path()))
    for name in ("bmcrypt_register_licence_file", "bmcrypt_register_licence",
                 "bmcrypt_set_device_sn", "bmcrypt_clear_licences"):
        assert hasattr(lib, name), name


PLUGIN_CHILD = r"""
import ctypes, sys
from bmcrypt.errors import VendorRuntimeError
from bmcrypt.plugin import plugin_path
from bmcrypt.runtime import Runtime, exit_now
try:
    with Runtime(sys.argv[2]) as rt:
        rt.load_with_decrypt_lib(sys.argv[1], str(plugin_path()))
        print("loaded", rt.net_names()[0], rt.trace())
except VendorRuntimeError:
    lib = ctypes.CDLL(str(plugin_path()))  # the runtime dlopened this same copy
    lib.bmcrypt_last_error.restype = ctypes.c_char_p
    print("refused", lib.bmcrypt_last_error_code())
sys.stdout.flush()
exit_now(0)
"""


@pytest.mark.runtime
def test_the_vendor_decrypt_lib_path_takes_licences_from_the_environment(
        vendor: Vendor, licences: dict[str, Path], vendor_dir: Path):
    import os

    def load(licence: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BMCRYPT_")}
        env.update(BMCRYPT_KEY_FILE=str(vendor.key), BMCRYPT_LICENSE_FILE=str(licences[licence]))
        result = subprocess.run([sys.executable, "-P", "-c", PLUGIN_CHILD, str(vendor.model),
                                 str(vendor_dir / "lib")], capture_output=True, text=True,
                                env=env, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().splitlines()[-1]

    assert load("valid") == "loaded mlp 0"
    # the runtime's callback thread set the error; this thread sees only that the load failed
    assert load("expired").startswith("refused")


STRIP_CHILD = r"""
import ctypes, struct, sys
from bmcrypt.crypto import parse_header
from bmcrypt.crypto.envelope_header import envelope_length
lib = ctypes.CDLL(sys.argv[1])
lib.bmcrypt_register_key_file.argtypes = [ctypes.c_char_p]
lib.bmcrypt_register_key_file.restype = ctypes.c_bool
lib.decrypt.argtypes = [ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64)]
lib.decrypt.restype = ctypes.c_void_p
lib.bmcrypt_last_error.restype = ctypes.c_char_p
data = open(sys.argv[2], "rb").read()
assert lib.bmcrypt_register_key_file(sys.argv[3].encode())
(header_size,) = struct.unpack_from("<I", data, 4)
e1 = bytearray(data[8:header_size])
h2 = parse_header(data[header_size:header_size + 8192], whole=False)
e2 = data[header_size:header_size + envelope_length(h2.plaintext_len, h2.seg_log2,
                                                   header_len=h2.header_len)]
e1[68:104] = bytes(36)  # the licence policy and key stripped from E1's public header

def decrypt(envelope):
    n = ctypes.c_uint64(0)
    out = lib.decrypt(bytes(envelope), len(envelope), ctypes.byref(n))
    return ("plaintext" if out else "refused", lib.bmcrypt_last_error_code())

print(*decrypt(e1))
print(*decrypt(e2))
"""


def test_a_stripped_licence_policy_leaves_no_data_key_behind(vendor: Vendor):
    # FORMAT.md §8.5: E₂ and the weights open only with the DK of an E₁ that passed. An E₁ whose
    # policy was cleared fails its own authentication; its DK must not serve the E₂ after it.
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("BMCRYPT_")}
    result = subprocess.run([sys.executable, "-c", STRIP_CHILD, str(plugin_path()),
                             str(vendor.model), str(vendor.key)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("\n")[:2]
    assert first.startswith("refused"), result.stdout
    assert second.startswith("refused"), result.stdout
