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

Share-cache builds (``LlmLayout.shares``) add two steps. ``share_prefill`` runs a prefix of
n <= S tokens through ``embedding``/``block_N`` once; its k/v fill cache rows ``[0, n)``.
``unshare_prefill`` runs a question of u <= U tokens through ``embedding_unshare``/
``block_unshare_N``: positions ``n..n+u-1``, history = cache rows ``[0, S)``, mask row ``i``
open on the prefix's real columns ``[0, n)`` and causally on the question's ``[S, S+i]``; its
k/v go to cache rows ``[n, n+u)``, so the cache stays compact and decoding goes on at
``n+u`` exactly as after a normal prefill. Each question overwrites what the previous one left
after the prefix: the prefix's rows are computed once and stay valid.
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

    def __init__(self, rt: Runtime, layout: LlmLayout, *,
                 cache_owner: Runtime | None = None) -> None:
        """``cache_owner``: allocate the KV cache there instead of on ``rt`` (so that it can
        outlive ``rt``: a model switch in ``"active"`` residency)."""
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
        self.cache = KVCache(cache_owner or rt, layout)
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
        hidden = self._prompt_blocks(ids, self.layout.seq_len)
        row = self.layout.hidden_bytes
        lm_in = self.io("lm_head")[0][0]
        lm_in.copy_from(hidden, size=row, src_offset=(len(ids) - 1) * row)
        self._run("lm_head")

    def share_prefill(self, ids: Sequence[int]) -> None:
        """Share-cache builds: the prefix's k/v into cache rows ``[0, len(ids))``, once."""
        self._prompt_blocks(ids, self.layout.share_len)

    def unshare_prefill(self, ids: Sequence[int], shared: int) -> None:
        """Share-cache builds: a question after the ``shared`` prefix tokens already in the
        cache; afterwards ``head_output`` holds the head's answer for it."""
        lay = self.layout
        share, unshare, u, row = lay.share_len, lay.unshare_len, len(ids), lay.hidden_bytes
        if not 0 < u <= unshare or not 0 <= shared <= share:
            raise ValueError(f"a question of {u} tokens after {shared} does not fit "
                             f"{unshare} after {share}")
        padded = np.zeros(unshare, np.int32)
        padded[:u] = ids
        e_in, e_out = self.io("embedding_unshare")
        e_in[0].upload(padded)
        self._run("embedding_unshare")
        positions = np.where(np.arange(unshare) < u, shared + np.arange(unshare), 0)
        mask = np.full((unshare, share + unshare), self._closed)
        mask[:u, :shared] = self._open
        mask[:u, share:share + u] = np.where(np.tril(np.ones((u, u), dtype=bool)), self._open,
                                             self._closed)
        history = share * lay.kv_row_bytes
        hidden = e_out[0]
        for layer in range(lay.layers):
            net = f"block_unshare_{layer}"
            ins, outs = self.io(net)
            ins[0].copy_from(hidden, size=unshare * row)
            ins[1].upload(positions.astype(np.int32))
            ins[2].upload(mask)
            ins[3].copy_from(self.cache.keys[layer], size=history)
            ins[4].copy_from(self.cache.values[layer], size=history)
            self._run(net)
            kv, at = u * lay.kv_row_bytes, shared * lay.kv_row_bytes
            self.cache.keys[layer].copy_from(outs[1], size=kv, dst_offset=at)
            self.cache.values[layer].copy_from(outs[2], size=kv, dst_offset=at)
            hidden = outs[0]
        lm_in = self.io("lm_head")[0][0]
        lm_in.copy_from(hidden, size=row, src_offset=(u - 1) * row)
        self._run("lm_head")

    def _prompt_blocks(self, ids: Sequence[int], capacity: int) -> DeviceBuffer:
        """``embedding`` and ``block_N`` over a prompt padded to ``capacity``; k/v into the
        cache from row 0; returns the last block's hidden states."""
        lay = self.layout
        seq, n, row = capacity, len(ids), lay.hidden_bytes
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
        return hidden

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

    def free(self, *, keep_cache: bool = False) -> None:
        """Give back the device memory (``Runtime.close`` does it too); ``keep_cache`` leaves
        the KV cache to the caller."""
        for buf in self._buffers:
            buf.free()
        if not keep_cache:
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
