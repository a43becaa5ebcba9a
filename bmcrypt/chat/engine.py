"""The device side of one LLM: prefill and decode steps on device memory.

Every tensor that flows between nets stays on the device. As in the vendor's chat demos, each
net runs on the io memory the runtime keeps for it (``Runtime.io_buffers``): a "basic" net
(addr_mode 0) given any other buffer makes the runtime copy its inputs in and its outputs out,
which costs a device-to-device copy per tensor per launch. "io alone" nets (``block_cache_N``,
the sampling heads) take any device buffer as it is, so they read the previous net's output
where it lies and write straight into the next net's input. The host only uploads what it
decides (token ids, positions, masks: a few bytes per step; the prefill mask once per prompt)
and reads back what the head produced (see ``heads.py``).

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
from bmcrypt.chat.llm_nets import LlmLayout
from bmcrypt.runtime import DeviceBuffer, DType, Runtime, bf16_from_f32

MASKED = -10000.0


def encode_floats(values: np.ndarray, dtype: DType) -> np.ndarray:
    """float32 values in the host representation of ``dtype`` (bf16 as uint16 bit patterns)."""
    values = np.asarray(values, dtype=np.float32)
    if dtype == DType.BF16:
        return bf16_from_f32(values)
    return values.astype(dtype.numpy)


class LlmEngine:
    """Runs the nets of one loaded LLM; owns a few device buffers and the KV cache."""

    def __init__(self, rt: Runtime, layout: LlmLayout) -> None:
        self.rt = rt
        self.layout = layout
        self._buffers: list[DeviceBuffer] = []
        self._scratch: dict[str, DeviceBuffer] = {}
        self._io: dict[str, tuple[list[DeviceBuffer], list[DeviceBuffer]]] = {}
        self._embed_dynamic = rt.net_info("embedding").dynamic
        seq, row = layout.seq_len, layout.hidden_bytes
        # Decode-side buffers of our own: the io-alone block_cache nets take them as they are.
        self.x = (self._alloc(row), self._alloc(row))
        self.position = self._alloc(4)
        self.decode_mask = self._alloc((seq + 1) * layout.mask_dtype.itemsize)
        cache_out = rt.net_info("block_cache_0").outputs
        self.k_row = self._alloc(cache_out[1].nbytes())
        self.v_row = self._alloc(cache_out[2].nbytes())
        self.cache = KVCache(rt, layout)
        #: What lm_head wrote for the latest position: a token id or the logits.
        self.head_output = self.io("lm_head")[1][0]
        self._closed = encode_floats(np.array([MASKED]), layout.mask_dtype)[0]
        self._open = encode_floats(np.array([0.0]), layout.mask_dtype)[0]

    @property
    def device_bytes(self) -> int:
        """Device memory this engine allocated (its buffers and the KV cache)."""
        return sum(b.size for b in self._buffers) + self.cache.nbytes

    def io(self, net: str) -> tuple[list[DeviceBuffer], list[DeviceBuffer]]:
        """The runtime's own input and output memory of ``net`` (views, looked up once)."""
        if net not in self._io:
            self._io[net] = self.rt.io_buffers(net)
        return self._io[net]

    # ------------------------------------------------------------------ steps

    def prefill(self, ids: Sequence[int]) -> None:
        """Run the whole prompt; afterwards ``head_output`` holds the head's answer for it."""
        lay = self.layout
        seq, n, row = lay.seq_len, len(ids), lay.hidden_bytes
        if not 0 < n <= seq:
            raise ValueError(f"a prompt of {n} tokens does not fit a sequence of {seq}")
        padded = np.zeros(seq, np.int32)
        padded[:n] = ids
        embed_len = n if self._embed_dynamic else seq
        e_in, e_out = self.io("embedding")
        e_in[0].upload(padded[:embed_len])
        self._run("embedding", input_shapes=[(1, embed_len)])
        run_len = n if lay.dynamic_prefill else seq
        positions = np.where(np.arange(run_len) < n, np.arange(run_len), 0).astype(np.int32)
        mask = self._prefill_mask(n, run_len) if lay.prefill_mask else None
        hidden = e_out[0]
        for layer in range(lay.layers):
            net = f"block_{layer}"
            ins, outs = self.io(net)
            ins[0].copy_from(hidden, size=run_len * row)
            ins[1].upload(positions)
            shapes: list[tuple[int, ...]] = [(1, run_len, lay.hidden_size), (1, run_len)]
            if mask is not None:
                ins[2].upload(mask)
                shapes.append((1, 1, run_len, run_len))
            self._run(net, input_shapes=shapes)
            # k/v come out in the history's own layout: copy the prompt's rows into the cache.
            kv = run_len * lay.kv_row_bytes
            self.cache.keys[layer].copy_from(outs[1], size=kv)
            self.cache.values[layer].copy_from(outs[2], size=kv)
            hidden = outs[0]
        lm_in = self.io("lm_head")[0][0]
        lm_in.copy_from(hidden, size=row, src_offset=(n - 1) * row)
        self._run("lm_head")

    def decode(self, token: int, position: int) -> None:
        """Feed ``token`` at ``position``; afterwards ``head_output`` holds the next answer."""
        lay = self.layout
        seq = lay.seq_len
        if not 0 < position < seq:
            raise ValueError(f"position {position} is outside 1..{seq - 1}")
        e_in, e_out = self.io("embedding_cache")
        e_in[0].upload(np.array([token], np.int32))
        self._run("embedding_cache")
        # Into our own buffer first: a basic net's output may sit in memory the next net
        # computes in (the vendor demos copy here too).
        self.x[0].copy_from(e_out[0], size=lay.hidden_bytes)
        self.position.upload(np.array([position], np.int32))
        mask = np.full(seq + 1, self._closed)
        mask[:position] = self._open
        mask[seq] = self._open
        self.decode_mask.upload(mask)
        lm_in = self.io("lm_head")[0][0]
        current = 0
        for layer in range(lay.layers):
            last = layer == lay.layers - 1
            out = lm_in if last else self.x[1 - current]  # the last block feeds lm_head directly
            self.rt.launch_tensors(
                f"block_cache_{layer}",
                [self.x[current], self.position, self.decode_mask, self.cache.keys[layer],
                 self.cache.values[layer]],
                [out, self.k_row, self.v_row])
            self.cache.store(layer, self.k_row, self.v_row, position)
            current = 1 - current
        self._run("lm_head")

    def scratch(self, key: str, nbytes: int) -> DeviceBuffer:
        """A device buffer kept for reuse under ``key`` (allocated on first use)."""
        buf = self._scratch.get(key)
        if buf is None or buf.size < nbytes:
            buf = self._scratch[key] = self._alloc(nbytes)
        return buf

    def free(self) -> None:
        """Give back the device memory (``Runtime.close`` does it too)."""
        for buf in self._buffers:
            buf.free()
        self.cache.free()

    # ------------------------------------------------------------------ helpers

    def _run(self, net: str, input_shapes: list[tuple[int, ...]] | None = None) -> None:
        ins, outs = self.io(net)
        self.rt.launch_tensors(net, ins, outs, input_shapes=input_shapes)

    def _alloc(self, nbytes: int) -> DeviceBuffer:
        buf = self.rt.alloc(max(nbytes, 4))
        self._buffers.append(buf)
        return buf

    def _prefill_mask(self, n: int, size: int) -> np.ndarray:
        # Static builds: SEQ x SEQ, rows past the prompt all closed (their outputs are unused).
        mask = np.full((size, size), self._closed)
        causal = np.tril(np.ones((n, n), dtype=bool))
        mask[:n, :n] = np.where(causal, self._open, self._closed)
        return mask
