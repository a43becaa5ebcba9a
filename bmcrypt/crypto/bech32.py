"""Bech32 (BIP 173): the checksummed text form of recipient keys, `bmcrypt1…` (FORMAT.md §8.3).

A string is its human-readable part, the separator "1", then 5-bit groups of the data and a
6-character BCH checksum, all in the alphabet below. The checksum finds any error in up to four
characters, so a mistyped recipient is refused rather than encrypted for. Only the original
Bech32 constant (1) is used, and only lower case is written; a reader accepts one case only.
"""

from __future__ import annotations

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
MAX_LENGTH = 90  # BIP 173's limit on the whole string


class Bech32Error(ValueError):
    """A string that is not valid Bech32 (the message says why, and quotes nothing secret)."""


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: bytes | list[int], frm: int, to: int, pad: bool) -> list[int]:
    """Bits of `data` (groups of `frm` bits) as groups of `to` bits."""
    acc = bits = 0
    out: list[int] = []
    for value in data:
        acc = (acc << frm) | value
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & ((1 << to) - 1))
    if pad:
        if bits:
            out.append((acc << (to - bits)) & ((1 << to) - 1))
    elif bits >= frm or (acc << (to - bits)) & ((1 << to) - 1):
        raise Bech32Error("bech32 data has non-zero padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """The Bech32 string of `data` under the human-readable part `hrp` (lower case)."""
    if not hrp or hrp != hrp.lower() or any(not 33 <= ord(c) <= 126 for c in hrp):
        raise ValueError("a bech32 prefix is 1.. lower-case printable ASCII characters")
    groups = _regroup(data, 8, 5, pad=True)
    polymod = _polymod(_hrp_expand(hrp) + groups + [0] * 6) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    text = hrp + "1" + "".join(CHARSET[g] for g in groups + checksum)
    if len(text) > MAX_LENGTH:
        raise ValueError("the bech32 string would be longer than 90 characters")
    return text


def decode(text: str, hrp: str) -> bytes:
    """The data of the Bech32 string `text`, whose human-readable part must be `hrp`."""
    if len(text) > MAX_LENGTH:
        raise Bech32Error("too long for bech32 (over 90 characters)")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise Bech32Error("not bech32 (a character outside printable ASCII)")
    if text.lower() != text and text.upper() != text:
        raise Bech32Error("not bech32 (mixed upper and lower case)")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text):
        raise Bech32Error("not bech32 (no separator, or no room for the checksum)")
    if text[:sep] != hrp:
        raise Bech32Error(f"the prefix is {text[:sep]!r}, not {hrp!r}")
    try:
        groups = [CHARSET.index(c) for c in text[sep + 1:]]
    except ValueError:
        raise Bech32Error("not bech32 (a character outside its alphabet)") from None
    if _polymod(_hrp_expand(hrp) + groups) != 1:
        raise Bech32Error("bad bech32 checksum (a typo?)")
    return bytes(_regroup(groups[:-6], 5, 8, pad=False))
