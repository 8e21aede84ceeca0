"""Llama and the models that share its layout (Mistral, SmolLM)."""

from __future__ import annotations

from typing import ClassVar

import gguf
import numpy as np

from . import register
from .base import Architecture, llama3_rope_factors, permute_for_rope


@register
class Llama(Architecture):
    hf_names: ClassVar[tuple[str, ...]] = ("LlamaForCausalLM", "MistralForCausalLM")
    gguf_arch = gguf.MODEL_ARCH.LLAMA
    supported_rope: ClassVar[tuple[str, ...]] = ("default", "linear", "llama3")

    def changes(self, gguf_name: str) -> bool:
        return gguf_name.endswith(("attn_q.weight", "attn_k.weight"))

    def transform(self, gguf_name: str, array: np.ndarray) -> np.ndarray:
        # llama.cpp's Llama uses interleaved rope; HF stores q/k for rotate-half.
        if gguf_name.endswith("attn_q.weight"):
            return permute_for_rope(array, self.n_heads)
        if gguf_name.endswith("attn_k.weight"):
            return permute_for_rope(array, self.n_kv_heads)
        return array

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        window = self.config.get("sliding_window")
        if isinstance(window, int) and self.config.get("model_type") == "mistral":
            w.add_sliding_window(window)

    def extra_tensors(self) -> dict[str, np.ndarray]:
        rope = self.rope_parameters()
        if rope["rope_type"] != "llama3":
            return {}
        name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        return {name: llama3_rope_factors(rope, self.head_dim)}
