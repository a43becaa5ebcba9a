"""What an LLM bmodel looks like to the chat pipeline, read from the runtime's net info.

tpu-mlir's ``llm_convert.py`` splits a decoder-only model into small nets (runtime-notes §3):

    embedding        input_ids [1,SEQ] i32          -> hidden [1,SEQ,H]
    embedding_cache  input_ids [1,1] i32            -> hidden [1,1,H]
    block_N          hidden, position_ids [1,SEQ], (attention_mask [1,1,SEQ,SEQ])
                                                    -> hidden, k [1,SEQ,KV,D], v
    block_cache_N    hidden [1,1,H], position_ids [1,1], attention_mask [1,1,1,SEQ+1],
                     history_k [1,SEQ,KV,D], history_v
                                                    -> hidden, k [1,1,KV,D], v
    lm_head          hidden [1,H] -> token id [1,1] i32 (fused top-1) or logits [1,VOCAB]
    greedy_head      logits -> token id                      (sampling builds only)
    sample_head      logits, input_ids, penalty, temperature, top_k, top_p
                                                    -> top-k probabilities, token ids

Nothing is hard-coded: the number of layers, the sequence length, the hidden size, the KV
shape and every dtype come from the loaded nets, and a file that does not fit the pattern is
refused with ``NotAnLlm`` before anything runs. ``--dynamic`` builds make ``block_N`` dynamic
(fed the real prompt length) and drop its mask input.

Share-cache builds (LLM-TPU's share_cache_demo; docs/chat.md) prefill a shared prefix of up to
S tokens once and each question of up to U tokens against it:

    embedding            input_ids [1,S]                -> hidden [1,S,H]
    block_N              hidden, position_ids, mask [1,1,S,S] -> hidden, k, v [1,S,KV,D]
    embedding_unshare    input_ids [1,U]                -> hidden [1,U,H]
    block_unshare_N      hidden [1,U,H], position_ids [1,U], mask [1,1,U,S+U],
                         history_k, history_v [1,S,KV,D] -> hidden, k, v [1,U,KV,D]
    block_cache_N        as above, history [1,SEQ,KV,D]
    lm_head              hidden [1,H] -> logits [1,VOCAB]
    greedy_head          logits -> token id
    penalty_sample_head  logits, input_ids [1,SEQ], top_p, temperature, penalty
                                                         -> top-50 probabilities, token ids
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

from bmcrypt.errors import NotAnLlm
from bmcrypt.runtime import DType, NetInfo, Runtime

HeadKind = Literal["top1", "logits"]

_BLOCK_CACHE = re.compile(r"block_cache_(\d+)")
_FLOAT_TYPES = (DType.F32, DType.F16, DType.BF16)


@dataclass(frozen=True)
class LlmLayout:
    """Sizes and net names of one LLM as loaded in one runtime."""

    layers: int
    seq_len: int
    hidden_size: int
    hidden_dtype: DType  # dtype of the hidden states between nets (bf16 or f16)
    kv_shape: tuple[int, ...]  # one layer's history_k / history_v: [1, SEQ, KV_HEADS, HEAD_DIM]
    kv_dtype: DType
    mask_dtype: DType
    dynamic_prefill: bool  # block_N is dynamic: fed the real prompt length, without a mask
    prefill_mask: bool  # block_N takes an attention mask
    head: HeadKind  # what lm_head returns
    vocab_size: int | None  # None for the fused top-1 head
    logits_dtype: DType | None
    greedy_head: bool
    sample_head: bool
    sample_top_k_max: int  # candidates sample_head returns at most (0 without it)
    #: the sampling net: "sample_head" (llm_convert: logits, ids, penalty, temperature, top_k,
    #: top_p) or "penalty_sample_head" (share_cache_demo: logits, ids, top_p, temperature,
    #: penalty; top-k fixed in the net); "" without one
    sample_net: str = ""
    share_len: int = 0  # S: the longest shared prefix (share-cache builds; 0 otherwise)
    unshare_len: int = 0  # U: the longest question against it

    @property
    def shares(self) -> bool:
        """A share-cache build: a prefix is prefilled once, questions against it."""
        return self.share_len > 0

    @property
    def hidden_bytes(self) -> int:
        """Bytes of one token's hidden state."""
        return self.hidden_size * self.hidden_dtype.itemsize

    @property
    def kv_row_bytes(self) -> int:
        """Bytes of one position of one layer's K (or V) history."""
        return math.prod(self.kv_shape[2:]) * self.kv_dtype.itemsize

    @property
    def kv_bytes(self) -> int:
        """Bytes of one layer's K (or V) history."""
        return self.seq_len * self.kv_row_bytes

    @property
    def sampling_modes(self) -> tuple[str, ...]:
        """Generation modes this build supports."""
        return ("greedy",) if self.head == "top1" else ("greedy", "penalty_sample")


def read_layout(rt: Runtime, model: str = "model") -> LlmLayout:
    """Describe the LLM loaded in ``rt``; ``NotAnLlm`` if its nets do not fit the layout."""
    names = set(rt.net_names())
    for needed in ("embedding", "embedding_cache", "lm_head"):
        if needed not in names:
            raise NotAnLlm(f"{model} has no net {needed!r}; it is not an LLM bmodel")
    layers = _count_layers(names, model)
    embed = rt.net_info("embedding")
    prefill_len, hidden, hidden_dtype = _embedding_shape(embed, model)

    cache = rt.net_info("block_cache_0")
    _expect(cache, 5, 3, model)
    kv = cache.inputs[3]
    if len(kv.shapes[0]) < 3:
        raise NotAnLlm(f"{model}: block_cache_0 history {kv.shapes[0]} is not [1,SEQ,KV,D]")
    seq_len = kv.shapes[0][1]
    share = _share_lengths(rt, names, layers, prefill_len, seq_len, model)
    if not share and prefill_len != seq_len:
        raise NotAnLlm(f"{model}: block_cache_0 history {kv.shapes[0]} does not hold "
                       f"{prefill_len} positions")
    mask = cache.inputs[2]
    if mask.shapes[0][-1] != seq_len + 1:
        raise NotAnLlm(f"{model}: block_cache_0 mask {mask.shapes[0]} is not SEQ+1 wide")

    block = rt.net_info("block_0")
    if len(block.inputs) not in (2, 3) or len(block.outputs) != 3:
        raise NotAnLlm(f"{model}: block_0 has {len(block.inputs)} inputs and "
                       f"{len(block.outputs)} outputs (expected 2-3 and 3)")
    for layer in range(1, layers):  # every layer must look like layer 0
        _same_io(rt.net_info(f"block_{layer}"), block, model)
        _same_io(rt.net_info(f"block_cache_{layer}"), cache, model)

    head, vocab, logits_dtype = _lm_head(rt.net_info("lm_head"), model)
    top_k_max, sample_net = 0, ""
    for candidate in ("sample_head", "penalty_sample_head"):
        if candidate in names and head == "logits":
            sample_net = candidate
            top_k_max = rt.net_info(candidate).outputs[0].shapes[0][-1]
    return LlmLayout(
        layers=layers, seq_len=seq_len, hidden_size=hidden, hidden_dtype=hidden_dtype,
        kv_shape=kv.shapes[0], kv_dtype=kv.dtype, mask_dtype=mask.dtype,
        dynamic_prefill=block.dynamic, prefill_mask=len(block.inputs) == 3,
        head=head, vocab_size=vocab, logits_dtype=logits_dtype,
        greedy_head="greedy_head" in names and head == "logits",
        sample_head=top_k_max > 0, sample_top_k_max=top_k_max, sample_net=sample_net,
        share_len=share[0] if share else 0, unshare_len=share[1] if share else 0,
    )


def _share_lengths(rt: Runtime, names: set[str], layers: int, share_len: int, seq_len: int,
                   model: str) -> tuple[int, int] | None:
    """(S, U) of a share-cache build, None for a standard one; NotAnLlm for half of one."""
    if "embedding_unshare" not in names:
        return None
    missing = [f"block_unshare_{i}" for i in range(layers) if f"block_unshare_{i}" not in names]
    if missing:
        raise NotAnLlm(f"{model} lacks the unshare nets {', '.join(missing)}")
    embed = rt.net_info("embedding_unshare")
    unshare_len = _embedding_shape(embed, model)[0]
    first = rt.net_info("block_unshare_0")
    _expect(first, 5, 3, model)
    history = first.inputs[3].shapes[0]
    mask = first.inputs[2].shapes[0]
    if len(history) < 2 or history[1] != share_len or mask[-1] != share_len + unshare_len:
        raise NotAnLlm(f"{model}: block_unshare_0 takes history {history} and mask {mask}, "
                       f"expected [1,{share_len},…] and […,{share_len + unshare_len}]")
    if share_len + unshare_len > seq_len:
        raise NotAnLlm(f"{model}: share {share_len} + unshare {unshare_len} exceed the "
                       f"decode history of {seq_len}")
    for layer in range(1, layers):
        _same_io(rt.net_info(f"block_unshare_{layer}"), first, model)
    return share_len, unshare_len


def _count_layers(names: set[str], model: str) -> int:
    indices = sorted(int(m.group(1)) for n in names if (m := _BLOCK_CACHE.fullmatch(n)))
    if not indices:
        raise NotAnLlm(f"{model} has no block_cache_N nets; it is not an LLM bmodel")
    if indices != list(range(len(indices))):
        raise NotAnLlm(f"{model}: block_cache nets are not numbered 0..N-1 ({indices})")
    missing = [f"block_{i}" for i in indices if f"block_{i}" not in names]
    if missing:
        raise NotAnLlm(f"{model} lacks the prefill nets {', '.join(missing)}")
    return len(indices)


def _embedding_shape(embed: NetInfo, model: str) -> tuple[int, int, DType]:
    _expect(embed, 1, 1, model)
    ids, out = embed.inputs[0], embed.outputs[0]
    if ids.dtype != DType.I32 or len(ids.shapes[0]) != 2 or len(out.shapes[0]) != 3:
        raise NotAnLlm(f"{model}: embedding takes {ids.shapes[0]} {ids.dtype.name}, "
                       "expected input_ids [1,SEQ] int32")
    if out.dtype not in _FLOAT_TYPES:
        raise NotAnLlm(f"{model}: embedding returns {out.dtype.name}, expected a float type")
    return ids.shapes[0][1], out.shapes[0][2], out.dtype


def _lm_head(info: NetInfo, model: str) -> tuple[HeadKind, int | None, DType | None]:
    _expect(info, 1, 1, model)
    out = info.outputs[0]
    if out.dtype == DType.I32:
        return "top1", None, None
    if out.dtype in _FLOAT_TYPES:
        return "logits", out.shapes[0][-1], out.dtype
    raise NotAnLlm(f"{model}: lm_head returns {out.dtype.name}, neither a token id nor logits")


def _expect(info: NetInfo, n_in: int, n_out: int, model: str) -> None:
    if len(info.inputs) != n_in or len(info.outputs) != n_out:
        raise NotAnLlm(f"{model}: net {info.name!r} has {len(info.inputs)} inputs and "
                       f"{len(info.outputs)} outputs, expected {n_in} and {n_out}")


def _same_io(info: NetInfo, first: NetInfo, model: str) -> None:
    def sig(n: NetInfo) -> tuple[object, ...]:
        return (tuple((t.dtype, t.shapes) for t in n.inputs),
                tuple((t.dtype, t.shapes) for t in n.outputs))

    if sig(info) != sig(first):
        raise NotAnLlm(f"{model}: net {info.name!r} differs in shape from {first.name!r}")
