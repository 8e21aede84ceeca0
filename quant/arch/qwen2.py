"""Qwen2 and Qwen2.5: Llama's layout with biases on q/k/v and NEOX rope (no permutation)."""

from __future__ import annotations

import gguf

from . import register
from .base import Architecture


@register
class Qwen2(Architecture):
    hf_names = ("Qwen2ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN2
