"""Qwen3: Qwen2 without the q/k/v biases, with RMS norms on q and k, explicit head_dim."""

from __future__ import annotations

import gguf

from . import register
from .base import Architecture


@register
class Qwen3(Architecture):
    hf_names = ("Qwen3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.QWEN3
