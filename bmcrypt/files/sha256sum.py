"""The backup manifest: one line in ``sha256sum`` format, so ``sha256sum -c`` can check it.

    <64 hex digits><space><space or *><backup file name>\n

As in coreutils, a name holding a backslash, newline or carriage return is written as escapes
(``\\\\``, ``\\n``, ``\\r``) on a line that starts with a backslash. The name is the backup's
base name: run ``sha256sum -c`` in the backup's directory. Reading is lenient where sha256sum is
(binary marker ``*``, a path whose last component is the backup's name) and strict elsewhere: one
entry, nothing else.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bmcrypt.errors import Corrupt

from .atomic import atomic_write
from .opening import read_derived
from .paths import default_new_file_mode

_MAX_MANIFEST_BYTES = 64 << 10
_LINE = re.compile(r"(\\?)([0-9a-fA-F]{64}) [ *](.+)", re.DOTALL)
_ESCAPES = {"\\": "\\", "n": "\n", "r": "\r"}


def manifest_path(backup: Path) -> Path:
    """``<backup>.sha256`` next to the backup."""
    return backup.with_name(backup.name + ".sha256")


def format_manifest(digest: str, name: str) -> str:
    """The manifest line for a file called `name` with SHA-256 `digest`."""
    if any(c in name for c in "\\\n\r"):
        escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{digest}  {escaped}\n"
    return f"{digest}  {name}\n"


def _unescape(name: str) -> str | None:
    out, chars = [], iter(name)
    for c in chars:
        if c == "\\":
            c = _ESCAPES.get(next(chars, ""), "")
            if not c:
                return None
        out.append(c)
    return "".join(out)


def parse_manifest(text: str) -> tuple[str, str] | None:
    """(lower-case hex digest, file name) of a one-entry sha256sum manifest; None if it is not."""
    lines = [line for line in text.split("\n") if line]
    if len(lines) != 1 or not (m := _LINE.fullmatch(lines[0])):
        return None
    escaped, digest, name = m.groups()
    if escaped:
        unescaped = _unescape(name)
        if unescaped is None:
            return None
        name = unescaped
    return digest.lower(), name


def read_manifest(backup: Path) -> str | None:
    """The SHA-256 that `backup`'s manifest records, or None if it has no manifest.

    Raises Corrupt if the manifest exists but is not a one-entry sha256sum file naming `backup`,
    SymlinkRefused if it is a symbolic link, NotRegularFile if it is a directory, FIFO, ….
    """
    manifest = manifest_path(backup)
    hint = (f"if you trust the backup, recreate it: cd {backup.parent} && "
            f"sha256sum {backup.name} > {manifest.name}")
    raw = read_derived(manifest, "a backup's manifest", _MAX_MANIFEST_BYTES)
    if raw is None:
        return None
    entry = None
    if len(raw) <= _MAX_MANIFEST_BYTES:
        entry = parse_manifest(raw.decode("utf-8", "surrogateescape"))
    if entry is None:
        raise Corrupt(f"{manifest} is not a sha256sum manifest of one file", hint=hint)
    digest, name = entry
    if os.path.basename(name) != backup.name:
        raise Corrupt(f"{manifest} is the manifest of {name!r}, not of {backup.name!r}", hint=hint)
    return digest


def write_manifest(backup: Path, digest: str) -> Path:
    """Write (atomically, replacing any old one) the manifest of `backup`; return its path.

    A symbolic link at the manifest's name is refused (SymlinkRefused), never written through."""
    manifest = manifest_path(backup)
    with atomic_write(manifest, mode=default_new_file_mode(), through_link=False) as f:
        f.write(format_manifest(digest, backup.name).encode("utf-8", "surrogateescape"))
    return manifest
