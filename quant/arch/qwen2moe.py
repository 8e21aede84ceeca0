"""Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): Qwen2's attention (q/k/v biases) with experts,
a router and one shared expert beside them, itself gated by a one-output projection."""

from __future__ import annotations

import gguf
import numpy as np

from . import register
from .qwen3moe import Qwen3Moe


@register
class Qwen2Moe(Qwen3Moe):
    hf_names = ("Qwen2MoeForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN2MOE
    normalizes_top_k = False

    def derived(self, hf_name: str, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
        # the shared expert's gate is one output: llama.cpp holds it as a vector
        if hf_name.endswith("mlp.shared_expert_gate.weight") and len(shape) == 2:
            name = self.gguf_name(hf_name)
            return [(name, (shape[0] * shape[1],))] if name else []
        return []

    def changes(self, gguf_name: str) -> bool:
        return gguf_name.endswith("ffn_gate_inp_shexp.weight")

    def transform(self, gguf_name: str, array: np.ndarray) -> np.ndarray:
        return array.reshape(-1) if self.changes(gguf_name) else array

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        shared = self.config.get("shared_expert_intermediate_size")
        if shared:
            w.add_expert_shared_feed_forward_length(int(shared))
