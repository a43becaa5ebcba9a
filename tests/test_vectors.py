"""The committed envelope test vectors (tests/vectors/*.txt): every one gives exactly its expected
outcome, one-shot and streaming, and the files are exactly what scripts/make-vectors.py writes."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from bmcrypt.crypto import (
    FileKeys,
    Identity,
    Passphrase,
    Secret,
    Unsealer,
    UserKey,
    parse_header,
    unseal,
)
from bmcrypt.errors import BmcryptError, Corrupt, Tampered, Truncated, UnsupportedVersion, WrongKey

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
OUTCOMES: dict[str, type[BmcryptError] | None] = {
    "success": None,
    "wrong_key": WrongKey,
    "tampered": Tampered,
    "truncated": Truncated,
    "corrupt": Corrupt,
    "unsupported_version": UnsupportedVersion,
}
REQUIRED = {"expect", "about", "envelope"}
SECRETS = {"key", "passphrase", "identity"}
KNOWN = REQUIRED | SECRETS | {"kind", "plaintext", "header"}


def read_vector(path: Path) -> dict[str, str]:
    """`key: value` lines and `#` comments (tests/vectors/README.md), strictly."""
    fields: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(": ")
        assert sep and name in KNOWN and name not in fields, f"{path.name}: bad line {name!r}"
        fields[name] = value
    assert fields.keys() >= REQUIRED, path.name
    assert len(SECRETS & fields.keys()) == 1, path.name
    return fields


def secret_of(fields: dict[str, str]) -> Secret | FileKeys:
    """The vector's secret; with a `header` (version 2), the keys that opening it gave."""
    if "key" in fields:
        secret: Secret = UserKey(bytes.fromhex(fields["key"]))
    elif "identity" in fields:
        secret = Identity(bytes.fromhex(fields["identity"]))
    else:
        secret = Passphrase(fields["passphrase"])
    if "header" not in fields:
        return secret
    opener = Unsealer(secret)
    opener.update(bytes.fromhex(fields["header"]))
    opener.finish()
    assert opener.file_keys is not None
    return opener.file_keys


def outcome(run: Callable[[], object]) -> type[BmcryptError] | None:
    try:
        run()
    except BmcryptError as exc:
        return type(exc)
    return None


def vector_files() -> list[Path]:
    return sorted(VECTORS.glob("*.txt"))


def test_there_are_vectors_of_every_outcome() -> None:
    seen = {read_vector(p)["expect"] for p in vector_files()}
    assert seen == set(OUTCOMES)
    v2 = {read_vector(p)["expect"] for p in vector_files() if p.name.startswith("v2_")}
    assert v2 == set(OUTCOMES)


@pytest.mark.parametrize("path", vector_files(), ids=lambda p: p.stem)
def test_vector(path: Path) -> None:
    fields = read_vector(path)
    expected = OUTCOMES[fields["expect"]]
    envelope = bytes.fromhex(fields["envelope"])
    secret = secret_of(fields)

    got = outcome(lambda: unseal(envelope, secret))
    assert got is expected, f"{path.stem}: {fields['about']}"
    if expected is None:
        assert unseal(envelope, secret) == bytes.fromhex(fields["plaintext"])
        assert parse_header(envelope).kind == int(fields["kind"])

    # Streaming, with the length known up front and without, in uneven chunks: same outcome.
    # Without the length a stream cannot check it before the key: that one case differs.
    lengths = [len(envelope)] if path.stem == "corrupt_order_length_before_key" else [
        len(envelope), None]
    for envelope_len in lengths:
        def stream(envelope_len: int | None = envelope_len) -> bytes:
            unsealer, out = Unsealer(secret, envelope_len=envelope_len), bytearray()
            for i in range(0, len(envelope), 1000):
                out += unsealer.update(envelope[i:i + 1000])
            out += unsealer.finish()
            return bytes(out)
        assert outcome(stream) is expected, f"{path.stem} streaming, length {envelope_len}"
        if expected is None:
            assert stream() == bytes.fromhex(fields["plaintext"])


def load_script() -> ModuleType:
    script = ROOT / "scripts" / "make-vectors.py"
    spec = importlib.util.spec_from_file_location("make_vectors", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def test_committed_vectors_are_what_the_script_writes(tmp_path: Path) -> None:
    load_script().main(["--out", str(tmp_path)])
    written = {p.name: p.read_bytes() for p in tmp_path.glob("*.txt")}
    committed = {p.name: p.read_bytes() for p in vector_files()}
    assert sorted(written) == sorted(committed), "run scripts/make-vectors.py and commit"
    changed = [name for name in written if written[name] != committed[name]]
    assert not changed, f"run scripts/make-vectors.py and review: {changed}"


def test_the_scripts_own_segment_sealing_matches_the_implementation() -> None:
    # The segment attacks are built by re-sealing in the script; with the right flags its
    # envelope must open, or those vectors would prove nothing.
    script = load_script()
    file = script.File("cross-check")
    plaintext = file.rng(2 * script.S + 1)
    envelope = script.seal_with_flags(file, plaintext, [0, 0, 1])
    assert unseal(envelope, UserKey(file.k)) == plaintext
