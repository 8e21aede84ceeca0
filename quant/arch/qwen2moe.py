"""Qwen2-MoE (Qwen1.5-MoE, Qwen2-57B-A14B): Qwen2's attention (q/k/v biases) with experts,
a router and one shared expert beside them, itself gated by a one-output projection."""

from __future__ import annotations

import gguf

from . import register
from .qwen3moe import Qwen3Moe


@register
class Qwen2Moe(Qwen3Moe):
    hf_names = ("Qwen2MoeForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN2MOE
    normalizes_top_k = False

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        shared = self.config.get("shared_expert_intermediate_size")
        if shared:
            w.add_expert_shared_feed_forward_length(int(shared))
