"""gpt-oss: attention with q/k/v/o biases and a learned sink per head, sliding-window and
full layers alternating, YaRN rope, and a mixture of experts whose checkpoint tensors are
already stacked: gate and up fused and interleaved, stored input-major ([expert, in, out]),
with biases. llama.cpp wants them apart and output-major, so they are cut and transposed.

MXFP4-quantized checkpoints (the published ones) are refused for now: they need their
expert weights dequantized first."""

from __future__ import annotations

import re
from typing import ClassVar

import gguf
import numpy as np

from models.errors import UnsupportedModel

from . import register
from .base import Architecture

_EXPERTS = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(gate_up_proj|down_proj)(_bias)?$")
SWIGLU = {"swiglu_alpha": 1.702, "swiglu_limit": 7.0}  # what llama.cpp's gpt-oss computes with


@register
class GptOss(Architecture):
    hf_names = ("GptOssForCausalLM",)
    gguf_arch = gguf.MODEL_ARCH.GPT_OSS
    supported_rope: ClassVar[tuple[str, ...]] = ("default", "yarn")

    def check(self) -> None:
        super().check()
        quant = self.config.get("quantization_config")
        if isinstance(quant, dict) and quant.get("quant_method"):
            raise UnsupportedModel(
                f"this gpt-oss checkpoint stores its experts as {quant['quant_method']}; "
                f"Fireside converts gpt-oss from bf16 or float weights only for now"
            )
        for key, value in SWIGLU.items():
            if abs(float(self.get(key, value)) - value) > 1e-6:
                raise UnsupportedModel(
                    f"this gpt-oss model's {key} is {self.config[key]}, llama.cpp computes "
                    f"with {value}; the converted model would compute differently"
                )
        types = self.config.get("layer_types")
        expected = [
            "sliding_attention" if i % 2 == 0 else "full_attention" for i in range(self.n_layers)
        ]
        if types is not None and list(types) != expected:
            raise UnsupportedModel(
                "this gpt-oss model's layers do not alternate sliding-window and full "
                "attention (sliding first), which llama.cpp's gpt-oss assumes"
            )

    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        super().write_hparams(w)
        w.add_expert_count(self.n_experts)
        w.add_expert_used_count(int(self.need("num_experts_per_tok")))
        w.add_expert_feed_forward_length(int(self.need("intermediate_size")))
        w.add_sliding_window(int(self.need("sliding_window")))
        rope = self.rope_parameters()
        if rope["rope_type"] == "yarn":
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(float(rope["factor"]))
            w.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))

    def gguf_name(self, hf_name: str) -> str | None:
        name = super().gguf_name(hf_name)
        if name is not None and name.endswith(".attn_sinks"):
            return name + ".weight"  # the checkpoint's name has no suffix; llama.cpp's has
        return name

    # -- the fused, input-major experts --------------------------------------------------
    def _expert_name(self, layer: str, which: str, bias: bool) -> str:
        base = self.name_map.get_name(f"model.layers.{layer}.mlp.experts.{which}_proj")
        if base is None:
            raise UnsupportedModel(f"internal: no GGUF name for the {which} experts")
        return f"{base}.{'bias' if bias else 'weight'}"

    def derived(self, hf_name: str, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
        match = _EXPERTS.match(hf_name)
        if match is None:
            return []
        layer, proj, bias = match[1], match[2], bool(match[3])
        if proj == "down_proj":
            out = shape if bias else (shape[0], shape[2], shape[1])
            return [(self._expert_name(layer, "down", bias), out)]
        half = shape[-1] // 2
        out = (shape[0], half) if bias else (shape[0], half, shape[1])
        return [(self._expert_name(layer, w, bias), out) for w in ("gate", "up")]

    def changes(self, gguf_name: str) -> bool:
        return "_exps." in gguf_name

    def transform(self, gguf_name: str, array: np.ndarray) -> np.ndarray:
        if "_exps." not in gguf_name:
            return array
        if "ffn_gate_exps" in gguf_name:
            array = array[..., 0::2]  # gate and up interleave along the output
        elif "ffn_up_exps" in gguf_name:
            array = array[..., 1::2]
        if gguf_name.endswith(".weight"):
            array = array.swapaxes(1, 2)  # [expert, in, out] -> [expert, out, in]
        return np.ascontiguousarray(array)
