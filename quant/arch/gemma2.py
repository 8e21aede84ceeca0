"""Gemma 2: (1 + w) RMS norms, four norms per block, soft-capped logits, alternating
sliding-window attention. Embeddings are always tied."""

from __future__ import annotations

import gguf
import numpy as np

from . import register
from .base import Architecture


@register
class Gemma2(Architecture):
    hf_names = ("Gemma2ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GEMMA2

    @property
    def tied(self) -> bool:
        return True

    def needs_float(self, gguf_name: str) -> bool:
        return gguf_name.endswith("norm.weight")

    def changes(self, gguf_name: str) -> bool:
        return gguf_name.endswith("norm.weight")

    def transform(self, gguf_name: str, array: np.ndarray) -> np.ndarray:
        # HF Gemma computes x * (1 + w); llama.cpp multiplies by the stored weight.
        if gguf_name.endswith("norm.weight"):
            return array + np.float32(1.0)
        return array

    def layer_is_swa(self) -> list[bool] | None:
        types = self.config.get("layer_types")
        if isinstance(types, list) and len(types) == self.n_layers:
            return [t == "sliding_attention" for t in types]
        return None

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        for key, add in (
            ("attn_logit_softcapping", w.add_attn_logit_softcapping),
            ("final_logit_softcapping", w.add_final_logit_softcapping),
        ):
            if self.config.get(key) is not None:
                add(float(self.config[key]))
        if self.config.get("sliding_window") is not None:
            w.add_sliding_window(int(self.config["sliding_window"]))
        pattern = self.layer_is_swa()
        if pattern is not None:
            w.add_sliding_window_pattern(pattern)
