"""Property: whatever is done to a real bmodel's bytes, the reader either parses it (and the
result is self-consistent) or raises a BmcryptError subclass. Never a raw Python exception.

BMCRYPT_FUZZ_EXAMPLES sets the number of mutated files (default 2000, ~15 s).
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmcrypt.bmodel import read_bmodel, read_raw
from bmcrypt.bmodel.header import parse_header
from bmcrypt.bmodel.writer import pack_flatbuffer
from bmcrypt.errors import BmcryptError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SOURCES = {p.name: p.read_bytes() for p in (FIXTURES / "mlp_bm1684x_f16_nokernel.bmodel",
                                             FIXTURES / "qwen2_tiny_bf16_seq64_nokernel.bmodel")}
EXAMPLES = int(os.environ.get("BMCRYPT_FUZZ_EXAMPLES", "2000"))
INTERESTING_U32 = [0, 1, 2, 3, 4, 7, 8, 63, 64, 65, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
                   0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF]
INTERESTING_U64 = INTERESTING_U32 + [1 << 32, (1 << 32) + 1, 1 << 63, (1 << 64) - 1]


def _fb_end(data: bytes) -> int:
    return parse_header(data[:64]).binary_offset


# Each mutation is (kind, a, b, where). Positions are fractions (or small offsets) of a target
# area, so one strategy fits any file and shrinks toward its start. The area is mostly the
# FlatBuffer, where the parsing happens; the header fields get their own mutation.
# A fraction of the file built from integers: the vendor libraries loaded by earlier tests in
# this process set flush-to-zero CPU state, and hypothesis refuses float strategies under it.
position = st.one_of(st.integers(0, 10**6).map(lambda n: n / 10**6), st.integers(0, 200))
where = st.sampled_from(["fb", "fb", "fb", "any"])
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(1, 255), where),
    st.tuples(st.just("truncate"), position, st.none(), where),
    st.tuples(st.just("splice"), position, position, st.integers(1, 64)),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16), where),
    st.tuples(st.just("delete"), position, st.integers(1, 64), where),
    st.tuples(st.just("header"), st.sampled_from([4, 8, 8, 12, 12, 20, 60]),
              st.sampled_from(INTERESTING_U64), st.booleans()),
    st.tuples(st.just("u32"), position, st.sampled_from(INTERESTING_U32), where),
)


def _pos(p: float | int, n: int, area: str, fb_end: int) -> int:
    lo, hi = (64, min(fb_end, n)) if area == "fb" else (0, n)
    if hi <= lo:
        return max(0, min(lo, n - 1))
    k = int(p * (hi - lo)) if isinstance(p, float) else p
    return lo + min(k, hi - lo - 1)


def mutate(data: bytes, ops: list[tuple]) -> bytes:  # type: ignore[type-arg]
    d = bytearray(data)
    fb_end = _fb_end(data)
    for kind, a, b, c in ops:
        n = len(d)
        if n == 0:
            break
        if kind == "flip":
            d[_pos(a, n, c, fb_end)] ^= b
        elif kind == "truncate":
            del d[_pos(a, n, c, fb_end):]
        elif kind == "splice":
            src, dst = _pos(a, n, "fb", fb_end), _pos(b, n, "fb", fb_end)
            d[dst:dst + c] = d[src:src + c]
        elif kind == "insert":
            i = _pos(a, n, c, fb_end)
            d[i:i] = b
        elif kind == "delete":
            i = _pos(a, n, c, fb_end)
            del d[i:i + b]
        elif kind == "header":
            if a == 12 and c:
                d[12:20] = struct.pack("<Q", b)
            else:
                d[a:a + 4] = struct.pack("<I", b & 0xFFFFFFFF)
        elif kind == "u32":
            i = _pos(a, n, c, fb_end) & ~3
            d[i:i + 4] = struct.pack("<I", b)
    return bytes(d)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # tmpfs when there is one: thousands of rewrites of a 1.3 MB file
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bmcrypt-fuzz-", dir=base) as d:
        yield Path(d) / "fuzz.bmodel"


def check(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        m = read_bmodel(path)
    except BmcryptError:
        return
    # It parsed: then it must be self-consistent, and the object API must work on it too.
    assert sum(p.size for p in m.layout) == m.file_size == len(data)
    pos = 0
    for part in m.layout:
        assert part.offset == pos
        pos = part.end
    pack_flatbuffer(read_raw(path).unpack())


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(source=st.sampled_from(sorted(SOURCES)), ops=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_fixtures_raise_only_bmcrypt_errors(scratch: Path, source: str,
                                                    ops: list[tuple]) -> None:  # type: ignore[type-arg]
    check(scratch, mutate(SOURCES[source], ops))


def test_unmutated_fixtures_pass_the_property(scratch: Path) -> None:
    for data in SOURCES.values():
        check(scratch, data)
