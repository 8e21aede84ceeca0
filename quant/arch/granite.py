"""IBM Granite (3.x dense): Llama's layout with four multipliers llama.cpp applies itself:
on the embeddings, on each residual branch, on the attention scores, and on the logits."""

from __future__ import annotations

import gguf

from . import register
from .llama import Llama


@register
class Granite(Llama):
    hf_names = ("GraniteForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GRANITE

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        w.add_embedding_scale(float(self.get("embedding_multiplier", 1.0)))
        w.add_residual_scale(float(self.get("residual_multiplier", 1.0)))
        w.add_attention_scale(float(self.get("attention_multiplier", self.head_dim**-0.5)))
        w.add_logit_scale(float(self.get("logits_scaling", 1.0)))
