"""GLM-4 (GLM-4-9B-0414, GLM-4-32B-0414 and their fine-tunes): four norms per layer (before
and after the attention, before and after the MLP), biases on q/k/v, a fused gate/up
projection (llama.cpp splits it itself), and rotary embedding on half of each head's
dimensions, in interleaved pairs as llama.cpp's own rope already is (no permutation)."""

from __future__ import annotations

import gguf

from . import register
from .base import Architecture


@register
class Glm4(Architecture):
    hf_names = ("Glm4ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GLM4
