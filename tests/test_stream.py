"""How `encrypt` and `decrypt` write a model (protect/stream.py, issue 17): every job's bytes land
exactly where they belong, the whole blocks go straight to the disk past the page cache, and a
write that fails fails the command."""

from __future__ import annotations

import ctypes
import mmap
import os
import random
import subprocess
from pathlib import Path

import pytest
from clitools import assert_clean_error, bmcrypt

from bmcrypt.protect.stream import ALIGN, STAGE, Streamer

ROOT = Path(__file__).resolve().parent.parent
QWEN = ROOT / "tests" / "fixtures" / "qwen2_tiny_bf16_seq64_nokernel.bmodel"
MiB = 1 << 20


def _pieces(rng: random.Random, size: int) -> list[tuple[int, int]]:
    """`size` bytes cut into pieces: some smaller than a block, some of many buffers."""
    cuts, at = [], 0
    while at < size:
        n = min(size - at, rng.choice([1, 7, ALIGN - 1, ALIGN, ALIGN + 3, 100_000,
                                       STAGE - 5, STAGE + ALIGN, 3 * STAGE // 2]))
        cuts.append((at, n))
        at += n
    return cuts


def _stream(path: Path, expected: bytes, rng: random.Random, *, direct: bool,
            base: int = 0) -> None:
    """Write `expected` at `base` of `path` as jobs would: each job owns some pieces, not next
    to each other, and writes each in order, in writes of random sizes."""
    pieces = _pieces(rng, len(expected))
    rng.shuffle(pieces)
    owned: list[list[tuple[int, int]]] = [pieces[i::5] for i in range(5)]

    def job(mine: list[tuple[int, int]]):
        def run(s: Streamer) -> None:
            for at, n in mine:
                done = 0
                while done < n:
                    k = min(n - done, rng.choice([16, 4096, 1 << 20, 1 << 20 | 16]))
                    s.write(at + done, memoryview(expected)[at + done:at + done + k])
                    done += k
        return run

    with open(path, "w+b") as out:
        out.write(b"h" * base)
        Streamer(out, base, None, direct=direct).run([job(m) for m in owned])


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "page-cache"])
@pytest.mark.parametrize("base", [0, 8, ALIGN + 100])
def test_every_job_s_bytes_land_where_they_belong(tmp_path: Path, direct: bool, base: int):
    rng = random.Random(17 + base)
    expected = rng.randbytes(3 * STAGE + 12345)
    path = tmp_path / "out"
    _stream(path, expected, rng, direct=direct, base=base)
    data = path.read_bytes()
    assert data[:base] == b"h" * base
    assert data[base:] == expected


def _file_system(path: Path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def _resident(path: Path) -> float:
    """The share of the file's pages in the page cache (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY) as m:
        address = ctypes.addressof(ctypes.c_char.from_buffer(m))
        vec = (ctypes.c_ubyte * pages)()
        if libc.mincore(ctypes.c_void_p(address), ctypes.c_size_t(size), vec) != 0:
            pytest.skip(f"mincore: {os.strerror(ctypes.get_errno())}")
        del address
        return sum(v & 1 for v in vec) / pages


def test_a_model_written_to_disk_does_not_fill_the_page_cache(tmp_path: Path):
    if _file_system(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the test directory is in memory: its files are the page cache")
    try:  # where the file system refuses O_DIRECT the streamer writes through the cache
        os.close(os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600))
    except OSError:
        pytest.skip("the test directory's file system refuses O_DIRECT")
    rng = random.Random(3)
    expected = rng.randbytes(4 * STAGE)
    direct, cached = tmp_path / "direct", tmp_path / "cached"
    _stream(direct, expected, rng, direct=True)
    _stream(cached, expected, rng, direct=False)
    assert direct.read_bytes() == cached.read_bytes() == expected  # (reading caches them)
    _stream(direct, expected, rng, direct=True)
    _stream(cached, expected, rng, direct=False)
    assert _resident(cached) > 0.9  # the measure sees pages that are there
    assert _resident(direct) < 0.05  # only the partial blocks at the ends of runs


@pytest.fixture
def small_disk(tmp_path: Path):
    """A file system with 512 KiB free: a tmpfs mounted for the test (root only)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mount],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (not root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=True)


def test_a_disk_that_fills_up_fails_the_command_and_leaves_nothing(tmp_path: Path, small_disk):
    key = tmp_path / "key"
    assert bmcrypt("keygen", "-o", key).returncode == 0
    out = small_disk / "model.bmodel"
    done = bmcrypt("encrypt", "-k", key, "-o", out, QWEN)
    assert_clean_error(done, 1, "no space left on device")
    assert list(small_disk.iterdir()) == []
    sealed = tmp_path / "sealed.bmodel"
    assert bmcrypt("encrypt", "-k", key, "-o", sealed, QWEN).returncode == 0
    done = bmcrypt("decrypt", "-k", key, "-o", out, sealed)
    assert_clean_error(done, 1, "no space left on device")
    assert list(small_disk.iterdir()) == []
