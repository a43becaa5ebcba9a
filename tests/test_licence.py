"""Offline licences (FORMAT.md §8.5) on their own: signing key files, the licence's bytes, and
the checks in their order, each refusal with its own error and exit code, in Python and in the
native core (the same verdict for the same licences). Opening real models that demand a licence
is tests/test_licence_files.py."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt, json_document

from bmcrypt import _native
from bmcrypt.errors import (
    BadLicenceSignature,
    BmcryptError,
    CorruptLicence,
    KeyFileError,
    LicenceError,
    LicenceExpired,
    LicenceForAnotherDevice,
    LicenceForAnotherFile,
    NoLicence,
)
from bmcrypt.licence import (
    LicenceSet,
    SigningKey,
    decode_public_key,
    encode_public_key,
    generate_signing_key_file,
    issue_licence,
    load_signing_key,
    parse_licence,
    require_licence,
    with_licences,
)
from bmcrypt.licence.check import NO_DEVICE_HINT, SIMULATOR_HINT

FILE_ID = bytes(range(16))
OTHER_FILE_ID = bytes(range(1, 17))
VENDOR = SigningKey(bytes(range(32)))
OTHER_VENDOR = SigningKey(bytes(range(32, 64)))
FUTURE = int(time.time()) + 86400
PAST = int(time.time()) - 1


class Header:
    """What the reader hands `require_licence` (the v2 envelope header's three fields)."""

    def __init__(self, policy: int = 1, file_id: bytes = FILE_ID,
                 licence_key: bytes | None = None) -> None:
        self.policy = policy
        self.file_id = file_id
        self.licence_key = VENDOR.public_key if licence_key is None else licence_key


def licence(key: SigningKey = VENDOR, file_id: bytes = FILE_ID, not_after: int = FUTURE,
            serials: tuple[bytes, ...] = (), source: str = "m.bmlic"):
    return parse_licence(issue_licence(key, file_id, not_after, serials), source)


def require(*licences, sn=None, on_device=False, now=None) -> None:
    ring = with_licences(["a secret"], LicenceSet(licences, sn, on_device=on_device))
    require_licence(header=Header(), keyring=ring, now=now)


# ---------------------------------------------------------------- Ed25519 and the signing key


def test_ed25519_is_rfc8032():
    # RFC 8032 §7.1, TEST 1 (the empty message).
    key = SigningKey(bytes.fromhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    assert key.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b")


def test_signing_key_file_is_private_never_overwritten_and_round_trips(tmp_path: Path):
    path = tmp_path / "vendor.key"
    key = generate_signing_key_file(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert len(path.read_bytes()) == 72 and path.read_bytes().startswith(b"BMCRYPT-ED25519-")
    assert load_signing_key(path).public_key == key.public_key
    assert key.seed.hex() not in repr(key) + str(key)
    import pickle

    with pytest.raises(TypeError, match="cannot be pickled"):  # it would carry the seed
        pickle.dumps(key)
    with pytest.raises(KeyFileError, match="never overwritten"):
        generate_signing_key_file(path)


def test_signing_key_file_refusals(tmp_path: Path):
    path = tmp_path / "vendor.key"
    generate_signing_key_file(path)
    data = bytearray(path.read_bytes())
    data[20] ^= 1
    damaged = tmp_path / "damaged.key"
    damaged.write_bytes(bytes(data))
    damaged.chmod(0o600)
    with pytest.raises(KeyFileError, match="checksum"):
        load_signing_key(damaged)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="accessible by other users"):
        load_signing_key(path)
    other = tmp_path / "other.key"
    other.write_bytes(b"bmcrypt-key-v1\n")
    other.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a bmcrypt signing key"):
        load_signing_key(other)


def test_public_key_string_round_trips_and_refuses_typos():
    text = VENDOR.public_string
    assert text.startswith("bmcryptlic1") and len(text) == len("bmcryptlic1") + 52 + 6
    assert decode_public_key(text) == VENDOR.public_key
    assert decode_public_key(text.upper()) == VENDOR.public_key
    typo = text[:20] + ("q" if text[20] != "q" else "p") + text[21:]
    for bad, why in [(typo, "checksum"), ("age1" + text[11:], "bmcryptlic1"),
                     (text[:-1], "checksum"), (text[:15] + "b" + text[16:], "characters"),
                     (text[:12] + text[12].upper() + text[13:], "mixed case")]:
        with pytest.raises(ValueError, match=why):
            decode_public_key(bad)
    with pytest.raises(ValueError):
        encode_public_key(bytes(31))


# ---------------------------------------------------------------- the licence's bytes


def test_licence_round_trip():
    serials = (b"HQDZKM5BAJEJG0A9B", b"SN-2")
    data = issue_licence(VENDOR, FILE_ID, 1798761599, serials)
    assert data[:6] == b"BMCL\x01\x02" and len(data) == 64 + 18 + 5 + 64
    lic = parse_licence(data, "m.bmlic")
    assert (lic.file_id, lic.not_after, lic.signer, lic.serials) == (
        FILE_ID, 1798761599, VENDOR.public_key, serials)
    assert lic.expires == "2026-12-31T23:59:59Z"
    assert lic.signature_valid()


def _with(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value):]


GOOD = issue_licence(VENDOR, FILE_ID, FUTURE, (b"SN1",))
MALFORMED = {
    "short": GOOD[:127],
    "long": GOOD + bytes(64 + 32 * 65),
    "magic": _with(GOOD, 0, b"BMCX"),
    "version": _with(GOOD, 4, b"\x02"),
    "reserved": _with(GOOD, 6, b"\x01"),
    "too many serials": _with(GOOD, 5, b"\x21"),
    "serial of length 0": _with(GOOD, 64, b"\x00"),
    "serial into the signature": _with(GOOD, 64, b"\x41"),
    "bytes after the serials": _with(GOOD, 5, b"\x00"),
    "expiry out of range": _with(GOOD, 24, struct.pack("<Q", 2**63)),
    "serial twice": issue_licence(VENDOR, FILE_ID, FUTURE, (b"A",))[:-64] + b"\x01A" + bytes(64),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_licences_are_corrupt_in_python_and_native(case: str):
    data = MALFORMED[case]
    if case == "serial twice":  # the count says 2 serials
        data = _with(data, 5, b"\x02")
    with pytest.raises(CorruptLicence):
        parse_licence(data, "x.bmlic")
    _native.clear_licences()
    with pytest.raises(CorruptLicence):
        _native.register_licence(data, "x.bmlic")


# ---------------------------------------------------------------- the checks, in order


def test_a_valid_licence_passes():
    require(licence())
    require(licence(serials=(b"SN0", b"SN1")), sn=b"SN1", on_device=True)
    require(licence(not_after=1000), now=1000)  # the last second of validity is valid


def test_no_licence():
    with pytest.raises(NoLicence, match="requires a licence signed by bmcryptlic1"):
        require()


def test_signed_by_another_key():
    with pytest.raises(BadLicenceSignature, match="signed by bmcryptlic1"):
        require(licence(key=OTHER_VENDOR))


@pytest.mark.parametrize("offset", [8, 24, 40, 65, -1], ids=["file_id", "not_after", "signer",
                                                             "serial", "signature"])
def test_a_changed_byte_breaks_the_signature(offset: int):
    data = bytearray(issue_licence(VENDOR, FILE_ID, FUTURE, (b"SN1",)))
    data[offset] ^= 1
    lic = parse_licence(bytes(data), "m.bmlic")
    expected = "signed by" if offset == 40 else "does not verify"
    with pytest.raises(BadLicenceSignature, match=expected):
        require(lic, sn=b"SN1")


def test_licence_for_another_file():
    with pytest.raises(LicenceForAnotherFile, match=f"for file {OTHER_FILE_ID.hex()}"):
        require(licence(file_id=OTHER_FILE_ID))


def test_expired_licence():
    with pytest.raises(LicenceExpired, match="expired at"):
        require(licence(not_after=PAST))
    with pytest.raises(LicenceExpired):
        require(licence(not_after=1000), now=1001)


def test_licence_for_another_device():
    bound = licence(serials=(b"SN1", b"SN2"))
    with pytest.raises(LicenceForAnotherDevice, match=r"SN1, SN2, not for this one \(SN3\)"):
        require(bound, sn=b"SN3", on_device=True)
    with pytest.raises(LicenceForAnotherDevice, match="no device serial number") as off:
        require(bound)
    assert off.value.hint == NO_DEVICE_HINT
    with pytest.raises(LicenceForAnotherDevice) as sim:
        require(bound, sn=None, on_device=True)
    assert sim.value.hint == SIMULATOR_HINT and "BM_NOT_SUPPORTED" in SIMULATOR_HINT


def test_the_licence_that_came_furthest_names_the_error():
    expired = licence(not_after=PAST)
    with pytest.raises(LicenceExpired):
        require(licence(key=OTHER_VENDOR), licence(file_id=OTHER_FILE_ID), expired)
    with pytest.raises(LicenceForAnotherFile):
        require(licence(key=OTHER_VENDOR), licence(file_id=OTHER_FILE_ID))
    require(expired, licence(key=OTHER_VENDOR), licence())  # one that passes is enough


def test_the_serial_number_is_read_only_when_a_licence_lists_some():
    asked = []

    def read() -> bytes:
        asked.append(1)
        return b"SN1"

    require(licence(), sn=read, on_device=True)
    assert asked == []
    require(licence(serials=(b"SN1",)), sn=read, on_device=True)
    assert asked == [1]


def test_a_file_without_the_policy_needs_no_licence():
    require_licence(header=Header(policy=0, licence_key=bytes(32)), keyring=["a secret"])


def test_loose_licences_in_a_keyring_count():
    require_licence(header=Header(), keyring=["a secret", licence()])


def test_each_reason_has_its_own_exit_code():
    reasons = [NoLicence, CorruptLicence, BadLicenceSignature, LicenceForAnotherFile,
               LicenceExpired, LicenceForAnotherDevice]
    codes = [c.exit_code for c in reasons]
    assert codes == [10, 11, 12, 13, 14, 15]
    others = {c.exit_code for c in _all_error_classes() if not issubclass(c, LicenceError)}
    assert not others & set(codes)


def _all_error_classes() -> list[type[BmcryptError]]:
    import bmcrypt.errors as module

    return [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, BmcryptError)]


# ---------------------------------------------------------------- the native core agrees

VERDICTS = {
    "valid": ((licence(),), None, None),
    "none": ((), None, NoLicence),
    "other signer": ((licence(key=OTHER_VENDOR),), None, BadLicenceSignature),
    "tampered": ((parse_licence(_with(GOOD, 70, b"\x00"), "t"),), b"SN1", BadLicenceSignature),
    "other file": ((licence(file_id=OTHER_FILE_ID),), None, LicenceForAnotherFile),
    "expired": ((licence(not_after=PAST),), None, LicenceExpired),
    "other device": ((licence(serials=(b"SN1",)),), b"SN9", LicenceForAnotherDevice),
    "unknown device": ((licence(serials=(b"SN1",)),), None, LicenceForAnotherDevice),
    "device listed": ((licence(serials=(b"SN0", b"SN1")),), b"SN1", None),
    "furthest": ((licence(key=OTHER_VENDOR), licence(not_after=PAST),
                  licence(file_id=OTHER_FILE_ID)), None, LicenceExpired),
}


def _both_say(expected: type[Exception] | None, *checks: Callable[[], object]) -> None:
    """Every check passes (`expected` None) or raises `expected`: Python and C agree."""
    for check in checks:
        if expected is None:
            check()
        else:
            with pytest.raises(expected):
                check()


@pytest.mark.parametrize("case", VERDICTS, ids=list(VERDICTS))
def test_python_and_native_give_the_same_verdict(case: str):
    licences, sn, expected = VERDICTS[case]
    now = int(time.time())
    _native.clear_licences()
    try:
        for lic in licences:
            _native.register_licence(lic.raw, lic.source)
        _native.set_device_sn(sn)
        _both_say(expected,
                  lambda: LicenceSet(licences, sn, on_device=True).require(
                      FILE_ID, VENDOR.public_key, now),
                  lambda: _native.require_licence(FILE_ID, VENDOR.public_key, now))
    finally:
        _native.clear_licences()


# ---------------------------------------------------------------- the command line


def test_cli_keygen_and_show(tmp_path: Path):
    key = tmp_path / "vendor.key"
    made = bmcrypt("license", "keygen", "-o", key)
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip()
    assert public == load_signing_key(key).public_string
    again = bmcrypt("license", "keygen", "-y", key, "--json")
    assert json_document(again, "license-keygen")["public_key"] == public
    assert key.read_bytes().hex() not in made.stdout + made.stderr + again.stdout

    lic = tmp_path / "m.bmlic"
    lic.write_bytes(issue_licence(load_signing_key(key), FILE_ID, 1798761599, (b"SN1",)))
    shown = json_document(bmcrypt("license", "show", lic, "--json"), "license-show")
    assert (shown["file_id"], shown["not_after"], shown["device_sns"], shown["signer"],
            shown["signature_ok"]) == (FILE_ID.hex(), "2026-12-31T23:59:59Z", ["SN1"], public,
                                       True)
    data = bytearray(lic.read_bytes())
    data[-1] ^= 1
    lic.write_bytes(bytes(data))
    broken = bmcrypt("license", "show", lic)
    assert broken.returncode == 0 and "BROKEN" in broken.stdout

    lic.write_bytes(b"BMCL")
    assert_clean_error(bmcrypt("license", "show", lic), 11, "not a valid licence")
    assert_clean_error(bmcrypt("license", "keygen", "-o", key), 7, "never overwritten")
    assert_clean_error(bmcrypt("license", "keygen"), 2)


@pytest.mark.parametrize(("given", "expected"), [
    ("2027-06-30", "2027-06-30T23:59:59Z"),
    ("2027-06-30T12:00:00Z", "2027-06-30T12:00:00Z"),
    ("2027-06-30T12:00:00", "2027-06-30T12:00:00Z"),
    ("2027-06-30T14:00:00+02:00", "2027-06-30T12:00:00Z"),
])
def test_not_after_is_utc(given: str, expected: str):
    from datetime import UTC, datetime

    from bmcrypt.cli.cmd_license import parse_not_after

    moment = datetime.fromtimestamp(parse_not_after(given), UTC)
    assert moment.strftime("%Y-%m-%dT%H:%M:%SZ") == expected


# ---------------------------------------------------------------- the committed vectors

VECTORS = Path(__file__).resolve().parent / "vectors" / "licences"
EXPECTED = {"success": None, "no_licence": NoLicence, "corrupt_licence": CorruptLicence,
            "bad_licence_signature": BadLicenceSignature,
            "licence_for_another_file": LicenceForAnotherFile,
            "licence_expired": LicenceExpired,
            "licence_for_another_device": LicenceForAnotherDevice}


def _vector(path: Path) -> dict[str, str]:
    fields = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(": ")
            fields[key] = value
    return fields


@pytest.mark.parametrize("path", sorted(VECTORS.glob("*.txt")), ids=lambda p: p.stem)
def test_vectors_in_python_and_native(path: Path):
    v = _vector(path)
    expected = EXPECTED[v["expect"]]
    file_id, key, now = bytes.fromhex(v["file_id"]), bytes.fromhex(v["licence_key"]), int(v["now"])
    sn = bytes.fromhex(v["device_sn"]) if "device_sn" in v else None
    raw = [bytes.fromhex(v["licence"])] if "licence" in v else []

    def python() -> None:
        LicenceSet([parse_licence(r, path.name) for r in raw], sn,
                   on_device=True).require(file_id, key, now)

    def native() -> None:
        _native.clear_licences()
        for r in raw:
            _native.register_licence(r, path.name)
        _native.set_device_sn(sn)
        _native.require_licence(file_id, key, now)

    try:
        _both_say(expected, python, native)
    finally:
        _native.clear_licences()


def test_vectors_are_what_the_script_writes(tmp_path: Path):
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "make-licence-vectors.py"
    subprocess.run([sys.executable, script, "--out", tmp_path], check=True)
    written = {p.name: p.read_text() for p in tmp_path.glob("*.txt")}
    committed = {p.name: p.read_text() for p in VECTORS.glob("*.txt")}
    assert written == committed and len(written) >= 16
