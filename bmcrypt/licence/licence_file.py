"""The licence file (FORMAT.md §8.5): what a vendor signs and a device presents.

    offset  size
         0     4  magic "BMCL"
         4     1  version = 1
         5     1  n_sn: number of device serial numbers, 0..32 (0: any device)
         6     2  zero
         8    16  file_id
        24     8  not_after: the last second of validity (Unix time, u64 LE)
        32    32  the signer's Ed25519 public key
        64     …  n_sn × (u8 length 1..64, then the serial number's bytes)
    end − 64  64  Ed25519 signature over "bmcrypt licence v1" || every preceding byte

Parsing checks the form only; whether a licence lets a file open is `check.py`'s business.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bmcrypt.errors import CorruptLicence
from bmcrypt.licence.signing_key import SigningKey, verify_signature

MAGIC = b"BMCL"
VERSION = 1
SIGNATURE_CONTEXT = b"bmcrypt licence v1"
MAX_SERIALS = 32
MAX_SERIAL_LEN = 64
SIGNATURE_LEN = 64
FIXED_LEN = 64
MAX_LICENCE_LEN = FIXED_LEN + MAX_SERIALS * (1 + MAX_SERIAL_LEN) + SIGNATURE_LEN
MAX_NOT_AFTER = 2**63 - 1  # so that every reader can hold it in a signed 64-bit time

_FIXED = struct.Struct("<4sBB2s16sQ32s")
assert _FIXED.size == FIXED_LEN


@dataclass(frozen=True)
class Licence:
    """A well-formed licence; its signature is checked by `signature_valid`, its terms by
    `bmcrypt.licence.check`. `source` names it in messages (a path, or "licence N")."""

    file_id: bytes
    not_after: int
    signer: bytes
    serials: tuple[bytes, ...]
    signature: bytes = field(repr=False)
    raw: bytes = field(repr=False)
    source: str = "a licence"

    @property
    def signed_part(self) -> bytes:
        return self.raw[:-SIGNATURE_LEN]

    def signature_valid(self) -> bool:
        """Whether the signature verifies under the key the licence names (not yet whether that
        is the key a file names)."""
        return verify_signature(self.signer, SIGNATURE_CONTEXT + self.signed_part,
                                self.signature)

    @property
    def expires(self) -> str:
        """``not_after`` as an ISO 8601 UTC time, ``2027-01-01T23:59:59Z``."""
        return datetime.fromtimestamp(self.not_after, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def serial_strings(self) -> list[str]:
        """The serial numbers for people (bytes that are not UTF-8 escaped)."""
        return [s.decode("utf-8", "backslashreplace") for s in self.serials]


def issue_licence(key: SigningKey, file_id: bytes, not_after: int,
                  serials: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
    """The bytes of a licence for `file_id`, valid to `not_after` (Unix time, inclusive), on the
    devices with these serial numbers (none: any device), signed with `key`."""
    if len(file_id) != 16:
        raise ValueError("a file id is 16 bytes")
    if not 0 <= not_after <= MAX_NOT_AFTER:
        raise ValueError("not_after is out of range")
    if len(serials) > MAX_SERIALS:
        raise ValueError(f"a licence lists at most {MAX_SERIALS} serial numbers")
    if len(set(serials)) != len(serials):
        raise ValueError("a serial number is listed twice")
    body = bytearray(_FIXED.pack(MAGIC, VERSION, len(serials), bytes(2), bytes(file_id),
                                 not_after, key.public_key))
    for sn in serials:
        if not 1 <= len(sn) <= MAX_SERIAL_LEN:
            raise ValueError(f"a serial number is 1..{MAX_SERIAL_LEN} bytes")
        body += bytes([len(sn)]) + sn
    return bytes(body) + key.sign(SIGNATURE_CONTEXT + bytes(body))


def parse_licence(data: bytes, source: str = "a licence") -> Licence:
    """Check the form of a licence (not its signature); CorruptLicence says what is wrong."""
    def bad(why: str) -> CorruptLicence:
        return CorruptLicence(f"{source} is not a valid licence ({why})")

    if len(data) < FIXED_LEN + SIGNATURE_LEN:
        raise bad(f"{len(data)} bytes; a licence has at least {FIXED_LEN + SIGNATURE_LEN}")
    if len(data) > MAX_LICENCE_LEN:
        raise bad(f"{len(data)} bytes; a licence has at most {MAX_LICENCE_LEN}")
    magic, version, n_sn, zero, file_id, not_after, signer = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise bad("no BMCL magic")
    if version != VERSION:
        raise CorruptLicence(f"{source} is a licence of version {version}, which this bmcrypt "
                             "does not read", hint="upgrade bmcrypt")
    if zero != bytes(2):
        raise bad("reserved bytes are not zero")
    if n_sn > MAX_SERIALS:
        raise bad(f"{n_sn} serial numbers; at most {MAX_SERIALS}")
    if not_after > MAX_NOT_AFTER:
        raise bad("its expiry is out of range")
    pos, end = FIXED_LEN, len(data) - SIGNATURE_LEN
    serials = []
    for _ in range(n_sn):
        if pos >= end:
            raise bad("its serial numbers run into the signature")
        n = data[pos]
        if not 1 <= n <= MAX_SERIAL_LEN or pos + 1 + n > end:
            raise bad("a serial number has a bad length")
        serials.append(bytes(data[pos + 1:pos + 1 + n]))
        pos += 1 + n
    if pos != end:
        raise bad("bytes between the serial numbers and the signature")
    if len(set(serials)) != len(serials):
        raise bad("a serial number is listed twice")
    return Licence(file_id=bytes(file_id), not_after=not_after, signer=bytes(signer),
                   serials=tuple(serials), signature=bytes(data[end:]), raw=bytes(data),
                   source=source)


def load_licence_file(path: str | os.PathLike[str]) -> Licence:
    """Read and parse a licence file (its form only). A missing path, a FIFO or a directory is
    refused as the house refuses every input (InputFileError), without blocking."""
    from bmcrypt.files.opening import open_input_file

    with open_input_file(path, "licence file") as f:
        data = f.read(MAX_LICENCE_LEN + 1)
    return parse_licence(data, os.fspath(path))
