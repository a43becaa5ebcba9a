"""Turning what ``lm_head`` wrote into the next token.

Which way depends on the build and the generation mode, decided once per answer:

=================  ==============================  ==========================================
lm_head returns    greedy                          penalty_sample
=================  ==============================  ==========================================
token id (top-1)   read 4 bytes                    impossible: ``UnsupportedGeneration``
logits             ``greedy_head`` on the device,  ``sample_head`` on the device, the host
                   else argmax on the host         draws; else everything on the host
=================  ==============================  ==========================================

The logits never leave the device when a head net exists: only a token id, or the top-k
probabilities and their ids, are read back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bmcrypt.chat.engine import LlmEngine
from bmcrypt.chat.llm_nets import LlmLayout
from bmcrypt.chat.sampling import GenerationConfig, candidates, draw, penalty_window
from bmcrypt.errors import UnsupportedGeneration
from bmcrypt.runtime import DeviceBuffer, DType, f32_from_bf16


def require_mode(layout: LlmLayout, mode: str, model: str = "model") -> None:
    """Refuse a generation mode this build cannot do (``UnsupportedGeneration``)."""
    if mode not in layout.sampling_modes:
        raise UnsupportedGeneration(
            f"{model} computes only the most likely token on the device (its lm_head fuses "
            f"the top-1), so {mode} is impossible with it; {mode} needs a build whose lm_head "
            "returns logits (llm_convert.py --do_sample)")


#: The sampling nets' inputs after (logits, input_ids), in order.
_SAMPLE_SETTINGS = {
    "sample_head": ("penalty", "temperature", "top_k", "top_p"),  # llm_convert --do_sample
    "penalty_sample_head": ("top_p", "temperature", "penalty"),  # share_cache_demo; top-k 50
}


class TokenPicker:
    """Picks tokens for one answer of ``engine`` according to ``config``."""

    def __init__(self, engine: LlmEngine, config: GenerationConfig, model: str = "model") -> None:
        layout = engine.layout
        require_mode(layout, config.mode, model)
        self.engine = engine
        self.config = config
        self.rng = config.rng()
        rt = engine.rt
        self._greedy_out: DeviceBuffer | None = None
        self._sample: tuple[list[DeviceBuffer], list[DeviceBuffer]] | None = None
        if config.mode == "greedy" and layout.greedy_head:
            self._greedy_out = engine.scratch("greedy_head:out", 4)
        elif config.mode == "penalty_sample" and layout.sample_head:
            net = layout.sample_net
            info = rt.net_info(net)
            ins = [engine.scratch(f"{net}:in{i}", max(t.nbytes(), t.max_bytes))
                   for i, t in enumerate(info.inputs[1:], 1)]
            outs = [engine.scratch(f"{net}:out{i}", max(t.nbytes(), t.max_bytes))
                    for i, t in enumerate(info.outputs)]
            self._sample = ins, outs
            # Settings fixed for the answer: upload once. The net always penalises the ids it
            # is given; with an empty window there are none to give, so neutralise the penalty
            # instead (as the host path does).
            penalty = config.repeat_penalty if config.repeat_last_n else 1.0
            settings = {"penalty": np.array([penalty], np.float32),
                        "temperature": np.array([config.temperature], np.float32),
                        "top_k": np.array([min(config.top_k, layout.sample_top_k_max)], np.int32),
                        "top_p": np.array([config.top_p], np.float32)}
            for buf, name in zip(ins[1:], _SAMPLE_SETTINGS[net], strict=True):
                buf.upload(settings[name])

    @property
    def where(self) -> str:
        """Where tokens are picked (stats): lm_head, greedy_head, the sampling net or host."""
        if self.engine.layout.head == "top1":
            return "lm_head"
        if self._greedy_out is not None:
            return "greedy_head"
        return self.engine.layout.sample_net if self._sample is not None else "host"

    def pick(self, history: Sequence[int]) -> int:
        """The next token, given everything fed so far (prompt and answer, for the penalty)."""
        engine, layout = self.engine, self.engine.layout
        if layout.head == "top1":
            return int(engine.head_output.download(np.int32, (1,))[0])
        if self.config.mode == "penalty_sample":
            return draw(*self.candidates(history), self.rng)
        if self._greedy_out is not None:
            engine.rt.launch_tensors("greedy_head", [engine.head_output], [self._greedy_out],
                                     input_shapes=[(1, layout.vocab_size or 0)])
            return int(self._greedy_out.download(np.int32, (1,))[0])
        return int(np.argmax(self.logits()))

    def candidates(self, history: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """penalty_sample's candidates for the latest position: (probabilities, token ids),
        from ``sample_head`` on the device if the build has it, else computed on the host."""
        if self._sample is None:
            return candidates(self.logits(), history, self.config)
        engine, layout = self.engine, self.engine.layout
        ins, outs = self._sample
        seq = layout.seq_len
        # As the vendor demos: the window first, the rest filled with the last token (the
        # net penalises every id it is given once, so repeats change nothing).
        window = penalty_window(history, self.config.repeat_last_n)
        ids = np.full(seq, history[-1], np.int32)
        ids[:len(window)] = window
        ins[0].upload(ids)
        top_k = min(self.config.top_k, layout.sample_top_k_max)
        settings = [(1,)] * len(_SAMPLE_SETTINGS[layout.sample_net])
        shapes = engine.rt.launch_tensors(
            layout.sample_net, [engine.head_output, *ins], outs,
            input_shapes=[(1, layout.vocab_size or 0), (1, seq), *settings])
        count = int(np.prod(shapes[0])) if shapes[0] else top_k
        return outs[0].download(np.float32, (count,)), outs[1].download(np.int32, (count,))

    def logits(self) -> np.ndarray:
        """lm_head's logits for the latest position, as float32 on the host."""
        layout = self.engine.layout
        dtype = layout.logits_dtype or DType.F32
        raw = self.engine.head_output.download(dtype.numpy, (layout.vocab_size or 0,))
        return f32_from_bf16(raw) if dtype == DType.BF16 else raw.astype(np.float32)
