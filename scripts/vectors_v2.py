"""The version-2 test vectors (FORMAT.md §8): recipients, key areas, E₂/E₃ opened with E₁'s DK.

Imported by scripts/make-vectors.py, which writes and checks them; every random byte comes from
a generator seeded with the case's file name, so the files are reproducible.

A case that is not E₁ carries its file's E₁ as `header`: a reader opens that first with the
given secret and then the `envelope` with the keys it got (the runtime's order, FORMAT.md §8.1).
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Callable, Iterator
from typing import Any

from bmcrypt.crypto import FileKeys, Identity, Kind, Passphrase, UserKey, new_file, seal
from bmcrypt.crypto.keyarea import KeyArea, wrap_stanza
from bmcrypt.protect.manifest import Manifest, clear_digest, clear_spans
from bmcrypt.protect.restore import CLEAR, ENVELOPE, Extent, RestoreRecord

S_LOG2 = 12
S = 1 << S_LOG2
PASSPHRASE_LOG2N = 10
PASSPHRASE = "correct horse battery staple v2"

# Offsets in a version-2 E₁ (FORMAT.md §8.1, §8.2).
VERSION, KIND = 4, 6
DK_CHECK, KEY_AREA_LEN, POLICY, LICENCE_KEY = 48, 64, 68, 72
AREA = 104
AREA_SLOTS, AREA_COUNT, AREA_ZERO = AREA + 4, AREA + 6, AREA + 8


def stanza(i: int) -> int:
    return AREA + 16 + 128 * i


# Within a stanza.
ST_TYPE, ST_R, ST_MATERIAL, ST_KEY_ID, ST_KEY_CHECK = 0, 2, 4, 36, 44
ST_NONCE, ST_WRAPPED, ST_TAG, ST_RESERVED = 60, 72, 104, 120


def tail(fb_size: int = 4321, binary_size: int = 1 << 33) -> bytes:
    return struct.pack("<IQ44x", fb_size, binary_size)


def flip(buf: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(buf)
    out[offset] ^= mask
    return bytes(out)


def patch(buf: bytes, offset: int, new: bytes) -> bytes:
    return buf[:offset] + new + buf[offset + len(new):]


class File2:
    """A version-2 file: its recipients and keys, all drawn from a generator seeded with `seed`."""

    def __init__(self, seed: str, recipients: list[str], slots: int = 16) -> None:
        self.rng: Callable[[int], bytes] = random.Random(f"bmcrypt v2 vector {seed}").randbytes
        self.k = self.rng(32)
        self.r = self.rng(32)
        self.identity = Identity(self.r)
        chosen = {"key": UserKey(self.k),
                  "passphrase": Passphrase(PASSPHRASE, log2n=PASSPHRASE_LOG2N),
                  "x25519": self.identity.recipient}
        self.keys: FileKeys = new_file([chosen[r] for r in recipients], self.rng, slots=slots)
        self.e1 = self.seal(tail(), Kind.HEADER_TAIL)

    def seal(self, plaintext: bytes, kind: int = Kind.WEIGHTS) -> bytes:
        return bytes(seal(self.keys, kind, plaintext, seg_log2=S_LOG2, rng=self.rng))

    def secret(self, which: str) -> dict[str, Any]:
        return {"key": {"key": self.k}, "passphrase": {"passphrase": PASSPHRASE},
                "identity": {"identity": self.r}}[which]


_VECTOR: Any = None  # make-vectors.py's Vector class (v2_vectors receives it)


def v(name: str, expect: str, about: str, envelope: bytes, secret: dict[str, Any], *,
      header: bytes | None = None, kind: int | None = None,
      plaintext: bytes | None = None) -> Any:
    return _VECTOR(f"v2_{name}", expect, about, envelope, kind=kind, plaintext=plaintext,
                  header=header, **secret)


def success(f: File2, name: str, about: str, which: str) -> Any:
    return v(name, "success", about, f.e1, f.secret(which), kind=Kind.HEADER_TAIL,
             plaintext=tail())


def success_vectors() -> Iterator[Any]:
    for kind, which in [("key", "key"), ("passphrase", "passphrase"), ("x25519", "identity")]:
        f = File2(f"single {kind}", [kind])
        yield success(f, f"success_single_{kind}", f"E₁ with one {kind} recipient", which)
    three = File2("three", ["key", "passphrase", "x25519"])
    for which in ("key", "passphrase", "identity"):
        yield success(three, f"success_three_recipients_open_with_{which}",
                      "E₁ for a key file, a passphrase and an X25519 recipient, opened with "
                      f"the {which}", which)
    one = File2("one slot", ["x25519"], slots=1)
    yield success(one, "success_one_slot", "a key area of one slot (16 + 128 bytes)", "identity")

    weights = three.rng(S + 904)
    yield v("success_kind3_weights", "success", "weights across two segments, opened with "
            "the DK of the header envelope", three.seal(weights), three.secret("identity"),
            header=three.e1, kind=Kind.WEIGHTS, plaintext=weights)
    yield v("success_kind3_empty", "success", "an empty weight envelope (one empty segment)",
            three.seal(b""), three.secret("key"), header=three.e1, kind=Kind.WEIGHTS,
            plaintext=b"")
    plain = kind2_plaintext(three)
    yield v("success_kind2_manifest_restore", "success",
            "FlatBuffer + restore record + manifest version 2 (FORMAT.md §8.4)",
            three.seal(plain, Kind.FLATBUFFER), three.secret("passphrase"), header=three.e1,
            kind=Kind.FLATBUFFER, plaintext=plain)


def kind2_plaintext(f: File2) -> bytes:
    """A kind-2 plaintext with a restore record: a 1000-byte sealed binary region whose weight
    envelope (300 bytes of plaintext) sits at 100..416, the rest clear."""
    flatbuffer, binary = f.rng(200), f.rng(1000)
    spans = clear_spans(len(binary), [(100, 316)])
    clear_len, digest = clear_digest(spans, [(o, binary[o:o + n]) for o, n in spans])
    original_fb = f.rng(190)
    body_len = 100 + 300 + 584
    original = f.rng(64) + original_fb + f.rng(body_len)
    record = RestoreRecord(hashlib.sha256(original).digest(), len(original), original[:64],
                           original_fb, (Extent(0, 100, 0, CLEAR), Extent(100, 300, 100, ENVELOPE),
                                         Extent(400, 584, 416, CLEAR))).pack()
    manifest = Manifest(len(flatbuffer), clear_len, digest, len(record), 2).pack()
    return flatbuffer + record + manifest


def key_vectors() -> Iterator[Any]:
    device = File2("device a", ["x25519"])
    other = File2("device b", ["x25519"])
    yield v("wrong_key_wrong_recipient", "wrong_key",
            "a file for device A opened with device B's identity", device.e1,
            other.secret("identity"))
    three = File2("three wrong", ["key", "passphrase", "x25519"])
    yield v("wrong_key_three_recipients_another_key", "wrong_key",
            "three recipients, none of them the key file given", three.e1, other.secret("key"))
    yield v("wrong_key_wrong_passphrase", "wrong_key", "another passphrase", three.e1,
            {"passphrase": "not the passphrase"})
    yield v("tampered_stanza_key_id", "tampered",
            "the key file's stanza with a flipped key id bit: no id matches, but the key "
            "check of the key given does (a changed id, not a wrong key)",
            flip(three.e1, stanza(0) + ST_KEY_ID), three.secret("key"))
    yield v("tampered_stanza_key_id_x25519", "tampered",
            "the X25519 stanza with a flipped key id bit, opened with its identity",
            flip(three.e1, stanza(2) + ST_KEY_ID + 7), three.secret("identity"))
    yield v("wrong_key_stanza_scrypt_salt", "wrong_key",
            "a changed scrypt salt derives another K, whose key id matches no stanza",
            flip(three.e1, stanza(1) + ST_MATERIAL + 3), three.secret("passphrase"))
    yield v("wrong_key_weights_without_header", "wrong_key",
            "a kind-3 envelope opened with a key alone: version 2 needs its E₁ first",
            three.seal(b"w" * 10), three.secret("key"))


def tampered_vectors() -> Iterator[Any]:
    f = File2("tampered", ["key", "passphrase", "x25519"])
    e1 = f.e1
    cases = [
        ("stanza_key_check", "key", "a flipped bit in the key file stanza's key check",
         flip(e1, stanza(0) + ST_KEY_CHECK + 5)),
        ("stanza_wrapped_dk", "key", "a flipped bit in the wrapped DK",
         flip(e1, stanza(0) + ST_WRAPPED + 31)),
        ("stanza_wrap_tag", "passphrase", "a flipped bit in the passphrase stanza's wrap tag",
         flip(e1, stanza(1) + ST_TAG + 2)),
        ("stanza_wrap_nonce", "identity", "a flipped bit in the X25519 stanza's wrap nonce",
         flip(e1, stanza(2) + ST_NONCE)),
        ("stanza_ephemeral_key", "identity",
         "a flipped bit in the X25519 stanza's ephemeral key E (another S, K: key check fails)",
         flip(e1, stanza(2) + ST_MATERIAL)),
        ("stanza_ephemeral_key_zero", "identity",
         "the ephemeral key E set to zero: S would be all zero",
         patch(e1, stanza(2) + ST_MATERIAL, bytes(32))),
        ("dk_check", "key", "a flipped bit in E₁'s dk_check (the unwrapped DK does not match)",
         flip(e1, DK_CHECK + 7)),
        ("header_file_id", "key", "a flipped bit in file_id (the key check depends on it)",
         flip(e1, 16 + 2)),
        ("segment_bit", "key", "a flipped bit in E₁'s segment", flip(e1, len(e1) - 20)),
    ]
    for name, which, about, envelope in cases:
        yield v(f"tampered_{name}", "tampered", about, envelope, f.secret(which))

    other_dk = random.Random("bmcrypt v2 vector other dk").randbytes(32)
    forged = wrap_stanza(UserKey(f.k), f.keys.file_id, other_dk, f.rng).raw
    yield v("tampered_stanza_wraps_another_dk", "tampered",
            "a valid stanza for the key that wraps another DK: the dk_check refuses it",
            patch(e1, stanza(0), forged), f.secret("key"))

    weights = f.seal(b"w" * 300)
    yield v("tampered_kind3_dk_check", "tampered",
            "a weight envelope whose dk_check has a flipped bit", flip(weights, DK_CHECK),
            f.secret("key"), header=e1)
    yield v("tampered_kind3_segment_bit", "tampered", "a flipped bit in a weight segment",
            flip(weights, 200), f.secret("key"), header=e1)
    g = File2("tampered other file", ["key", "passphrase", "x25519"])
    yield v("tampered_kind3_from_another_file", "tampered",
            "a weight envelope of another file (another file_id and dk_check)",
            g.seal(b"w" * 300), f.secret("key"), header=e1)
    yield v("tampered_kind2_from_another_file", "tampered",
            "a FlatBuffer envelope of another file", g.seal(kind2_plaintext(g), Kind.FLATBUFFER),
            f.secret("key"), header=e1)
    twin = patch(g.seal(b"w" * 300), 16, f.keys.file_id)
    yield v("tampered_kind3_other_dk_check_same_file_id", "tampered",
            "a weight envelope of another file with this file's file_id: its dk_check differs",
            twin, f.secret("key"), header=e1)


def structure_vectors() -> Iterator[Any]:
    f = File2("structure", ["key", "passphrase", "x25519"], slots=4)
    e1 = f.e1
    dup = File2("duplicate", ["key"], slots=4)
    area = KeyArea(4, (dup.keys.area().stanzas[0],
                       wrap_stanza(UserKey(dup.k), dup.keys.file_id, b"\0" * 32, dup.rng)))
    dup_e1 = patch(dup.e1, AREA, area.pack())
    weights = f.seal(b"w" * 300)
    cases = [
        ("corrupt", "duplicate_recipient", "two stanzas in use with the same key id", dup_e1),
        ("corrupt", "unused_slot_nonzero", "a non-zero byte in the unused slot 3",
         flip(e1, stanza(3) + 77)),
        ("corrupt", "stanza_reserved_nonzero", "a non-zero reserved byte 120 of a stanza",
         flip(e1, stanza(0) + ST_RESERVED)),
        ("corrupt", "key_area_zero_nonzero", "a non-zero byte in the key area's reserved 8",
         flip(e1, AREA_ZERO + 1)),
        ("corrupt", "key_area_magic", "key area magic BMCX", patch(e1, AREA + 3, b"X")),
        ("corrupt", "count_zero", "count 0", patch(e1, AREA_COUNT, b"\0\0")),
        ("corrupt", "count_over_slots", "count 5 of 4 slots", patch(e1, AREA_COUNT, b"\5\0")),
        ("corrupt", "slots_not_area_len", "slots 3 in an area of 4",
         patch(e1, AREA_SLOTS, b"\3\0")),
        ("corrupt", "key_area_len_not_slots", "key_area_len 16 + 128 × 4 + 1, one byte appended",
         patch(e1, KEY_AREA_LEN, struct.pack("<I", 16 + 128 * 4 + 1)) + b"\0"),
        ("corrupt", "key_area_len_zero", "key_area_len 0 in E₁ (and the length to match)",
         patch(e1, KEY_AREA_LEN, b"\0\0\0\0")[:AREA] + e1[AREA + 16 + 128 * 4:]),
        ("corrupt", "key_file_stanza_scrypt_r", "a key file stanza with a non-zero scrypt r",
         patch(e1, stanza(0) + ST_R, b"\x08")),
        ("corrupt", "x25519_stanza_scrypt_r", "an X25519 stanza with a non-zero scrypt r",
         patch(e1, stanza(2) + ST_R, b"\x08")),
        ("corrupt", "passphrase_stanza_salt_padding", "a non-zero byte after a stanza's salt",
         flip(e1, stanza(1) + ST_MATERIAL + 20)),
        ("corrupt", "stanza_scrypt_log2n_21", "scrypt log2(N) = 21 in a passphrase stanza",
         patch(e1, stanza(1) + 1, b"\x15")),
        ("corrupt", "policy_without_licence_key", "policy bit 0 set, licence key all zero",
         patch(e1, POLICY, b"\1")),
        ("corrupt", "licence_key_without_policy", "a licence key with policy bit 0 clear",
         flip(e1, LICENCE_KEY + 31)),
        ("corrupt", "kind0", "a version-2 envelope of kind 0 (only version 1 has it)",
         patch(e1, KIND, b"\0")),
        ("unsupported_version", "policy_unknown_bit", "policy bit 1 set",
         patch(e1, POLICY, b"\2")),
        ("unsupported_version", "stanza_type_4", "a stanza of type 4",
         patch(e1, stanza(1), b"\4")),
        ("unsupported_version", "version_3", "E₁ with format version 3", patch(e1, VERSION, b"\3")),
        ("truncated", "in_public_header", "E₁ cut at byte 90 of its 104-byte public header",
         e1[:90]),
        ("truncated", "in_key_area", "E₁ cut inside its key area", e1[:AREA + 300]),
        ("truncated", "last_segment_short", "E₁ cut 5 bytes short", e1[:-5]),
        ("corrupt", "trailing_byte", "E₁ with one extra byte", e1 + b"\0"),
    ]
    for expect, name, about, envelope in cases:
        yield v(f"{expect}_{name}", expect, about, envelope, f.secret("key"))
    weight_cases = [
        ("corrupt", "kind3_key_area_len", "a weight envelope with a non-zero key_area_len",
         patch(weights, KEY_AREA_LEN, struct.pack("<I", 144))),
        ("corrupt", "kind3_policy", "a weight envelope with a policy",
         patch(weights, POLICY, b"\1")),
        ("corrupt", "kind3_licence_key", "a weight envelope with a licence key",
         flip(weights, LICENCE_KEY)),
        ("truncated", "kind3_short", "a weight envelope cut 1 byte short", weights[:-1]),
    ]
    for expect, name, about, envelope in weight_cases:
        yield v(f"{expect}_{name}", expect, about, envelope, f.secret("key"), header=e1)


def v2_vectors(vector_cls: Any) -> Iterator[Any]:
    """Every version-2 case, as `vector_cls` (make-vectors.py's Vector) objects."""
    global _VECTOR
    _VECTOR = vector_cls
    for gen in (success_vectors, key_vectors, tampered_vectors, structure_vectors):
        yield from gen()
