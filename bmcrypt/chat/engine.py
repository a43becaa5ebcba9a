"""The device side of one LLM: prefill and decode steps on device buffers.

Every tensor that flows between nets stays in device memory: the embedding writes the hidden
states, each block reads them and writes the next ones (two buffers, ping-pong), ``lm_head``
reads the last position's row in place (a view, no copy). The host only uploads what it
decides (token ids, positions, masks: a few bytes per step, the prefill mask once per prompt)
and reads back what ``lm_head`` produced (see ``heads.py``).

Conventions that reproduce the reference tokens (runtime-notes §3): additive masks of −10000
in the mask's dtype; prefill positions ``0..n-1`` with mask row ``i`` open on ``0..i``; decode
at position ``cur`` feeds ``position_ids=[[cur]]`` and a mask of SEQ+1 values, open on history
``[0, cur)`` and on the last slot (the new token itself), closed on ``[cur, SEQ)``; the new k/v
row then goes into the history at ``cur``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bmcrypt.chat.kvcache import KVCache
from bmcrypt.chat.layout import LlmLayout
from bmcrypt.runtime import DeviceBuffer, DType, Runtime, bf16_from_f32

MASKED = -10000.0


def encode_floats(values: np.ndarray, dtype: DType) -> np.ndarray:
    """float32 values in the host representation of ``dtype`` (bf16 as uint16 bit patterns)."""
    values = np.asarray(values, dtype=np.float32)
    if dtype == DType.BF16:
        return bf16_from_f32(values)
    return values.astype(dtype.numpy)


class LlmEngine:
    """Runs the nets of one loaded LLM; owns its device buffers and its KV cache."""

    def __init__(self, rt: Runtime, layout: LlmLayout) -> None:
        self.rt = rt
        self.layout = layout
        seq, lay = layout.seq_len, layout
        self._embed_dynamic = rt.net_info("embedding").dynamic
        self._buffers: list[DeviceBuffer] = []
        self._scratch: dict[str, DeviceBuffer] = {}
        self.ids = self._alloc(seq * 4)
        self.token = self._alloc(4)
        self.positions = self._alloc(seq * 4)
        self.hidden = (self._alloc(seq * lay.hidden_bytes), self._alloc(seq * lay.hidden_bytes))
        self.prefill_mask = (self._alloc(seq * seq * lay.mask_dtype.itemsize)
                             if lay.prefill_mask else None)
        self.decode_mask = self._alloc((seq + 1) * lay.mask_dtype.itemsize)
        cache_out = rt.net_info("block_cache_0").outputs
        self.k_row = self._alloc(cache_out[1].nbytes())
        self.v_row = self._alloc(cache_out[2].nbytes())
        lm_out = rt.net_info("lm_head").outputs[0]
        #: What lm_head wrote for the latest position: a token id or the logits.
        self.head_output = self._alloc(max(lm_out.nbytes(), lm_out.max_bytes))
        self.cache = KVCache(rt, layout)
        self._closed_row = encode_floats(np.array([MASKED]), lay.mask_dtype)[0]
        self._open_row = encode_floats(np.array([0.0]), lay.mask_dtype)[0]

    @property
    def device_bytes(self) -> int:
        """Device memory this engine allocated (buffers and KV cache)."""
        return sum(b.size for b in self._buffers) + self.cache.nbytes

    # ------------------------------------------------------------------ steps

    def prefill(self, ids: Sequence[int]) -> None:
        """Run the whole prompt; afterwards ``head_output`` holds the head's answer for it."""
        seq, n = self.layout.seq_len, len(ids)
        if not 0 < n <= seq:
            raise ValueError(f"a prompt of {n} tokens does not fit a sequence of {seq}")
        padded = np.zeros(seq, np.int32)
        padded[:n] = ids
        self.ids.upload(padded)
        embed_len = n if self._embed_dynamic else seq
        self.rt.launch_tensors("embedding", [self.ids], [self.hidden[0]],
                               input_shapes=[(1, embed_len)])
        self.positions.upload(np.arange(seq, dtype=np.int32) * (np.arange(seq) < n))
        run_len = n if self.layout.dynamic_prefill else seq
        if self.prefill_mask is not None:
            self.prefill_mask.upload(self._prefill_mask(n, run_len))
        current = 0
        for layer in range(self.layout.layers):
            inputs = [self.hidden[current], self.positions]
            shapes: list[tuple[int, ...]] = [(1, run_len, self.layout.hidden_size), (1, run_len)]
            if self.prefill_mask is not None:
                inputs.append(self.prefill_mask)
                shapes.append((1, 1, run_len, run_len))
            # K/V go straight into the cache: block_N's k/v outputs have the history's layout.
            outputs = [self.hidden[1 - current], self.cache.keys[layer], self.cache.values[layer]]
            self.rt.launch_tensors(f"block_{layer}", inputs, outputs, input_shapes=shapes)
            current = 1 - current
        row = self.layout.hidden_bytes
        last = self.hidden[current].view((n - 1) * row, row)
        self.rt.launch_tensors("lm_head", [last], [self.head_output])

    def decode(self, token: int, position: int) -> None:
        """Feed ``token`` at ``position``; afterwards ``head_output`` holds the next answer."""
        seq = self.layout.seq_len
        if not 0 < position < seq:
            raise ValueError(f"position {position} is outside 1..{seq - 1}")
        self.token.upload(np.array([token], np.int32))
        row = self.layout.hidden_bytes
        x = (self.hidden[0].view(0, row), self.hidden[1].view(0, row))
        self.rt.launch_tensors("embedding_cache", [self.token], [x[0]])
        pos = self.positions.view(0, 4)
        pos.upload(np.array([position], np.int32))
        mask = np.full(seq + 1, self._closed_row)
        mask[:position] = self._open_row
        mask[seq] = self._open_row
        self.decode_mask.upload(mask)
        current = 0
        for layer in range(self.layout.layers):
            self.rt.launch_tensors(
                f"block_cache_{layer}",
                [x[current], pos, self.decode_mask, self.cache.keys[layer],
                 self.cache.values[layer]],
                [x[1 - current], self.k_row, self.v_row])
            self.cache.store(layer, self.k_row, self.v_row, position)
            current = 1 - current
        self.rt.launch_tensors("lm_head", [x[current]], [self.head_output])

    def free(self) -> None:
        """Give back the device memory (``Runtime.close`` does it too)."""
        for buf in self._buffers:
            buf.free()
        self.cache.free()

    def scratch(self, key: str, nbytes: int) -> DeviceBuffer:
        """A device buffer kept for reuse under ``key`` (allocated on first use)."""
        buf = self._scratch.get(key)
        if buf is None or buf.size < nbytes:
            buf = self._scratch[key] = self._alloc(nbytes)
        return buf

    # ------------------------------------------------------------------ helpers

    def _alloc(self, nbytes: int) -> DeviceBuffer:
        buf = self.rt.alloc(max(nbytes, 4))
        self._buffers.append(buf)
        return buf

    def _prefill_mask(self, n: int, size: int) -> np.ndarray:
        # Static builds: SEQ x SEQ, rows past the prompt all closed (their outputs are unused).
        mask = np.full((size, size), self._closed_row)
        causal = np.tril(np.ones((n, n), dtype=bool))
        mask[:n, :n] = np.where(causal, self._open_row, self._closed_row)
        return mask
