"""Mixtral: Mistral's attention with a mixture of experts in every block (w1/w3/w2 per
expert, stacked per projection) and a router; llama.cpp runs it as a Llama with experts."""

from __future__ import annotations

import gguf

from models.errors import UnsupportedModel

from . import register
from .llama import Llama


@register
class Mixtral(Llama):
    hf_names = ("MixtralForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.LLAMA

    def check(self) -> None:
        super().check()
        if not self.n_experts:
            raise UnsupportedModel("config.json names no experts (num_local_experts)")

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        window = self.config.get("sliding_window")
        if isinstance(window, int):
            w.add_sliding_window(window)
        self.write_moe_hparams(w)
