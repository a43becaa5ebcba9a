"""The version-1 envelope (docs/FORMAT.md §3–§5) as a reader and a writer must see it.

Version 1 stays readable, and the model_tool plugin still writes it (kind 0), so every test here
seals version 1 on purpose; version 2 is tested in test_envelope_v2.py."""

from __future__ import annotations

import hashlib
import pickle
import random
import struct
from collections.abc import Callable

import pytest
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF, scrypt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmcrypt.crypto import (
    HEADER_LEN,
    KEY_BLOCK_OFFSET,
    FileKeys,
    Keyring,
    Kind,
    Passphrase,
    ScryptParams,
    Sealer,
    Secret,
    Unsealer,
    UserKey,
    envelope_length,
    open_key_block,
    parse_header,
    rewrap,
    seal,
    unseal,
)
from bmcrypt.crypto import new_file as _new_file
from bmcrypt.errors import (
    BmcryptError,
    Corrupt,
    NoKey,
    Tampered,
    Truncated,
    UnsupportedVersion,
    WrongKey,
)
from bmcrypt.protect.manifest import (
    ClearDigest,
    Manifest,
    clear_digest,
    clear_spans,
    parse_manifest,
)


def new_file(secret: Secret, rng: Callable[[int], bytes] | None = None) -> FileKeys:
    """A version-1 file (what this module tests)."""
    return _new_file(secret, rng, version=1)


S_LOG2 = 12
S = 1 << S_LOG2
BOUNDARY_SIZES = [0, 1, S - 1, S, S + 1, 2 * S, 2 * S + 1, 3 * S]


def rng(seed: str) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def raw_key(seed: str = "key") -> UserKey:
    return UserKey(rng(seed)(32))


def weak_passphrase(text: str = "open sesame") -> Passphrase:
    return Passphrase(text, log2n=10)  # the smallest legal cost: fast tests


def outcome(function: Callable[..., object], *args: object) -> type[BmcryptError] | None:
    try:
        function(*args)
    except BmcryptError as exc:
        return type(exc)
    return None


def segments_of(envelope: bytes | bytearray) -> bytes:
    return bytes(envelope[HEADER_LEN:])


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("size", [*BOUNDARY_SIZES, 5, 100_000])
@pytest.mark.parametrize("kind", list(Kind))
def test_round_trip(size: int, kind: Kind) -> None:
    key = raw_key()
    keys = new_file(key, rng(f"file {size}"))
    plaintext = rng(f"plaintext {size}")(size)
    envelope = seal(keys, kind, plaintext, seg_log2=S_LOG2)
    assert len(envelope) == envelope_length(size, S_LOG2)
    header = parse_header(envelope)
    assert (header.kind, header.plaintext_len, header.file_id) == (kind, size, keys.file_id)
    assert unseal(envelope, key) == plaintext
    assert unseal(envelope, keys) == plaintext
    assert unseal(envelope, [raw_key("another"), key]) == plaintext


@pytest.mark.parametrize("seg_log2", [12, 13, 20, 30])
def test_segment_sizes(seg_log2: int) -> None:
    keys = new_file(raw_key())
    plaintext = rng("p")(3 * 4096 + 7)
    envelope = seal(keys, Kind.WEIGHTS, plaintext, seg_log2=seg_log2)
    assert parse_header(envelope).seg_log2 == seg_log2
    assert unseal(envelope, keys) == plaintext


@pytest.mark.parametrize(("size", "segments"), [(0, 1), (1, 1), (S, 1), (S + 1, 2), (3 * S, 3)])
def test_envelope_length_is_the_formula(size: int, segments: int) -> None:
    assert envelope_length(size, S_LOG2) == 152 + size + 16 * segments


def test_envelope_length_refuses_out_of_range_arguments() -> None:
    for args in [(-1, 12), ((1 << 40) + 1, 12), (0, 11), (0, 31)]:
        with pytest.raises(ValueError):
            envelope_length(*args)


def test_accepts_any_contiguous_buffer() -> None:
    np = pytest.importorskip("numpy")
    keys = new_file(raw_key())
    weights = np.arange(3000, dtype=np.float32)
    envelope = seal(keys, Kind.WEIGHTS, weights, seg_log2=S_LOG2)
    assert unseal(memoryview(envelope), keys) == weights.tobytes()


# ---------------------------------------------------------------- streaming


def stream_seal(keys: FileKeys, plaintext: bytes, chunks: list[int], seed: str) -> bytes:
    sealer = Sealer(keys, Kind.WEIGHTS, len(plaintext), seg_log2=S_LOG2, rng=rng(seed))
    out, pos = bytearray(), 0
    for size in chunks:
        out += sealer.update(plaintext[pos:pos + size])
        pos += size
    out += sealer.update(plaintext[pos:])
    out += sealer.finish()
    return bytes(out)


def stream_unseal(envelope: bytes, keys: FileKeys | Keyring, chunk: int,
                  envelope_len: int | None = None) -> bytes:
    unsealer, out = Unsealer(keys, envelope_len=envelope_len), bytearray()
    for i in range(0, len(envelope), chunk):
        out += unsealer.update(envelope[i:i + chunk])
    out += unsealer.finish()
    return bytes(out)


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
@pytest.mark.parametrize("chunk", [1, 17, S - 1, S, S + 1, 3 * S + 5])
def test_streaming_is_byte_identical_to_one_shot(size: int, chunk: int) -> None:
    keys = new_file(raw_key(), rng("file"))
    plaintext = rng("p")(size)
    one_shot = bytes(seal(keys, Kind.WEIGHTS, plaintext, seg_log2=S_LOG2, rng=rng("salt")))
    streamed = stream_seal(keys, plaintext, [chunk] * (size // chunk), "salt")
    assert streamed == one_shot
    if chunk >= S - 1 or size <= S:  # byte-at-a-time opening of 12 KiB is slow for nothing
        assert stream_unseal(one_shot, keys, chunk) == plaintext
        assert stream_unseal(one_shot, raw_key(), chunk, len(one_shot)) == plaintext


def test_sealer_emits_each_segment_as_soon_as_it_is_complete() -> None:
    keys = new_file(raw_key())
    sealer = Sealer(keys, Kind.WEIGHTS, 2 * S + 1, seg_log2=S_LOG2)
    assert len(sealer.update(b"\0" * 10)) == HEADER_LEN  # the header comes first
    assert len(sealer.update(b"\0" * (S - 10))) == S + 16
    assert len(sealer.update(b"\0" * S)) == S + 16
    assert len(sealer.update(b"\0")) == 1 + 16
    assert sealer.update(b"") == b""  # once complete, nothing more (this once went negative)
    assert sealer.finish() == b""


def test_sealer_refuses_more_or_less_than_announced() -> None:
    keys = new_file(raw_key())
    sealer = Sealer(keys, Kind.WEIGHTS, 10)
    with pytest.raises(ValueError):
        sealer.update(b"\0" * 11)
    sealer.update(b"\0" * 9)
    with pytest.raises(ValueError):
        sealer.finish()
    sealer.update(b"\0")
    sealer.finish()
    with pytest.raises(ValueError):
        sealer.update(b"")


def test_unsealer_releases_a_segment_only_after_it_authenticated() -> None:
    # Streaming necessarily gives out earlier segments before a later one fails: callers
    # write to a temporary file and commit after finish(). The one-shot gives out nothing.
    keys = new_file(raw_key())
    plaintext = rng("p")(3 * S)
    envelope = bytearray(seal(keys, Kind.WEIGHTS, plaintext, seg_log2=S_LOG2))
    envelope[-1] ^= 1
    unsealer = Unsealer(keys, envelope_len=len(envelope))
    first = unsealer.update(envelope[:HEADER_LEN + S + 16 + 5])
    assert first == plaintext[:S]
    with pytest.raises(Tampered):
        unsealer.update(envelope[HEADER_LEN + S + 16 + 5:])
    with pytest.raises(Tampered):  # and stays failed
        unsealer.finish()
    with pytest.raises(Tampered):
        unseal(envelope, keys)


def test_unsealer_exposes_header_and_file_keys_for_the_next_envelope() -> None:
    key = raw_key()
    keys = new_file(key)
    first, second = seal(keys, Kind.HEADER_TAIL, b"a" * 56), seal(keys, Kind.WEIGHTS, b"b" * 9)
    unsealer = Unsealer(key)
    unsealer.update(first)
    unsealer.finish()
    assert unsealer.header is not None and unsealer.header.kind == Kind.HEADER_TAIL
    assert unsealer.file_keys is not None
    assert unseal(second, unsealer.file_keys) == b"b" * 9


def test_unsealer_without_length_reports_short_and_long_streams() -> None:
    keys = new_file(raw_key())
    envelope = bytes(seal(keys, Kind.WEIGHTS, rng("p")(2 * S + 1), seg_log2=S_LOG2))
    with pytest.raises(Truncated):
        stream_unseal(envelope[:-1], keys, 1000)
    with pytest.raises(Truncated):
        stream_unseal(envelope[:HEADER_LEN - 1], keys, 1000)
    with pytest.raises(Corrupt):
        stream_unseal(envelope + b"\0", keys, 1000)
    with pytest.raises(Corrupt):
        stream_unseal(b"not an envelope", keys, 1000)


# ---------------------------------------------------------------- the header and its limits


def small_envelope(key: UserKey | Passphrase | None = None) -> tuple[bytes, bytes]:
    plaintext = rng("small")(300)
    keys = new_file(key or raw_key(), rng("small file"))
    return bytes(seal(keys, Kind.WEIGHTS, plaintext, seg_log2=S_LOG2, rng=rng("s"))), plaintext


def with_byte(envelope: bytes, offset: int, value: int) -> bytes:
    out = bytearray(envelope)
    out[offset] = value
    return bytes(out)


@pytest.mark.parametrize(("offset", "value", "error"), [
    (0, ord("X"), Corrupt),
    (4, 3, UnsupportedVersion),  # version 2 exists since FORMAT.md §8
    (5, 2, UnsupportedVersion),
    (6, 4, UnsupportedVersion),
    (7, 11, Corrupt),
    (7, 31, Corrupt),
    (15, 1, Corrupt),  # plaintext_len ≥ 2^56
])
def test_parse_header_enforces_every_limit(offset: int, value: int, error: type) -> None:
    envelope, _ = small_envelope()
    with pytest.raises(error):
        parse_header(with_byte(envelope, offset, value))


def test_parse_header_checks_the_length_only_of_a_whole_envelope() -> None:
    envelope, _ = small_envelope()
    header = parse_header(envelope[:HEADER_LEN], whole=False)
    assert header.envelope_len == len(envelope)
    with pytest.raises(Truncated):
        parse_header(envelope[:-1])
    with pytest.raises(Corrupt):
        parse_header(envelope + b"\0")
    with pytest.raises(Truncated):
        header.check_length(len(envelope) - 1)


@pytest.mark.parametrize(("prefix", "error"), [
    (b"", Truncated), (b"BM", Truncated), (b"BX", Corrupt), (b"BMCE\x01", Truncated),
    (b"BMCE\x09", UnsupportedVersion), (b"BMCE\x01\x01\x03\x0c", Truncated),
    (b"BMCE\x01\x01\x03\x05", Corrupt),
])
def test_a_short_header_is_checked_as_far_as_it_goes(prefix: bytes, error: type) -> None:
    with pytest.raises(error):
        parse_header(prefix, whole=False)


def test_plaintext_len_limit_is_checked_before_allocating() -> None:
    envelope, _ = small_envelope()
    huge = envelope[:8] + struct.pack("<Q", 1 << 40) + envelope[16:]
    with pytest.raises(Truncated):  # 2^40 is legal; the envelope is just far too short
        unseal(huge, raw_key())
    with pytest.raises(Corrupt):
        unseal(envelope[:8] + struct.pack("<Q", (1 << 40) + 1) + envelope[16:], raw_key())


def expected_after_flip(envelope: bytes, offset: int, value: int) -> type[BmcryptError]:
    """What a reader must say when byte `offset` of a raw-key 300-byte envelope becomes `value`."""
    if offset < 4:
        return Corrupt
    if offset in (4, 5):  # version, algorithm: any other value is unknown
        return UnsupportedVersion
    if offset == 6:  # kind: another known kind changes the associated data
        return Tampered if value <= 3 else UnsupportedVersion
    if offset == 7:  # seg_log2: 300 bytes are one segment whatever the (legal) size
        return Tampered if 12 <= value <= 30 else Corrupt
    if offset < 16:
        new_len = int.from_bytes(with_byte(envelope, offset, value)[8:16], "little")
        return Truncated if 300 < new_len <= 1 << 40 else Corrupt
    if offset == KEY_BLOCK_OFFSET:  # key source 1: every other value is unknown
        return UnsupportedVersion
    if KEY_BLOCK_OFFSET < offset < KEY_BLOCK_OFFSET + 20:  # scrypt fields of a key file: zero
        return Corrupt
    return Tampered  # file_id, region_salt, key id, key check, wrap, segments


def test_every_single_bit_flip_is_detected_with_the_right_error() -> None:
    key = raw_key()
    envelope, plaintext = small_envelope(key)
    assert len(envelope) == 468
    assert unseal(envelope, key) == plaintext
    wrong = []
    for offset in range(len(envelope)):
        for bit in range(8):
            value = envelope[offset] ^ (1 << bit)
            got = outcome(unseal, with_byte(envelope, offset, value), key)
            if got is not expected_after_flip(envelope, offset, value):
                wrong.append((offset, bit, got))
    assert wrong == []


def test_bit_flips_in_a_passphrase_key_block() -> None:
    passphrase = weak_passphrase()
    envelope, _ = small_envelope(passphrase)
    kb = KEY_BLOCK_OFFSET
    bounds = {kb + 1: range(10, 21), kb + 2: range(1, 33), kb + 3: range(1, 17)}
    for offset in range(kb, HEADER_LEN):
        for bit in range(8):
            value = envelope[offset] ^ (1 << bit)
            got = outcome(unseal, with_byte(envelope, offset, value), passphrase)
            if offset == kb:
                expected: type = UnsupportedVersion
            elif offset in bounds:  # another legal parameter derives another K
                expected = WrongKey if value in bounds[offset] else Corrupt
            elif offset < kb + 20:  # the salt: another K as well
                expected = WrongKey
            else:
                expected = Tampered
            assert got is expected, (offset - kb, bit)


# ---------------------------------------------------------------- keys: wrong key vs tampered


def test_wrong_key_and_wrong_passphrase() -> None:
    envelope, _ = small_envelope(raw_key())
    with pytest.raises(WrongKey) as raised:
        unseal(envelope, raw_key("other"))
    assert raw_key().key_id_hex in str(raised.value)  # says which key the file needs
    with pytest.raises(WrongKey):
        unseal(envelope, weak_passphrase())  # a key file's envelope, a passphrase given
    penvelope, _ = small_envelope(weak_passphrase("right"))
    with pytest.raises(WrongKey):
        unseal(penvelope, weak_passphrase("wrong"))
    with pytest.raises(WrongKey):
        unseal(penvelope, raw_key())
    with pytest.raises(NoKey):
        unseal(envelope, [])


def test_keyring_picks_the_key_by_id_and_still_spots_a_changed_id() -> None:
    key, others = raw_key(), [raw_key("a"), raw_key("b")]
    envelope, plaintext = small_envelope(key)
    assert unseal(envelope, [*others, key]) == plaintext
    changed_id = bytearray(envelope)
    changed_id[KEY_BLOCK_OFFSET + 20] ^= 1
    with pytest.raises(Tampered):  # no key has that id, but one key's check matches
        unseal(changed_id, [*others, key])
    with pytest.raises(WrongKey):
        unseal(changed_id, others)


def test_the_key_block_is_shared_by_envelopes_of_every_kind_and_segment_size() -> None:
    # FORMAT.md §4.4: the wrap binds bytes 0..6 of the header, not kind or seg_log2.
    key = raw_key()
    keys = new_file(key)
    envelopes = [seal(keys, kind, b"x" * 70, seg_log2=seg_log2)
                 for kind in Kind for seg_log2 in (12, 20)]
    for envelope in envelopes:
        header = parse_header(envelope)
        assert header.key_block == keys.key_block
        assert open_key_block(header, key).key_block == keys.key_block
        assert unseal(envelope, key) == b"x" * 70


def test_an_envelope_of_another_file_is_refused_with_file_keys() -> None:
    key = raw_key()
    mine, theirs = new_file(key), new_file(key)
    envelope = seal(theirs, Kind.WEIGHTS, b"w")
    with pytest.raises(Tampered):
        unseal(envelope, mine)
    assert unseal(envelope, key) == b"w"


def test_derived_passphrase_key_is_not_reused_for_a_new_file() -> None:
    derived = weak_passphrase().new_user_key()
    with pytest.raises(ValueError):
        new_file(derived)


# ---------------------------------------------------------------- the spec, by hand


def test_an_envelope_decrypts_by_hand_from_the_spec() -> None:
    k = rng("by hand")(32)
    keys = new_file(UserKey(k), rng("by hand file"))
    plaintext = rng("by hand plaintext")(S + 5)
    env = bytes(seal(keys, Kind.WEIGHTS, plaintext, seg_log2=S_LOG2, rng=rng("salt")))
    public, block = env[:48], env[48:152]
    file_id, region_salt = env[16:32], env[32:48]
    assert env[:8] == b"BMCE\x01\x01\x03\x0c"
    assert struct.unpack("<Q", env[8:16])[0] == S + 5
    assert block[0:20] == bytes([1]) + bytes(19)
    assert block[20:28] == hashlib.sha256(b"bmcrypt key id v1" + k).digest()[:8]
    assert block[28:44] == HKDF(k, 16, file_id, SHA256, context=b"bmcrypt v1 key check")
    kek = HKDF(k, 32, file_id, SHA256, context=b"bmcrypt v1 wrap")
    wrap = AES.new(kek, AES.MODE_GCM, nonce=block[44:56], mac_len=16)
    wrap.update(public[:6] + file_id + block[:44])
    dk = wrap.decrypt_and_verify(block[56:88], block[88:104])
    pk = HKDF(dk, 32, region_salt, SHA256, context=b"bmcrypt v1 payload")
    out, pos = b"", 152
    for i, size in enumerate([S, 5]):
        cipher = AES.new(pk, AES.MODE_GCM, nonce=i.to_bytes(11, "big") + bytes([i == 1]),
                         mac_len=16)
        cipher.update(public)
        out += cipher.decrypt_and_verify(env[pos:pos + size], env[pos + size:pos + size + 16])
        pos += size + 16
    assert pos == len(env) and out == plaintext


def test_passphrase_parameters_are_stored_and_used() -> None:
    passphrase = Passphrase("pässwörd", log2n=11, r=4, p=2)
    keys = new_file(passphrase, rng("pp"))
    block = keys.key_block
    assert block[:4] == bytes([2, 11, 4, 2])
    salt = block[4:20]
    k = scrypt("pässwörd".encode(), salt, 32, N=1 << 11, r=4, p=2)
    assert block[20:28] == hashlib.sha256(b"bmcrypt key id v1" + k).digest()[:8]
    envelope = seal(keys, Kind.GENERIC, b"hello")
    assert unseal(envelope, Passphrase("pässwörd")) == b"hello"  # reader's own params ignored
    assert unseal(envelope, UserKey(k, ScryptParams(11, 4, 2, salt))) == b"hello"


def test_each_file_gets_a_fresh_passphrase_salt_and_key_id() -> None:
    passphrase = weak_passphrase()
    first, second = new_file(passphrase), new_file(passphrase)
    assert first.key_block[4:20] != second.key_block[4:20]
    assert first.key_id != second.key_id


def test_writer_defaults_are_the_spec_ones() -> None:
    keys = new_file(Passphrase("x"))  # one real log2N=15 derivation
    assert keys.key_block[:4] == bytes([2, 15, 8, 1])


# ---------------------------------------------------------------- rekey


@pytest.mark.parametrize("new", ["key", "passphrase"])
@pytest.mark.parametrize("old", ["key", "passphrase"])
def test_rewrap_changes_only_the_key_block(old: str, new: str) -> None:
    old_secret = raw_key("old") if old == "key" else weak_passphrase("old")
    new_secret = raw_key("new") if new == "key" else weak_passphrase("new")
    keys = new_file(old_secret)
    envelopes = [bytes(seal(keys, kind, rng(str(kind))(S + 9), seg_log2=S_LOG2))
                 for kind in Kind]
    block = rewrap(parse_header(envelopes[0]), old_secret, new_secret)
    assert block != keys.key_block
    for envelope in envelopes:
        rekeyed = envelope[:KEY_BLOCK_OFFSET] + block + envelope[HEADER_LEN:]
        assert segments_of(rekeyed) == segments_of(envelope)
        assert unseal(rekeyed, new_secret) == unseal(envelope, old_secret)
        with pytest.raises(WrongKey):
            unseal(rekeyed, old_secret)


def test_rewrap_needs_the_old_key_and_picks_a_fresh_nonce() -> None:
    old, new = raw_key("old"), raw_key("new")
    header = parse_header(seal(new_file(old), Kind.WEIGHTS, b"w"))
    with pytest.raises(WrongKey):
        rewrap(header, new, old)
    assert rewrap(header, old, new) != rewrap(header, old, new)


# ---------------------------------------------------------------- secrets stay secret


def test_no_secret_in_repr_str_or_errors() -> None:
    k = rng("secret")(32)
    key, passphrase = UserKey(k), Passphrase("correct horse battery", log2n=10)
    keys = new_file(key)
    texts = [repr(key), str(key), repr(keys), str(keys), repr(passphrase), str(passphrase)]
    envelope = seal(keys, Kind.WEIGHTS, b"w")
    tampered = bytearray(envelope)
    tampered[-1] ^= 1
    cases: list[tuple[bytes | bytearray, Secret]] = [
        (envelope, raw_key("x")), (tampered, key), (envelope, passphrase)]
    for bad, secret in cases:
        with pytest.raises(BmcryptError) as raised:
            unseal(bad, secret)
        texts += [str(raised.value), repr(raised.value), str(raised.value.hint)]
    for text in texts:
        assert k.hex() not in text and "correct horse" not in text
    assert key.key_id_hex in repr(key)
    for holder in (key, passphrase, keys):
        with pytest.raises(TypeError):
            pickle.dumps(holder)


# ---------------------------------------------------------------- manifest


def test_manifest_round_trip_and_checks() -> None:
    manifest = Manifest(flatbuffer_len=10, clear_len=5, clear_digest=bytes(range(32)))
    plaintext = b"f" * 10 + manifest.pack()
    assert len(manifest.pack()) == 64
    assert parse_manifest(plaintext) == manifest
    with pytest.raises(Corrupt):
        parse_manifest(b"x" + plaintext)  # flatbuffer_len no longer fits
    with pytest.raises(Corrupt):
        parse_manifest(plaintext[:-64] + b"BMCX" + plaintext[-60:])
    with pytest.raises(UnsupportedVersion):
        parse_manifest(plaintext[:-60] + struct.pack("<I", 3) + plaintext[-56:])
    with pytest.raises(Corrupt):
        parse_manifest(plaintext[:-1] + b"\1")
    with pytest.raises(Corrupt):
        parse_manifest(b"short")


def test_clear_spans_are_the_maximal_gaps_between_envelopes() -> None:
    assert clear_spans(100, []) == [(0, 100)]
    assert clear_spans(100, [(10, 20), (10, 20), (30, 5), (90, 10)]) == [(0, 10), (35, 55)]
    assert clear_spans(50, [(0, 50)]) == []
    for bad in [[(90, 20)], [(0, 20), (10, 20)], [(5, 0)], [(-1, 3)]]:
        with pytest.raises(Corrupt):
            clear_spans(100, bad)


def test_clear_digest_is_the_spec_hash_and_streams() -> None:
    region = rng("region")(1000)
    spans = clear_spans(len(region), [(100, 300), (700, 100)])
    expected = hashlib.sha256()
    for off, length in spans:
        expected.update(struct.pack("<QQ", off, length) + region[off:off + length])
    whole = clear_digest(spans, [(off, region[off:off + n]) for off, n in spans])
    assert whole == (sum(n for _, n in spans), expected.digest())
    pieces = [(pos, region[pos:min(pos + 7, off + n)])
              for off, n in spans for pos in range(off, off + n, 7)]
    assert clear_digest(spans, pieces) == whole


def test_clear_digest_refuses_misuse() -> None:
    with pytest.raises(ValueError):
        ClearDigest([(0, 10), (10, 5)])  # touching spans are one span
    digest = ClearDigest([(0, 10), (20, 5)])
    with pytest.raises(ValueError):
        digest.update(1, b"x")  # a gap
    with pytest.raises(ValueError):
        digest.update(0, b"x" * 11)  # past the span's end
    digest.update(0, b"x" * 10)
    with pytest.raises(ValueError):
        digest.finish()  # the second span is missing


# ---------------------------------------------------------------- properties


FIXED_KEY = raw_key("hypothesis")
FIXED_KEYS = new_file(FIXED_KEY, rng("hypothesis file"))
BASE_PLAINTEXT = rng("base")(2 * S + 100)
BASE = bytes(seal(FIXED_KEYS, Kind.WEIGHTS, BASE_PLAINTEXT, seg_log2=S_LOG2, rng=rng("b")))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plaintext=st.binary(max_size=3 * S + 50), cuts=st.lists(st.integers(0, 3 * S + 50)))
def test_random_plaintexts_round_trip_in_random_chunks(plaintext: bytes, cuts: list[int]) -> None:
    one_shot = bytes(seal(FIXED_KEYS, Kind.WEIGHTS, plaintext, seg_log2=S_LOG2, rng=rng("h")))
    bounds = sorted({min(c, len(plaintext)) for c in cuts})
    chunks = [b - a for a, b in zip([0, *bounds], bounds, strict=False)]
    assert stream_seal(FIXED_KEYS, plaintext, chunks, "h") == one_shot
    assert unseal(one_shot, FIXED_KEY) == plaintext
    assert stream_unseal(one_shot, FIXED_KEYS, 1 + len(cuts) * 97) == plaintext


mutation = st.one_of(
    st.tuples(st.just("set"), st.integers(0, len(BASE) - 1), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(BASE) - 1), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(BASE)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(BASE) - 1), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(mutation, min_size=1, max_size=4))
def test_random_mutations_raise_only_bmcrypt_errors(mutations: list[tuple[str, int, int]]) -> None:
    envelope = bytearray(BASE)
    for op, pos, value in mutations:
        pos = min(pos, max(len(envelope) - 1, 0))
        if op == "set" and envelope:
            envelope[pos] = value
        elif op == "cut":
            del envelope[pos:]
        elif op == "insert":
            envelope.insert(pos, value)
        elif envelope:
            del envelope[pos]
    try:
        plaintext = unseal(envelope, FIXED_KEY)
    except BmcryptError:
        return
    assert bytes(envelope) == BASE and plaintext == BASE_PLAINTEXT
