"""The segment cipher behind every streamed envelope: one interface, two implementations.

Streaming code (``bmcrypt.protect``) seals and opens envelopes a run of segments at a time and
never sees a data key. It asks ``engine_for(keys)`` for an engine and calls

    n = engine.seal_segments(public_header, first, plaintext, out)   # ciphertext || tag, ...
    n = engine.open_segments(public_header, first, records, out)     # plaintext

- ``NativeEngine``: the Crypto++ core of ``bmcrypt._native`` (the package's compiled extension);
- ``PythonEngine``: pycryptodome, for a source tree without the extension.

Both produce the same bytes (FORMAT.md §3.3). The data key reaches the native core here and in
``secret.register_with_native``, nowhere else.
"""

from __future__ import annotations

from typing import Any, Protocol

from bmcrypt.crypto.envelope import open_segment_run, seal_segment_run
from bmcrypt.crypto.envelope_header import Buffer
from bmcrypt.crypto.filekeys import FileKeys


class Engine(Protocol):
    """Seals or opens consecutive segments of one envelope (identified by its public header)."""

    name: str

    def seal_segments(self, public: bytes, first: int, plain: Buffer, out: Buffer) -> int:
        """Seal the segments from number `first` (whole segments, or the rest of the envelope)
        into `out` (16 bytes more per segment); return the bytes written."""
        ...

    def open_segments(self, public: bytes, first: int, records: Buffer, out: Buffer) -> int:
        """Open the segment records from number `first` into `out`; return the plaintext
        length. Tampered (with `out` wiped) if one fails."""
        ...


class NativeEngine:
    """The native core's twin of one file's keys."""

    name = "native"

    def __init__(self, native_keys: Any) -> None:
        self._keys = native_keys

    def seal_segments(self, public: bytes, first: int, plain: Buffer, out: Buffer) -> int:
        return int(self._keys.seal_segments(public, first, plain, out))

    def open_segments(self, public: bytes, first: int, records: Buffer, out: Buffer) -> int:
        return int(self._keys.open_segments(public, first, records, out))


class PythonEngine:
    """pycryptodome, segment by segment (slower; the same bytes)."""

    name = "python"

    def __init__(self, keys: FileKeys) -> None:
        self._keys = keys

    def seal_segments(self, public: bytes, first: int, plain: Buffer, out: Buffer) -> int:
        return seal_segment_run(self._keys, public, first, plain, out)

    def open_segments(self, public: bytes, first: int, records: Buffer, out: Buffer) -> int:
        return open_segment_run(self._keys, public, first, records, out)


def engine_for(keys: FileKeys, *, native: bool = True) -> Engine:
    """The fastest engine for `keys`: the native core when it is installed, else pycryptodome.

    The native core takes a version-2 file's keys with an empty key block (csrc/python).
    """
    if native:
        try:
            from bmcrypt import _native
        except ImportError:
            pass
        else:
            block = keys.key_block if keys.version == 1 else b""
            return NativeEngine(_native.FileKeys.from_parts(keys.file_id, block, keys._dk))
    return PythonEngine(keys)
