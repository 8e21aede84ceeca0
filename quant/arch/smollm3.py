"""SmolLM3: Llama's layout where every fourth layer has no rotary embedding (NoPE).

llama.cpp fixes that pattern (layers 3, 7, 11, ... skip rope); a config with another
pattern is refused rather than converted into a model that would attend differently."""

from __future__ import annotations

import gguf

from models.errors import UnsupportedModel

from . import register
from .llama import Llama

NOPE_EVERY = 4  # llama.cpp's smollm3: layer i has no rope when (i + 1) % 4 == 0


@register
class SmolLM3(Llama):
    hf_names = ("SmolLM3ForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.SMOLLM3

    def check(self) -> None:
        super().check()
        uses_rope = self.config.get("no_rope_layers")
        expected = [int((i + 1) % NOPE_EVERY != 0) for i in range(self.n_layers)]
        if uses_rope is not None and [int(bool(x)) for x in uses_rope] != expected:
            raise UnsupportedModel(
                "this SmolLM3 model skips rotary embeddings on other layers than every "
                "fourth one, which llama.cpp's smollm3 does not represent"
            )
