"""Qwen3-MoE: Qwen3's attention (q/k RMS norms, NEOX rope) with every block's MLP a
mixture of experts: a router (ffn_gate_inp) and the experts stacked per projection."""

from __future__ import annotations

from typing import ClassVar

import gguf

from models.errors import UnsupportedModel

from . import register
from .base import Architecture


@register
class Qwen3Moe(Architecture):
    hf_names = ("Qwen3MoeForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN3MOE
    # llama.cpp re-normalizes the chosen experts' weights for qwen3moe, never for qwen2moe
    normalizes_top_k: ClassVar[bool] = True

    def check(self) -> None:
        super().check()
        if self.get("mlp_only_layers") or int(self.get("decoder_sparse_step", 1)) != 1:
            raise UnsupportedModel(
                "this Qwen3-MoE model mixes dense and expert layers, which llama.cpp's "
                "qwen3moe does not represent"
            )
        if not self.n_experts:
            raise UnsupportedModel("config.json names no experts (num_experts)")
        if bool(self.get("norm_topk_prob", False)) != self.normalizes_top_k:
            raise UnsupportedModel(
                f"this model {'does not re-normalize' if self.normalizes_top_k else 're-normalizes'}"
                f" its chosen experts' weights (norm_topk_prob), which llama.cpp's "
                f"{self.arch_name} does; the converted model would compute differently"
            )

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        self.write_moe_hparams(w)
