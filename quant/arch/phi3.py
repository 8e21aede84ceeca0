"""Phi-3: fused q/k/v and fused gate/up projections (llama.cpp splits them itself),
partial rotary dimensions, NEOX rope."""

from __future__ import annotations

import gguf

from . import register
from .base import Architecture


@register
class Phi3(Architecture):
    hf_names = ("Phi3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.PHI3

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        window = self.config.get("sliding_window")
        if isinstance(window, int):
            w.add_sliding_window(window)
