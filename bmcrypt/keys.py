"""Key files, identity files, and where a command's key comes from (docs/keys.md).

A key file is three lines of ASCII, created with mode 0600 and never overwritten:

    bmcrypt-key-v1
    # key id 1a2b3c4d5e6f7081, created 2026-01-01T00:00:00Z
    key: <K as 64 lower-case hex digits>

An identity file (FORMAT.md §8.3) holds an X25519 secret key in 72 bytes, also 0600:
"BMCRYPT-X25519-1" || r (32) || SHA-256 of those 48 bytes [0..24]. Wherever a key file is
accepted, so is an identity file: its length and magic say which it is.

No message here ever contains a key file's text: a malformed file is described, not quoted.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import re
import secrets
import shlex
import stat
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from bmcrypt.crypto.kdf import KEY_LEN, Passphrase, Rng, UserKey
from bmcrypt.crypto.secret import Secret
from bmcrypt.crypto.x25519 import Identity
from bmcrypt.errors import KeyFileError, KeyProblem, NoKey
from bmcrypt.files.paths import fsync_dir

KEY_FILE_MAGIC = "bmcrypt-key-v1"
IDENTITY_MAGIC = b"BMCRYPT-X25519-1"
IDENTITY_FILE_LEN = 72
ENV_KEY_FILE = "BMCRYPT_KEY_FILE"
ENV_PASSPHRASE = "BMCRYPT_PASSPHRASE"

_MAX_KEY_FILE_SIZE = 4096  # a key file is ~130 bytes; refuse to read anything large
_KEY_LINE = re.compile(r"key: ([0-9a-f]{64})")
_OTHER_VERSION = re.compile(r"bmcrypt-key-v[0-9]{1,4}")

PathArg = str | os.PathLike[str]


def generate_key_file(path: PathArg, *, rng: Rng | None = None,
                      now: datetime | None = None) -> UserKey:
    """Create a key file holding a new random 256-bit key; return that key.

    The file is created exclusively with mode 0600 (an existing file is never replaced),
    written in full and fsynced, and so is its directory. On failure nothing is left behind.
    """
    k = (rng or secrets.token_bytes)(KEY_LEN)
    key = UserKey(k)
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"{KEY_FILE_MAGIC}\n# key id {key.key_id_hex}, created {created}\nkey: {k.hex()}\n"
    write_secret_file(path, text.encode("ascii"))
    return key


def generate_identity_file(path: PathArg, *, rng: Rng | None = None) -> Identity:
    """Create an identity file holding a new X25519 secret key; return the identity (whose
    `recipient` is what others encrypt for). Written as a key file is: exclusively, 0600,
    fsynced, never over an existing file."""
    identity = Identity((rng or secrets.token_bytes)(KEY_LEN))
    body = IDENTITY_MAGIC + identity._secret_bytes()
    write_secret_file(path, body + hashlib.sha256(body).digest()[:24])
    return identity


def write_secret_file(path: PathArg, content: bytes) -> None:
    """Create `path` with `content`: exclusively (never over an existing file or through a
    link), mode 0600, written in full and fsynced with its directory; nothing left on failure.
    Every secret file of bmcrypt is written here (key, identity and signing key files)."""
    where = os.fspath(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(where, flags, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{where} already exists; a key file is never overwritten",
                           hint="choose another path (files encrypted with the old key "
                                "still need it)") from None
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {where}: {_reason(exc)}",
                           hint="check that the directory exists and is writable") from None
    try:
        os.fchmod(fd, 0o600)  # the umask may only have narrowed it; state it exactly
        data = memoryview(content)
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        os.unlink(where)
        raise KeyFileError(f"cannot write key file {where}: {_reason(exc)}",
                           hint="check free disk space") from None
    os.close(fd)
    fsync_dir(Path(os.path.abspath(where)).parent)  # the new name is durable too


def load_key_file(path: PathArg) -> UserKey | Identity:
    """Read a key file or an identity file, refusing one that other users could read or write
    (mode & 0o077)."""
    where = os.fspath(path)
    try:
        # O_NONBLOCK: a FIFO at that path must not hang us before we can refuse it.
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(f"key file {where} does not exist") from None
    except OSError as exc:
        raise KeyFileError(f"cannot open key file {where}: {_reason(exc)}",
                           hint="check the path and its permissions") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise KeyFileError(f"{where} is a directory, not a key file")
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{where} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"key file {where} is accessible by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o})",
                hint=f"chmod 600 {shlex.quote(where)}")
        data = b""
        while len(data) <= _MAX_KEY_FILE_SIZE and (more := os.read(fd, _MAX_KEY_FILE_SIZE + 1)):
            data += more
    finally:
        os.close(fd)
    if data.startswith(IDENTITY_MAGIC[:8]):
        return _parse_identity_file(data, where)
    return _parse_key_file(data, where)


def load_identity_file(path: PathArg) -> Identity:
    """An identity file (KeyFileError for a key file or anything else)."""
    found = load_key_file(path)
    if not isinstance(found, Identity):
        raise KeyFileError(f"{os.fspath(path)} is a key file, not an identity file",
                           hint="create an identity with `bmcrypt keygen --x25519 -o FILE`")
    return found


def _parse_identity_file(data: bytes, where: str) -> Identity:
    body = data[:48]
    if len(data) != IDENTITY_FILE_LEN or not body.startswith(IDENTITY_MAGIC):
        raise KeyFileError(f"{where} is not a bmcrypt identity file (its length or magic is "
                           "wrong)")
    if not hmac.compare_digest(hashlib.sha256(body).digest()[:24], data[48:]):
        raise KeyFileError(f"identity file {where} is damaged (its checksum does not match)",
                           hint="restore it from its backup")
    return Identity(body[16:])


def resolve_keys(key_path: PathArg | None = None, passphrase: bool | str | None = None, *,
                 env: Mapping[str, str] = os.environ,
                 prompt: Callable[[str], str] = getpass.getpass) -> Secret:
    """The secret a command uses. Explicit arguments come before the environment:

    1. `key_path` (`--key FILE`);
    2. `passphrase` given as a string, or `True` (`--passphrase`): $BMCRYPT_PASSPHRASE if set,
       else asked for with `prompt`;
    3. $BMCRYPT_KEY_FILE;
    4. $BMCRYPT_PASSPHRASE;
    otherwise NoKey.
    """
    if key_path is not None and passphrase not in (None, False):
        raise KeyProblem("--key and --passphrase exclude each other", hint="pass only one")
    if key_path is not None:
        return load_key_file(key_path)
    if isinstance(passphrase, str):
        return _passphrase(passphrase)
    if passphrase is True:
        if env.get(ENV_PASSPHRASE):
            return _passphrase(env[ENV_PASSPHRASE])
        try:
            typed = prompt("passphrase: ")
        except EOFError:
            raise NoKey("no passphrase: nothing to read it from",
                        hint=f"run on a terminal, or set {ENV_PASSPHRASE}") from None
        return _passphrase(typed)
    if env.get(ENV_KEY_FILE):
        return load_key_file(env[ENV_KEY_FILE])
    if env.get(ENV_PASSPHRASE):
        return _passphrase(env[ENV_PASSPHRASE])
    raise NoKey("no key given")


def _parse_key_file(data: bytes, where: str) -> UserKey:
    malformed = f"key file {where} is malformed"
    if len(data) > _MAX_KEY_FILE_SIZE:
        raise KeyFileError(f"{where} is too large to be a key file")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise KeyFileError(f"{where} is not a bmcrypt key file (not ASCII text)") from None
    if "\r" in text:
        raise KeyFileError(f"{malformed} (it has CR LF line endings)",
                           hint=f"convert it back: dos2unix {shlex.quote(where)}")
    lines = text.split("\n")
    if lines[-1] == "":  # the final newline is optional
        lines.pop()
    first = lines[0] if lines else ""
    if first != KEY_FILE_MAGIC:
        if _OTHER_VERSION.fullmatch(first):
            raise KeyFileError(f"key file {where} is in format {first}, which this bmcrypt "
                               "does not read", hint="upgrade bmcrypt")
        raise KeyFileError(f"{where} is not a bmcrypt key file "
                           f"(its first line is not {KEY_FILE_MAGIC})")
    body = [line for line in lines[1:] if not line.startswith("#")]
    match = _KEY_LINE.fullmatch(body[0]) if len(body) == 1 else None
    if match is None:
        raise KeyFileError(f"{malformed} (after the first line and # comments it must hold "
                           "one line: `key: ` and 64 lower-case hex digits)")
    return UserKey(bytes.fromhex(match.group(1)))


def _passphrase(text: str) -> Passphrase:
    if not text:
        raise NoKey("the passphrase is empty")
    try:
        return Passphrase(text)
    except ValueError as exc:  # not encodable as UTF-8; the message does not quote it
        raise NoKey(str(exc)) from None


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()

