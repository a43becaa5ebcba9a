"""The KV cache: one K and one V history per layer, in device memory.

Real chat runtimes never move the cache through host memory. ``block_cache_N`` is an "io alone"
net (addr_mode 1): its history inputs are plain device buffers that we pass by address.
Prefill (``block_N``) writes its k/v outputs straight into these buffers, and every decode step
appends the new token's k/v row at its position with one device-to-device copy of just that
row (``bm_memcpy_d2d_byte``), as the vendor's demos do.

Layout of one history: ``[1, SEQ, KV_HEADS, HEAD_DIM]``, so position ``p`` is the byte range
``[p * row, (p + 1) * row)`` with ``row = KV_HEADS * HEAD_DIM * itemsize``. Positions past the
current length hold stale rows; the attention mask hides them.
"""

from __future__ import annotations

from bmcrypt.chat.llm_nets import LlmLayout
from bmcrypt.runtime import DeviceBuffer, Runtime


class KVCache:
    """``layers`` pairs of device buffers, each ``seq_len`` rows long."""

    def __init__(self, rt: Runtime, layout: LlmLayout) -> None:
        self.layout = layout
        self.keys: list[DeviceBuffer] = []
        self.values: list[DeviceBuffer] = []
        for _ in range(layout.layers):
            for side in (self.keys, self.values):
                buf = rt.alloc(layout.kv_bytes)
                # Zeros, not whatever the allocator hands out: masked positions still enter the
                # attention product (weighted ~0), and stale NaN/inf bit patterns would not vanish.
                buf.fill(0)
                side.append(buf)

    @property
    def nbytes(self) -> int:
        """Device memory held by the cache."""
        return 2 * self.layout.layers * self.layout.kv_bytes

    def store(self, layer: int, k_row: DeviceBuffer, v_row: DeviceBuffer, position: int) -> None:
        """Copy one new k/v row (device memory) into ``layer``'s history at ``position``."""
        if not 0 <= position < self.layout.seq_len:
            raise ValueError(f"position {position} is outside the cache "
                             f"(0..{self.layout.seq_len - 1})")
        row = self.layout.kv_row_bytes
        self.keys[layer].copy_from(k_row, size=row, dst_offset=position * row)
        self.values[layer].copy_from(v_row, size=row, dst_offset=position * row)

    def free(self) -> None:
        """Give the device memory back (also done by ``Runtime.close``)."""
        for buf in self.keys + self.values:
            buf.free()
