"""A model's licence terms, read from the clear public header of its E₁ (FORMAT.md §8.1): no key
needed, so that a vendor issues licences with the signing key alone.

E₁ starts at file offset 8; its file_id is at envelope offset 16, and in version 2 its policy at
68 and licence_key at 72. Nothing here is authenticated: a reader authenticates the public header
when it opens E₁ (a changed policy or licence key is then tampering).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from bmcrypt.errors import NotABmodel, NotEncrypted, Truncated, UnsupportedVersion

_E1 = 8
_BMODEL_MAGIC = bytes.fromhex("eeaa55ff")
_ENVELOPE_MAGIC = b"BMCE"
_V2_PUBLIC_END = _E1 + 104


@dataclass(frozen=True)
class LicenceTerms:
    """What a model's header says about licences."""

    version: int  # the envelope format version
    file_id: bytes
    policy: int  # 0 for version 1 files, which know no licences
    licence_key: bytes  # 32 zero bytes when no licence is required

    @property
    def requires_licence(self) -> bool:
        return bool(self.policy & 1)


def read_terms(path: str | os.PathLike[str]) -> LicenceTerms:
    """The licence terms of the bmcrypt model at `path`."""
    from bmcrypt.files.opening import open_input_file

    with open_input_file(path, "model") as f:
        head = f.read(_V2_PUBLIC_END)
    where = os.fspath(path)
    if len(head) < 4 or head[:4] != _BMODEL_MAGIC:
        raise NotABmodel(f"{where} is not a bmodel")
    if len(head) < _E1 + 40:
        raise Truncated(f"{where} ends inside its header")
    if head[_E1:_E1 + 4] != _ENVELOPE_MAGIC:
        raise NotEncrypted(f"{where} is not encrypted by bmcrypt",
                           hint="licences bind encrypted models: `bmcrypt encrypt "
                                "--require-license KEY` first")
    version = head[_E1 + 4]
    file_id = head[_E1 + 16:_E1 + 32]
    if version == 1:
        return LicenceTerms(1, file_id, 0, bytes(32))
    if version != 2:
        raise UnsupportedVersion(f"{where} has envelope version {version}")
    if len(head) < _V2_PUBLIC_END:
        raise Truncated(f"{where} ends inside its header")
    (policy,) = struct.unpack_from("<I", head, _E1 + 68)
    return LicenceTerms(2, file_id, policy, head[_E1 + 72:_E1 + 104])
