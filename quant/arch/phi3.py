"""Phi-3 (and Phi-3.5, Phi-4, Phi-4-mini): fused q/k/v and fused gate/up projections
(llama.cpp splits them itself), partial rotary dimensions, NEOX rope, and LongRoPE: per-
frequency divisors for short and long contexts, and an attention factor.

llama.cpp picks the long divisors when its context is longer than the original one;
transformers when the sequence is. Within the original context both use the short ones."""

from __future__ import annotations

import math
from typing import ClassVar

import gguf
import numpy as np

from models.errors import UnsupportedModel

from . import register
from .base import Architecture


@register
class Phi3(Architecture):
    hf_names = ("Phi3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.PHI3
    supported_rope: ClassVar[tuple[str, ...]] = ("default", "longrope")

    def check(self) -> None:
        super().check()
        rope = self.rope_parameters()
        if rope["rope_type"] == "longrope":
            for key in ("short_factor", "long_factor"):
                if len(rope.get(key) or ()) != self.rope_dims // 2:
                    raise UnsupportedModel(
                        f"this model's LongRoPE {key} has {len(rope.get(key) or ())} values; "
                        f"its rotary dimensions need {self.rope_dims // 2}"
                    )
            if not rope.get("original_max_position_embeddings"):
                raise UnsupportedModel("this model's LongRoPE lacks its original context length")

    def _longrope(self) -> tuple[dict, float] | None:
        rope = self.rope_parameters()
        if rope["rope_type"] != "longrope":
            return None
        original = int(rope["original_max_position_embeddings"])
        factor = rope.get("factor") or int(self.get("max_position_embeddings", original)) / original
        attention = rope.get("attention_factor")
        if attention is None:
            attention = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(original))
        return rope, float(attention)

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        window = self.config.get("sliding_window")
        if isinstance(window, int):
            w.add_sliding_window(window)
        longrope = self._longrope()
        if longrope is not None:
            rope, attention = longrope
            w.add_rope_scaling_attn_factors(attention)
            w.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))

    def extra_tensors(self) -> dict[str, np.ndarray]:
        longrope = self._longrope()
        if longrope is None:
            return {}
        rope, _ = longrope
        names = gguf.TENSOR_NAMES
        return {
            names[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight": np.asarray(
                rope["long_factor"], np.float32
            ),
            names[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight": np.asarray(
                rope["short_factor"], np.float32
            ),
        }
