"""Baseline: what a user would write without bmcrypt — straight single-shot AES-256-GCM over
each weight region with pycryptodome, in Python.

    python bench/pycryptodome_baseline.py IN OUT

Reads each weight region whole, `encrypt_and_digest`s it, writes the ciphertext in its place
(same length) and the nonces and tags at the end; header and FlatBuffer are copied unchanged
(not protected, not rewritten). The output is fsynced, as `cp` + `sync` and bmcrypt do. It is
a speed baseline, not a format: nothing reads these files back.
"""

from __future__ import annotations

import os
import sys

from Crypto.Cipher import AES

from bmcrypt.bmodel.reader import read_raw
from bmcrypt.protect.region_plan import coeff_mems

KEY = bytes(range(32))
COPY = 8 << 20


def copy_range(src, dst, n: int) -> None:  # type: ignore[no-untyped-def]
    while n > 0:
        chunk = src.read(min(COPY, n))
        dst.write(chunk)
        n -= len(chunk)


def main(src_path: str, dst_path: str) -> None:
    raw = read_raw(src_path)
    regions = sorted({(cm.binaryCoeff.start, cm.binaryCoeff.size)
                      for _, _, cm in coeff_mems(raw.unpack()) if cm.binaryCoeff.size})
    base = raw.header.binary_offset
    trailer = []
    with open(src_path, "rb") as src, open(dst_path, "wb") as dst:
        copy_range(src, dst, base)
        pos = 0
        for start, size in regions:
            copy_range(src, dst, start - pos)
            data = src.read(size)
            nonce = os.urandom(12)
            ciphertext, tag = AES.new(KEY, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(data)
            dst.write(ciphertext)
            trailer.append(nonce + tag)
            pos = start + size
        copy_range(src, dst, raw.file_size - base - pos)
        dst.write(b"".join(trailer))
        dst.flush()
        os.fsync(dst.fileno())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
