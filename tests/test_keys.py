"""Key files and key resolution (docs/keys.md)."""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bmcrypt.crypto import Kind, Passphrase, UserKey, new_file, seal, unseal
from bmcrypt.errors import BmcryptError, KeyFileError, KeyProblem, NoKey
from bmcrypt.keys import generate_key_file, load_key_file, resolve_keys

HEX = "0123456789abcdef" * 4
GOOD = f"bmcrypt-key-v1\n# key id 0000000000000000, created 2026-01-01T00:00:00Z\nkey: {HEX}\n"


def key_file(tmp_path: Path, text: str | bytes, mode: int = 0o600, name: str = "k.key") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return path


def texts_of(exc: BmcryptError) -> str:
    return f"{exc} {exc!r} {exc.hint}"


# ---------------------------------------------------------------- generate


def test_generate_writes_a_0600_file_in_the_documented_format(tmp_path: Path) -> None:
    path = tmp_path / "model.key"
    key = generate_key_file(path, now=datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().split("\n")
    assert lines[0] == "bmcrypt-key-v1"
    assert lines[1] == f"# key id {key.key_id_hex}, created 2026-05-04T03:02:01Z"
    assert re.fullmatch(r"key: [0-9a-f]{64}", lines[2]) and lines[3:] == [""]
    assert load_key_file(path).key_id == key.key_id


def test_generate_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        generate_key_file(tmp_path / "a.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.key").stat().st_mode) == 0o600


def test_generated_keys_are_random(tmp_path: Path) -> None:
    first = generate_key_file(tmp_path / "1.key")
    second = generate_key_file(tmp_path / "2.key")
    assert first.key_id != second.key_id


def test_generate_never_overwrites(tmp_path: Path) -> None:
    path = key_file(tmp_path, GOOD)
    with pytest.raises(KeyFileError) as raised:
        generate_key_file(path)
    assert "already exists" in str(raised.value) and raised.value.hint
    assert path.read_text() == GOOD
    link = tmp_path / "link.key"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(KeyFileError):  # not even through a dangling symlink
        generate_key_file(link)
    assert not (tmp_path / "nowhere").exists()


def test_generate_into_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        generate_key_file(tmp_path / "no" / "such.key")


def test_a_generated_key_encrypts_and_decrypts(tmp_path: Path) -> None:
    written = generate_key_file(tmp_path / "k.key")
    # The header envelope: in version 2 it carries the key area (FORMAT.md §8.2).
    envelope = seal(new_file(written), Kind.HEADER_TAIL, b"weights")
    assert unseal(envelope, load_key_file(tmp_path / "k.key")) == b"weights"


# ---------------------------------------------------------------- load


def test_load_reads_the_key(tmp_path: Path) -> None:
    assert load_key_file(key_file(tmp_path, GOOD)).key_id == UserKey(bytes.fromhex(HEX)).key_id


@pytest.mark.parametrize("text", [
    GOOD.rstrip("\n"),  # no final newline
    f"bmcrypt-key-v1\nkey: {HEX}\n",  # no comment
    f"bmcrypt-key-v1\n# one\n#two\nkey: {HEX}\n# after\n",  # more comments
])
def test_load_accepts(tmp_path: Path, text: str) -> None:
    assert load_key_file(key_file(tmp_path, text)).key_id == UserKey(bytes.fromhex(HEX)).key_id


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o700 | 0o004])
def test_load_refuses_a_file_others_can_access(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, GOOD, mode)
    with pytest.raises(KeyFileError) as raised:
        load_key_file(path)
    assert raised.value.hint == f"chmod 600 {path}"
    assert HEX not in texts_of(raised.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only_modes(tmp_path: Path, mode: int) -> None:
    load_key_file(key_file(tmp_path, GOOD, mode))


def test_load_refuses_missing_directory_and_fifo(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="does not exist"):
        load_key_file(tmp_path / "missing.key")
    with pytest.raises(KeyFileError, match="directory"):
        load_key_file(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_key_file(fifo)  # and does not hang waiting for a writer


@pytest.mark.parametrize(("name", "text"), [
    ("empty", ""),
    ("no magic", f"key: {HEX}\n"),
    ("other magic", f"bmcrypt-key\nkey: {HEX}\n"),
    ("uppercase hex", f"bmcrypt-key-v1\nkey: {HEX.upper()}\n"),
    ("short hex", f"bmcrypt-key-v1\nkey: {HEX[:-1]}\n"),
    ("long hex", f"bmcrypt-key-v1\nkey: {HEX}0\n"),
    ("no key line", "bmcrypt-key-v1\n# only a comment\n"),
    ("two key lines", f"bmcrypt-key-v1\nkey: {HEX}\nkey: {HEX}\n"),
    ("blank line", f"bmcrypt-key-v1\n\nkey: {HEX}\n"),
    ("trailing space", f"bmcrypt-key-v1\nkey: {HEX} \n"),
    ("bare hex", f"bmcrypt-key-v1\n{HEX}\n"),
    ("crlf", f"bmcrypt-key-v1\r\nkey: {HEX}\r\n"),
    ("two final newlines", f"bmcrypt-key-v1\nkey: {HEX}\n\n"),
    ("not ascii", f"bmcrypt-key-v1\nkey: {HEX}\n# é\n"),
    ("huge", f"bmcrypt-key-v1\nkey: {HEX}\n" + "#" * 5000 + "\n"),
])
def test_load_refuses_a_malformed_file_without_quoting_it(tmp_path: Path, name: str,
                                                          text: str) -> None:
    with pytest.raises(KeyFileError) as raised:
        load_key_file(key_file(tmp_path, text))
    message = texts_of(raised.value)
    assert HEX not in message and HEX.upper() not in message and HEX[:-1] not in message
    assert "\n" not in str(raised.value)


def test_a_newer_key_file_format_asks_for_an_upgrade(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as raised:
        load_key_file(key_file(tmp_path, f"bmcrypt-key-v2\nkey: {HEX}\n"))
    assert "bmcrypt-key-v2" in str(raised.value) and raised.value.hint == "upgrade bmcrypt"


def test_the_key_never_shows(tmp_path: Path) -> None:
    generate_key_file(tmp_path / "k.key")
    hex_key = (tmp_path / "k.key").read_text().split("key: ")[1].strip()
    key = load_key_file(tmp_path / "k.key")
    keys = new_file(key)
    texts = [repr(key), str(key), repr(keys), str(keys)]
    (tmp_path / "k.key").chmod(0o644)
    with pytest.raises(KeyFileError) as raised:
        load_key_file(tmp_path / "k.key")
    texts.append(texts_of(raised.value))
    for text in texts:
        assert hex_key not in text


# ---------------------------------------------------------------- resolve


def no_prompt(_: str) -> str:
    raise AssertionError("must not prompt")


def test_resolve_order(tmp_path: Path) -> None:
    path = key_file(tmp_path, GOOD)
    env = {"BMCRYPT_KEY_FILE": str(path), "BMCRYPT_PASSPHRASE": "from env"}
    assert isinstance(resolve_keys(str(path), None, env={}, prompt=no_prompt), UserKey)
    assert isinstance(resolve_keys(None, None, env=env, prompt=no_prompt), UserKey)
    # An explicit --passphrase beats the key file named in the environment.
    assert isinstance(resolve_keys(None, "typed", env=env, prompt=no_prompt), Passphrase)
    assert isinstance(resolve_keys(None, True, env=env, prompt=no_prompt), Passphrase)
    only_pass = {"BMCRYPT_PASSPHRASE": "from env"}
    assert isinstance(resolve_keys(None, None, env=only_pass, prompt=no_prompt), Passphrase)
    with pytest.raises(NoKey):
        resolve_keys(None, None, env={}, prompt=no_prompt)
    with pytest.raises(NoKey):
        resolve_keys(None, False, env={"BMCRYPT_KEY_FILE": ""}, prompt=no_prompt)


def test_resolve_passphrases_are_the_ones_given() -> None:
    keys = new_file(Passphrase("s3cret", log2n=10))
    envelope = seal(keys, Kind.HEADER_TAIL, b"x")
    for secret in [
        resolve_keys(None, "s3cret", env={}, prompt=no_prompt),
        resolve_keys(None, True, env={"BMCRYPT_PASSPHRASE": "s3cret"}, prompt=no_prompt),
        resolve_keys(None, True, env={}, prompt=lambda _: "s3cret"),
        resolve_keys(None, None, env={"BMCRYPT_PASSPHRASE": "s3cret"}, prompt=no_prompt),
    ]:
        assert unseal(envelope, secret) == b"x"


def test_resolve_refuses_unusable_input(tmp_path: Path) -> None:
    path = key_file(tmp_path, GOOD)
    with pytest.raises(KeyProblem):
        resolve_keys(str(path), True, env={}, prompt=no_prompt)
    with pytest.raises(NoKey):
        resolve_keys(None, True, env={}, prompt=lambda _: "")

    def closed_stdin(_: str) -> str:
        raise EOFError

    with pytest.raises(NoKey):
        resolve_keys(None, True, env={}, prompt=closed_stdin)
    with pytest.raises(KeyFileError):
        resolve_keys(None, None, env={"BMCRYPT_KEY_FILE": str(tmp_path / "gone")},
                     prompt=no_prompt)
