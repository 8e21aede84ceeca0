"""OLMo 2: norms after the attention and after the MLP (not before them), and RMS norms on
the whole q and k projections (across heads)."""

from __future__ import annotations

import gguf

from . import register
from .base import Architecture


@register
class Olmo2(Architecture):
    hf_names = ("Olmo2ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.OLMO2
