#!/usr/bin/env python3
"""Write the licence test vectors, tests/vectors/licences/NAME.txt (FORMAT.md §8.5; format:
tests/vectors/licences/README.md). Fixed keys and times: Ed25519 signatures are deterministic,
so every run writes the same files, and tests/test_licence.py checks that the committed files are
exactly what this script writes.

    .venv/bin/python scripts/make-licence-vectors.py [--out DIR]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from bmcrypt.licence import SigningKey, issue_licence

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors" / "licences"
HEADER = "# bmcrypt licence test vector: written by scripts/make-licence-vectors.py, do not edit"

SEED = bytes.fromhex("4c1ce4ce" * 8)  # the vendor's signing key seed (a test value)
OTHER_SEED = bytes.fromhex("07e4" * 16)
FILE_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
OTHER_FILE_ID = bytes.fromhex("ffeeddccbbaa99887766554433221100")
NOT_AFTER = 1798761599  # 2026-12-31T23:59:59Z
NOW = 1780000000  # 2026-05-28
SN = b"HQDZKM5BAJEJG0A9B"  # 17 characters, the form bm_get_sn reports

Vector = tuple[str, dict[str, str]]


def flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1:]


def vectors() -> Iterator[Vector]:
    key, other = SigningKey(SEED), SigningKey(OTHER_SEED)
    any_device = issue_licence(key, FILE_ID, NOT_AFTER)
    bound = issue_licence(key, FILE_ID, NOT_AFTER, (b"SN-OF-ANOTHER-BOX", SN))

    def case(expect: str, about: str, licence: bytes | None, *, now: int = NOW,
             sn: bytes | None = None) -> dict[str, str]:
        fields = {"expect": expect, "about": about, "file_id": FILE_ID.hex(),
                  "licence_key": key.public_key.hex(), "now": str(now)}
        if sn is not None:
            fields["device_sn"] = sn.hex()
        if licence is not None:
            fields["licence"] = licence.hex()
        return fields

    yield "success_any_device", case("success", "no serial numbers: any device", any_device)
    yield "success_listed_device", case("success", "the device's serial number is the second "
                                        "of two listed", bound, sn=SN)
    yield "success_last_second", case("success", "now = not_after is still valid", any_device,
                                      now=NOT_AFTER)
    yield "no_licence", case("no_licence", "the file demands a licence and none is given", None)
    yield "corrupt_magic", case("corrupt_licence", "magic BMCX", b"BMCX" + any_device[4:])
    yield "corrupt_version_2", case("corrupt_licence", "version 2",
                                    any_device[:4] + b"\x02" + any_device[5:])
    yield "corrupt_reserved", case("corrupt_licence", "a non-zero reserved byte",
                                   flip(any_device, 6))
    yield "corrupt_serial_length", case("corrupt_licence", "a serial number longer than the "
                                        "licence", bound[:64] + b"\x40" + bound[65:], sn=SN)
    yield "corrupt_trailing_byte", case("corrupt_licence", "one byte too many",
                                        any_device[:64] + b"\x00" + any_device[64:])
    yield "bad_signature_other_signer", case("bad_licence_signature", "genuine, but signed by "
                                             "another key than the file names",
                                             issue_licence(other, FILE_ID, NOT_AFTER))
    yield "bad_signature_not_after_changed", case("bad_licence_signature", "not_after moved a "
                                                  "second after signing", flip(any_device, 24))
    yield "bad_signature_signature_bit", case("bad_licence_signature", "one bit of the "
                                              "signature flipped", flip(any_device, 100))
    yield "other_file", case("licence_for_another_file", "genuine, for another file id",
                             issue_licence(key, OTHER_FILE_ID, NOT_AFTER))
    yield "expired_one_second_late", case("licence_expired", "now = not_after + 1", any_device,
                                          now=NOT_AFTER + 1)
    yield "other_device", case("licence_for_another_device", "this device's serial number is "
                               "not listed", bound, sn=b"HQDZKM5BAJEJG0A9C")
    yield "unknown_device", case("licence_for_another_device", "serial numbers listed, this "
                                 "device's unknown (the simulator has none)", bound)


def render(fields: dict[str, str]) -> str:
    return HEADER + "\n" + "".join(f"{k}: {v}\n" for k, v in fields.items())


def main() -> int:
    out = Path(sys.argv[sys.argv.index("--out") + 1]) if "--out" in sys.argv else OUT
    out.mkdir(parents=True, exist_ok=True)
    for name, fields in vectors():
        (out / f"{name}.txt").write_text(render(fields))
    return 0


if __name__ == "__main__":
    sys.exit(main())
