"""Gemma 3 (text): Gemma 2's norms plus (1 + w) RMS norms on q and k, a local rope base for
the sliding-window layers, and linear rope scaling on the global ones."""

from __future__ import annotations

import gguf

from . import register
from .gemma2 import Gemma2


@register
class Gemma3(Gemma2):
    hf_names = ("Gemma3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GEMMA3

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        local = self.config.get("rope_local_base_freq")
        if local is None:
            local = self.rope_parameters("sliding_attention").get("rope_theta")
        if local is not None:
            w.add_rope_freq_base_swa(float(local))
