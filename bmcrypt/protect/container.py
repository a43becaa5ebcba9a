"""The encrypted-file container: what a file is, from its clear bytes, and its fixed parts.

The Python twin of ``csrc/bmodel/layout.h`` (FORMAT.md §2):

    offset           size   content
         0              4   bmodel magic ee aa 55 ff (clear)
         4              4   header_size = 8 + len(E₁) (clear)
         8       len(E₁)    E₁: envelope of the 56-byte header tail {u32 len(E₂), u64 binary
                            size, 44 zero bytes}; its first 4 bytes are the envelope magic "BMCE"
    header_size  len(E₂)    E₂: envelope of the FlatBuffer + manifest
    …                       the binary region: weight envelopes and clear bytes

A plain bmodel has header_size 64 and zero reserved bytes; anything else with the bmodel magic
is the vendor's encrypted layout, bmcrypt's when bytes 8..12 are the envelope magic.
"""

from __future__ import annotations

import enum
import os
import struct

from bmcrypt.bmodel.header import EncryptionState, HeaderProbe, probe_header
from bmcrypt.crypto import HEADER_LEN, Keyring
from bmcrypt.crypto.envelope_header import MAGIC as ENVELOPE_MAGIC
from bmcrypt.errors import ForeignEncrypted, NoKey
from bmcrypt.files.opening import open_input_file

TAIL_LEN = 56  # the header tail the runtime decrypts: u32 fb size, u64 binary size, 44 zeros
#: 8 clear bytes + the smallest envelope of the tail (one segment: 152 + 56 + 16)
MIN_HEADER_SIZE = 8 + HEADER_LEN + TAIL_LEN + 16
PROBE_LEN = 64  # the clear bytes that say what a file is

__all__ = ["ENVELOPE_MAGIC", "MIN_HEADER_SIZE", "PROBE_LEN", "TAIL_LEN", "FileState", "classify",
           "file_state", "pack_tail", "require_openable", "state_of"]


class FileState(enum.StrEnum):
    """What a bmodel file is, from its clear bytes (no key needed)."""

    PLAIN = "plain"
    BMCRYPT = "bmcrypt"
    FOREIGN = "foreign"  # the vendor's encrypted layout, written by another tool


def pack_tail(flatbuffers_size: int, binary_size: int) -> bytes:
    """The 56-byte header tail E₁ protects."""
    return struct.pack("<IQ", flatbuffers_size, binary_size) + bytes(TAIL_LEN - 12)


def classify(head: bytes) -> FileState:
    """The state of a file from its first bytes (at least 64 if it has them).

    NotABmodel for a wrong magic, Truncated when the bytes end inside the header.
    """
    return state_of(probe_header(head))


def state_of(probe: HeaderProbe) -> FileState:
    """The state a probed header (``bmcrypt.bmodel.probe_header``/``probe_file``) says."""
    if probe.state == EncryptionState.PLAIN:
        return FileState.PLAIN
    return FileState.BMCRYPT if probe.tag == ENVELOPE_MAGIC else FileState.FOREIGN


def file_state(path: str | os.PathLike[str]) -> FileState:
    """The state of the file at `path` (InputFileError for a path that is not a regular file)."""
    with open_input_file(path) as f:  # never blocks on a FIFO or a device
        head = f.read(PROBE_LEN)
    return classify(head)


def require_openable(path: str | os.PathLike[str], keyring: Keyring | None) -> FileState:
    """The state of a file about to be loaded: plain, or bmcrypt with a key at hand.

    ForeignEncrypted for another tool's encryption, NoKey for a bmcrypt file without a key.
    """
    state = file_state(path)
    if state == FileState.FOREIGN:
        raise ForeignEncrypted(f"{path} is encrypted, but not by bmcrypt")
    if state == FileState.BMCRYPT and keyring is None:
        raise NoKey(f"{path} is encrypted; a key is needed to load it")
    return state
