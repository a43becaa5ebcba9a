#!/usr/bin/env python3
"""Write the envelope test vectors, tests/vectors/NAME.txt (format: tests/vectors/README.md).

Version-1 cases are here; version-2 cases (FORMAT.md §8) in scripts/vectors_v2.py.

Deterministic: every random byte comes from a generator seeded with the case's name, so a second
run writes the same files (tests/test_vectors.py checks that the committed files are exactly what
this script writes). Run it from a checkout after changing the format, and review the diff:

    PYTHONPATH=. .venv/bin/python scripts/make-vectors.py [--out DIR]

Segments use seg_log2 = 12 (S = 4096) and passphrases scrypt log2N = 10 (the smallest legal
values) so that the files stay small and fast. Malformed cases are built by patching bytes of a
valid envelope; segment-level attacks re-seal segments here, with pycryptodome directly.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from Crypto.Cipher import AES

from bmcrypt.crypto import FileKeys, Kind, Passphrase, UserKey, new_file, seal
from bmcrypt.crypto.envelope_header import HEADER_LEN, pack_public_header
from bmcrypt.protect.manifest import Manifest, clear_digest, clear_spans

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vectors_v2 import v2_vectors  # noqa: E402  (the version-2 cases, FORMAT.md §8)

S_LOG2 = 12
S = 1 << S_LOG2
TAG = 16
PASSPHRASE_LOG2N = 10

# Offsets in an envelope (FORMAT.md §3, §4).
VERSION, ALGORITHM, KIND, SEG_LOG2, PLAINTEXT_LEN, FILE_ID, REGION_SALT = 4, 5, 6, 7, 8, 16, 32
KB = 48  # the key block
SOURCE, LOG2N, SCRYPT_R, SCRYPT_P, SCRYPT_SALT = KB, KB + 1, KB + 2, KB + 3, KB + 4
KEY_ID, KEY_CHECK, WRAP_NONCE, WRAPPED_DK, WRAP_TAG = KB + 20, KB + 28, KB + 44, KB + 56, KB + 88

HEADER_COMMENT = "# bmcrypt envelope test vector: written by scripts/make-vectors.py, do not edit"


@dataclass(frozen=True)
class Vector:
    name: str
    expect: str
    about: str
    envelope: bytes
    key: bytes | None = None
    passphrase: str | None = None
    kind: int | None = None
    plaintext: bytes | None = None
    identity: bytes | None = None  # v2: an X25519 secret key
    header: bytes | None = None  # v2: the file's E₁, opened first (kind-2/3 cases)

    def render(self) -> str:
        lines = [HEADER_COMMENT, f"expect: {self.expect}", f"about: {self.about}"]
        if self.key is not None:
            lines.append(f"key: {self.key.hex()}")
        if self.passphrase is not None:
            lines.append(f"passphrase: {self.passphrase}")
        if self.identity is not None:
            lines.append(f"identity: {self.identity.hex()}")
        if self.header is not None:
            lines.append(f"header: {self.header.hex()}")
        if self.kind is not None:
            lines.append(f"kind: {self.kind}")
        if self.plaintext is not None:
            lines.append(f"plaintext: {self.plaintext.hex()}")
        lines.append(f"envelope: {self.envelope.hex()}")
        return "\n".join(lines) + "\n"


class File:
    """The keys of one encrypted file, all drawn from a generator seeded with `seed`."""

    def __init__(self, seed: str, passphrase: str | None = None, key: bytes | None = None) -> None:
        self.rng: Callable[[int], bytes] = random.Random(f"bmcrypt test vector {seed}").randbytes
        self.passphrase = passphrase
        self.k: bytes | None = None
        if passphrase is None:
            self.k = key or self.rng(32)
            self.keys: FileKeys = new_file(UserKey(self.k), self.rng, version=1)
        else:
            self.keys = new_file(Passphrase(passphrase, log2n=PASSPHRASE_LOG2N), self.rng,
                                 version=1)

    def seal(self, plaintext: bytes, kind: int = Kind.WEIGHTS, seg_log2: int = S_LOG2) -> bytes:
        return bytes(seal(self.keys, kind, plaintext, seg_log2=seg_log2, rng=self.rng))

    def vector(self, name: str, expect: str, about: str, envelope: bytes, *,
               plaintext: bytes | None = None, kind: int | None = None) -> Vector:
        return Vector(name, expect, about, envelope, key=self.k, passphrase=self.passphrase,
                      kind=kind, plaintext=plaintext)

    def success(self, name: str, about: str, plaintext: bytes, kind: int = Kind.WEIGHTS,
                seg_log2: int = S_LOG2) -> Vector:
        return self.vector(name, "success", about, self.seal(plaintext, kind, seg_log2),
                           plaintext=plaintext, kind=kind)


def flip(buf: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(buf)
    out[offset] ^= mask
    return bytes(out)


def patch(buf: bytes, offset: int, new: bytes) -> bytes:
    return buf[:offset] + new + buf[offset + len(new):]


def with_plaintext_len(buf: bytes, value: int) -> bytes:
    return patch(buf, PLAINTEXT_LEN, struct.pack("<Q", value))


def segments(envelope: bytes, plaintext_len: int) -> list[bytes]:
    """The segment records (ciphertext || tag) of an envelope with S = 4096."""
    body = envelope[HEADER_LEN:]
    n = max(1, -(-plaintext_len // S))
    sizes = [S + TAG] * (n - 1) + [plaintext_len - S * (n - 1) + TAG]
    out, pos = [], 0
    for size in sizes:
        out.append(body[pos:pos + size])
        pos += size
    return out


def seal_with_flags(file: File, plaintext: bytes, last_flags: list[int]) -> bytes:
    """An envelope whose segment i is sealed with the nonce's last byte = last_flags[i]."""
    salt = file.rng(16)
    public = pack_public_header(Kind.WEIGHTS, S_LOG2, len(plaintext), file.keys.file_id, salt)
    pk = file.keys.payload_key(salt)
    out = [public, file.keys.key_block]
    for i, last in enumerate(last_flags):
        cipher = AES.new(pk, AES.MODE_GCM, nonce=i.to_bytes(11, "big") + bytes([last]),
                         mac_len=TAG)
        cipher.update(public)
        ciphertext, tag = cipher.encrypt_and_digest(plaintext[i * S:(i + 1) * S])
        out += [ciphertext, tag]
    return b"".join(out)


def success_vectors() -> Iterator[Vector]:
    f = File("success")
    yield f.success("success_kind0_generic", "a kind-0 envelope (model_tool plugin) opens",
                    f.rng(300), Kind.GENERIC)
    tail = struct.pack("<IQ44x", 4321, 1 << 33)
    yield f.success("success_kind1_header_tail",
                    "the 56-byte header tail {u32 flatbuffers_size, u64 binary_size, 44 zero}",
                    tail, Kind.HEADER_TAIL)
    flatbuffer, binary = f.rng(200), f.rng(1000)
    spans = clear_spans(len(binary), [(100, 300), (100, 300), (600, 168)])
    clear_len, digest = clear_digest(spans, [(o, binary[o:o + n]) for o, n in spans])
    yield f.success("success_kind2_flatbuffer_manifest",
                    "FlatBuffer + manifest (clear spans (0,100) (400,200) (768,232) of a "
                    "1000-byte binary region)",
                    flatbuffer + Manifest(len(flatbuffer), clear_len, digest).pack(),
                    Kind.FLATBUFFER)
    yield f.success("success_kind3_weights", "weights across two segments", f.rng(S + 904))
    yield f.success("success_seg_log2_20", "the default segment size, 1 MiB", f.rng(1000),
                    seg_log2=20)
    for name, size in [("0", 0), ("s_minus_1", S - 1), ("s", S), ("s_plus_1", S + 1),
                       ("2s", 2 * S), ("2s_plus_1", 2 * S + 1), ("3s", 3 * S)]:
        yield f.success(f"boundary_{name}", f"plaintext of {size} bytes, S = 4096",
                        f.rng(size))
    p = File("passphrase", passphrase="correct horse battery staple")
    yield p.success("success_passphrase", "a passphrase key (scrypt log2N=10 r=8 p=1)",
                    p.rng(S + 10))
    u = File("unicode", passphrase="pässwörd ünïcødé 🔑 ﬁ")
    yield u.success("success_passphrase_utf8",
                    "the passphrase is hashed as its UTF-8 bytes, not normalized", u.rng(100))


def key_vectors() -> Iterator[Vector]:
    f = File("wrong key")
    env = f.seal(f.rng(300))
    other = File("another key")
    yield other.vector("wrong_key", "wrong_key", "another key: key id and key check differ", env)
    p = File("wrong passphrase", passphrase="the right one")
    penv = p.seal(p.rng(300))
    yield Vector("wrong_passphrase", "wrong_key", "another passphrase", penv,
                 passphrase="the wrong one")
    yield other.vector("wrong_key_for_passphrase_file", "wrong_key",
                       "a key file given for a file encrypted with a passphrase", penv)
    yield Vector("wrong_passphrase_for_key_file", "wrong_key",
                 "a passphrase given for a file encrypted with a key file", env,
                 passphrase="the right one")
    yield p.vector("wrong_key_scrypt_salt_changed", "wrong_key",
                   "a changed scrypt salt derives another K: indistinguishable from a wrong "
                   "passphrase", flip(penv, SCRYPT_SALT + 3))
    yield p.vector("wrong_key_scrypt_r_changed", "wrong_key",
                   "a changed (legal) scrypt r derives another K", patch(penv, SCRYPT_R, b"\x09"))


def tampered_vectors() -> Iterator[Vector]:
    f = File("tampered")
    pt = f.rng(S + 200)
    env = f.seal(pt)
    small = f.seal(f.rng(300))
    cases = [
        ("segment_bit", "a flipped bit in the first segment's ciphertext", flip(env, 200)),
        ("tag", "a flipped bit in the last segment's tag", flip(env, len(env) - 3, 0x80)),
        ("header_kind", "kind 3 changed to kind 2", patch(small, KIND, b"\x02")),
        ("header_seg_log2", "seg_log2 12 changed to 13 (one segment either way: same length)",
         patch(small, SEG_LOG2, b"\x0d")),
        ("header_plaintext_len", "plaintext_len + 1 and one byte appended (consistent length)",
         with_plaintext_len(small, 301) + b"\x00"),
        ("header_file_id", "a flipped bit in file_id (the key check depends on it)",
         flip(small, FILE_ID + 5)),
        ("header_region_salt", "a flipped bit in region_salt", flip(small, REGION_SALT + 15)),
        ("key_id", "a flipped bit in the key id, key check right", flip(small, KEY_ID)),
        ("key_check", "a flipped bit in the key check, key id right", flip(small, KEY_CHECK + 7)),
        ("wrap_nonce", "a flipped bit in the wrap nonce", flip(small, WRAP_NONCE)),
        ("wrapped_dk", "a flipped bit in the wrapped DK", flip(small, WRAPPED_DK + 31)),
        ("wrap_tag", "a flipped bit in the wrap tag", flip(small, WRAP_TAG + 2)),
    ]
    for name, about, envelope in cases:
        yield f.vector(f"tampered_{name}", "tampered", about, envelope)

    # Whole-structure attacks, same key throughout.
    other_file = File("tampered other file", key=f.k)
    yield f.vector("tampered_key_block_from_other_file", "tampered",
                   "the key block of another file under the same key (key id right, key check "
                   "wrong for this file_id)",
                   patch(small, KB, other_file.keys.key_block))
    yield f.vector("tampered_public_header_from_other_envelope", "tampered",
                   "the public header of another envelope of the same file and length",
                   patch(small, 0, f.seal(f.rng(300))[:48]))

    three = f.rng(3 * S)
    env3 = f.seal(three)
    s0, s1, s2 = segments(env3, len(three))
    yield f.vector("tampered_segments_swapped", "tampered", "segments 0 and 1 swapped",
                   env3[:HEADER_LEN] + s1 + s0 + s2)
    yield f.vector("tampered_segment_duplicated", "tampered", "segment 0 stored again as 1",
                   env3[:HEADER_LEN] + s0 + s0 + s2)
    pt_2s1 = f.rng(2 * S + 1)
    yield f.vector("tampered_last_flag_early", "tampered",
                   "plaintext 2S+1: segment 1 of 3 sealed as the last one",
                   seal_with_flags(f, pt_2s1, [0, 1, 1]))
    yield f.vector("tampered_last_flag_missing", "tampered",
                   "plaintext 2S+1: the last segment sealed as not last",
                   seal_with_flags(f, pt_2s1, [0, 0, 0]))
    env_2s1 = f.seal(pt_2s1)
    yield f.vector("tampered_cut_at_boundary", "tampered",
                   "plaintext 2S+1 cut after segment 1, plaintext_len rewritten to 2S",
                   with_plaintext_len(env_2s1, 2 * S)[:HEADER_LEN + 2 * (S + TAG)])


def structure_vectors() -> Iterator[Vector]:
    f = File("structure")
    pt = f.rng(2 * S + 1)
    env = f.seal(pt)
    small = f.seal(f.rng(300))
    p = File("structure passphrase", passphrase="structure")
    penv = p.seal(b"scrypt fields")
    cases = [
        ("truncated", "dropped_last_segment", "the last of three segments dropped",
         env[:HEADER_LEN + 2 * (S + TAG)]),
        ("truncated", "mid_segment", "the envelope cut 10 bytes short", env[:-10]),
        ("truncated", "in_header", "only the first 100 bytes", small[:100]),
        ("truncated", "magic_prefix", "only the first 3 bytes, a prefix of the magic", small[:3]),
        ("truncated", "empty", "zero bytes", b""),
        ("truncated", "plaintext_len_grown", "plaintext_len + 1: one byte missing",
         with_plaintext_len(small, 301)),
        ("corrupt", "trailing_bytes", "one extra byte after the last segment", small + b"\x00"),
        ("corrupt", "plaintext_len_shrunk", "plaintext_len - 1: one byte too many",
         with_plaintext_len(small, 299)),
        ("corrupt", "bad_magic", "magic BMCF", patch(small, 3, b"F")),
        ("corrupt", "bad_magic_short", "3 bytes that are not a prefix of the magic", b"BMX"),
        ("corrupt", "seg_log2_11", "seg_log2 below 12", patch(small, SEG_LOG2, b"\x0b")),
        ("corrupt", "seg_log2_31", "seg_log2 above 30", patch(small, SEG_LOG2, b"\x1f")),
        ("corrupt", "plaintext_len_over_limit", "plaintext_len = 2^40 + 1",
         with_plaintext_len(small, (1 << 40) + 1)),
        ("corrupt", "key_file_block_with_scrypt_fields",
         "a key-file key block with a non-zero scrypt r", patch(small, SCRYPT_R, b"\x08")),
        ("unsupported_version", "version_3", "format version 3", patch(small, VERSION, b"\x03")),
        ("unsupported_version", "version_0", "format version 0", patch(small, VERSION, b"\x00")),
        ("unsupported_version", "algorithm_2", "algorithm 2", patch(small, ALGORITHM, b"\x02")),
        ("unsupported_version", "kind_4", "kind 4", patch(small, KIND, b"\x04")),
        ("unsupported_version", "key_source_3", "key source 3", patch(small, SOURCE, b"\x03")),
        ("unsupported_version", "order_version_before_length",
         "version 3 and cut short: the version is checked first",
         patch(small, VERSION, b"\x03")[:-10]),
        ("corrupt", "order_magic_before_version", "bad magic and version 3: magic first",
         patch(patch(small, 0, b"X"), VERSION, b"\x03")),
        ("corrupt", "v1_body_as_version_2",
         "a version-1 kind-3 envelope relabelled version 2: its key block reads as a key area "
         "length in a weight envelope", patch(small, VERSION, b"\x02")),
    ]
    for expect, name, about, envelope in cases:
        yield f.vector(f"{expect}_{name}", expect, about, envelope)
    yield File("structure other key").vector(
        "corrupt_order_length_before_key", "corrupt",
        "one extra byte, opened with another key: the length is checked before the key",
        small + b"\x00")
    for name, offset, value, about in [
        ("scrypt_log2n_21", LOG2N, 21, "scrypt log2(N) = 21 (above 20)"),
        ("scrypt_log2n_9", LOG2N, 9, "scrypt log2(N) = 9 (below 10)"),
        ("scrypt_r_0", SCRYPT_R, 0, "scrypt r = 0"),
        ("scrypt_r_33", SCRYPT_R, 33, "scrypt r = 33 (above 32)"),
        ("scrypt_p_0", SCRYPT_P, 0, "scrypt p = 0"),
        ("scrypt_p_17", SCRYPT_P, 17, "scrypt p = 17 (above 16)"),
    ]:
        yield p.vector(f"corrupt_{name}", "corrupt", about, patch(penv, offset, bytes([value])))


def build_vectors() -> dict[str, str]:
    """File name → contents, for every case."""
    vectors: dict[str, str] = {}
    for gen in (success_vectors, key_vectors, tampered_vectors, structure_vectors,
                lambda: v2_vectors(Vector)):
        for vector in gen():
            assert vector.name not in vectors, vector.name
            vectors[f"{vector.name}.txt"] = vector.render()
    return vectors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent
                        / "tests" / "vectors", help="directory to write (default: %(default)s)")
    args = parser.parse_args(argv)
    vectors = build_vectors()
    args.out.mkdir(parents=True, exist_ok=True)
    for stale in set(p.name for p in args.out.glob("*.txt")) - set(vectors):
        (args.out / stale).unlink()
    for name, text in vectors.items():
        (args.out / name).write_text(text, encoding="utf-8")
    digest = hashlib.sha256("".join(vectors[n] for n in sorted(vectors)).encode()).hexdigest()
    print(f"wrote {len(vectors)} vectors to {args.out} (sha256 {digest[:16]})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
