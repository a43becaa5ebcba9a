"""What `bmcrypt inspect` reports about model files: plain data, no terminal code.

One :class:`FileReport` per file, whatever state it is in:

- **plain**: everything `model_tool --info` prints (same numbers), plus every coeff region with
  its SHA-256 (the file's ``check_code``) and the nets that share it, and a byte-level layout
  whose parts tile the file.
- **bmcrypt** without a key: only the clear bytes and the envelopes' public headers are
  readable (version, algorithm, key id and source, file id, the three part sizes); nets,
  weights and memory figures are inside the encrypted FlatBuffer and are reported as ``None``.
- **bmcrypt** with a key: the header and FlatBuffer envelopes are authenticated and the model
  is reported as if plain (memory figures as for the decrypted file), each coeff marked
  encrypted, the layout showing the envelopes. The weights themselves are not decrypted:
  that is `bmcrypt verify`.
- **foreign** (the vendor's encrypted layout written by another tool): what the clear 8 bytes say.

Several files are also compared by their weights (:class:`Comparison`). The dataclass field
names are the JSON names (docs/inspect.md); :func:`to_json` turns a report into JSON values.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from bmcrypt.bmodel import decode_flatbuffer, reader
from bmcrypt.crypto import Secret
from bmcrypt.errors import BmcryptError, KeyProblem, WrongKey
from bmcrypt.inspect.compare import compare
from bmcrypt.inspect.plain import plain_report
from bmcrypt.inspect.report import (
    Batch,
    CoeffRegionInfo,
    Comparison,
    FileFailure,
    FileReport,
    ModuleInfo,
    NetInfo,
    SomeFilesFailed,
    TensorInfo,
    batch_json,
    to_json,
)
from bmcrypt.inspect.sealed import (
    foreign_report,
    model_from_flatbuffer,
    opened_report,
    sealed_report,
)
from bmcrypt.protect.container import FileState, state_of
from bmcrypt.protect.opened import open_encrypted

# ---------------------------------------------------------------- keys


class KeyChoice:
    """The key inspect may use: loaded (or prompted for) once, on the first bmcrypt file.

    An ``explicit`` key (--key/--passphrase) must open every bmcrypt file: a wrong key is an
    error, and so is a key that cannot be loaded. A key from $BMCRYPT_KEY_FILE is only a
    default: when it cannot be loaded or does not open a file, that file is shown as without
    a key, with a note saying why.
    """

    def __init__(self, load: Callable[[], Secret], *, explicit: bool) -> None:
        self._load = load
        self._secret: Secret | None = None
        self.explicit = explicit
        self.problem: str | None = None  # why a default key could not be loaded

    def secret(self) -> Secret | None:
        if self._secret is None and self.problem is None:
            try:
                self._secret = self._load()
            except KeyProblem as exc:
                if self.explicit:
                    raise
                self.problem = exc.message
        return self._secret


# ---------------------------------------------------------------- entry points


def inspect_files(paths: Sequence[str | os.PathLike[str]], key: KeyChoice | None = None) -> Batch:
    """Inspect every path; a file that fails becomes a FileFailure and the others go on.

    Key problems (a missing or unreadable key file, an empty passphrase) are not about one file:
    they propagate and stop the batch.
    """
    results: list[FileReport | FileFailure] = []
    for p in paths:
        try:
            results.append(inspect_file(p, key))
        except BmcryptError as exc:
            if _is_key_problem(exc):
                raise
            results.append(FileFailure(os.fspath(p), exc))
    return Batch(results, compare(results) if len(results) > 1 else None)


def inspect_file(path: str | os.PathLike[str], key: KeyChoice | None = None) -> FileReport:
    """The report of one file. Bad files raise the reader's BmcryptError, naming the path."""
    try:
        report = _inspect(Path(path), key)
    except BmcryptError as exc:
        if not _is_key_problem(exc) and str(path) not in exc.message:
            exc.message = f"{path}: {exc.message}"
            exc.args = (exc.message,)
        raise
    report.path = os.fspath(path)  # as given, not normalised by Path
    return report


def _is_key_problem(exc: BmcryptError) -> bool:
    return isinstance(exc, KeyProblem)


def _inspect(path: Path, key: KeyChoice | None) -> FileReport:
    head = reader.probe_file(path)  # InputFileError / NotABmodel / Truncated
    state = state_of(head)
    if state == FileState.PLAIN:
        raw = reader.read_raw(path)
        root = decode_flatbuffer(raw.flatbuffer)
        return plain_report(model_from_flatbuffer(raw.path, raw.file_size, raw.header, root),
                             root)
    size = path.stat().st_size
    if state == FileState.FOREIGN:
        return foreign_report(path, size, head.header_size)
    secret = key.secret() if key is not None else None
    if key is None or secret is None:
        report = sealed_report(path)
        if key is not None and key.problem:
            report.notes.append(f"$BMCRYPT_KEY_FILE was not used: {key.problem}")
        return report
    try:
        with open_encrypted(path, secret) as opened:
            return opened_report(opened)
    except WrongKey as exc:
        if key.explicit:
            raise
        report = sealed_report(path)
        report.notes.append(f"the key in $BMCRYPT_KEY_FILE does not open this file ({exc})")
        return report


__all__ = [
    "Batch", "CoeffRegionInfo", "Comparison", "FileFailure", "FileReport", "KeyChoice",
    "ModuleInfo", "NetInfo", "SomeFilesFailed", "TensorInfo", "batch_json", "compare",
    "inspect_file", "inspect_files", "model_from_flatbuffer", "to_json",
]
