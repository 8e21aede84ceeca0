"""What every architecture shares: hyper-parameters from config.json, tensor names from the
gguf package's map, and the hooks an architecture overrides (name, transform, extra keys)."""

from __future__ import annotations

import math
import re
from typing import Any, ClassVar

import gguf
import numpy as np

from models.errors import UnsupportedModel

SKIPPED_SUFFIXES = ("rotary_emb.inv_freq", "attn.bias", "attn.masked_bias")
# One expert's tensor of a mixture-of-experts layer: "<layer>.experts.<e>.<projection>".
EXPERT_PART = re.compile(r"^(?P<head>.+\.experts)\.(?P<index>\d+)\.(?P<tail>.+)$")


class Architecture:
    hf_names: ClassVar[tuple[str, ...]] = ()
    gguf_arch: ClassVar[gguf.MODEL_ARCH]
    supported_rope: ClassVar[tuple[str, ...]] = ("default", "linear")

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.name_map = gguf.get_tensor_name_map(self.gguf_arch, self.n_layers)

    # -- config helpers ----------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        value = self.config.get(key)
        return default if value is None else value

    def need(self, key: str) -> Any:
        value = self.config.get(key)
        if value is None:
            raise UnsupportedModel(f"config.json lacks {key!r}, which this architecture needs")
        return value

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.gguf_arch]

    @property
    def n_layers(self) -> int:
        return int(self.need("num_hidden_layers"))

    @property
    def hidden(self) -> int:
        return int(self.need("hidden_size"))

    @property
    def n_heads(self) -> int:
        return int(self.need("num_attention_heads"))

    @property
    def n_kv_heads(self) -> int:
        return int(self.get("num_key_value_heads", self.n_heads))

    @property
    def head_dim(self) -> int:
        return int(self.get("head_dim", self.hidden // self.n_heads))

    @property
    def vocab_size(self) -> int:
        return int(self.need("vocab_size"))

    @property
    def tied(self) -> bool:
        return bool(self.get("tie_word_embeddings", False))

    @property
    def n_experts(self) -> int:
        """Experts per mixture-of-experts layer (0: a dense model)."""
        return int(self.get("num_experts", self.get("num_local_experts", 0)) or 0)

    def rope_parameters(self, layer_type: str = "full_attention") -> dict[str, Any]:
        """transformers 5 ``rope_parameters`` (flat or per layer type) or the older keys."""
        params = self.config.get("rope_parameters")
        if (
            isinstance(params, dict)
            and layer_type in params
            and isinstance(params[layer_type], dict)
        ):
            params = params[layer_type]
        merged: dict[str, Any] = {}
        if isinstance(params, dict):
            merged.update(params)
        scaling = self.config.get("rope_scaling")
        if isinstance(scaling, dict):
            merged.update({k: v for k, v in scaling.items() if k not in merged})
        if "rope_theta" not in merged and self.config.get("rope_theta") is not None:
            merged["rope_theta"] = self.config["rope_theta"]
        merged.setdefault("rope_theta", 10000.0)
        merged["rope_type"] = merged.get("rope_type") or merged.get("type") or "default"
        return merged

    def check(self) -> None:
        """Refuse, before any heavy work, what this converter cannot represent."""
        rope = self.rope_parameters()
        if rope["rope_type"] not in self.supported_rope:
            raise UnsupportedModel(
                f"this model uses {rope['rope_type']!r} rope scaling, which Fireside's "
                f"{self.arch_name} converter does not handle yet"
            )

    # -- GGUF metadata ------------------------------------------------------------------
    def write_hparams(self, w: gguf.GGUFWriter) -> None:
        w.add_context_length(int(self.get("max_position_embeddings", 4096)))
        w.add_embedding_length(self.hidden)
        w.add_block_count(self.n_layers)
        w.add_feed_forward_length(int(self.need("intermediate_size")))
        w.add_head_count(self.n_heads)
        w.add_head_count_kv(self.n_kv_heads)
        w.add_layer_norm_rms_eps(float(self.get("rms_norm_eps", 1e-6)))
        w.add_vocab_size(self.vocab_size)
        if self.head_dim != self.hidden // self.n_heads:
            w.add_key_length(self.head_dim)
            w.add_value_length(self.head_dim)
        w.add_rope_dimension_count(self.rope_dims)
        rope = self.rope_parameters()
        w.add_rope_freq_base(float(rope["rope_theta"]))
        if rope["rope_type"] == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(rope["factor"]))

    @property
    def rope_dims(self) -> int:
        # transformers 5 keeps the factor among the rope parameters; older configs at the top
        factor = self.rope_parameters().get("partial_rotary_factor")
        if factor is None:
            factor = self.get("partial_rotary_factor", 1.0)
        return int(self.head_dim * float(factor))

    def write_moe_hparams(self, w: gguf.GGUFWriter) -> None:
        """Expert counts (and the expert width, where it differs from the dense one)."""
        w.add_expert_count(self.n_experts)
        w.add_expert_used_count(int(self.need("num_experts_per_tok")))
        if self.config.get("moe_intermediate_size") is not None:
            w.add_expert_feed_forward_length(int(self.config["moe_intermediate_size"]))

    # -- tensors ------------------------------------------------------------------------
    def expert_part(self, hf_name: str) -> tuple[str, int] | None:
        """For one expert's tensor: the stacked tensor's checkpoint-style name (the index
        left out) and the expert's index; None for any other tensor. llama.cpp holds each
        layer's experts as one 3-D tensor per projection, expert by expert."""
        if not self.n_experts:
            return None
        match = EXPERT_PART.match(hf_name)
        if match is None:
            return None
        return f"{match['head']}.{match['tail']}", int(match["index"])

    def gguf_name(self, hf_name: str) -> str | None:
        """The GGUF name of a checkpoint tensor; None to leave it out."""
        if hf_name.endswith(SKIPPED_SUFFIXES):
            return None
        if self.tied and hf_name == "lm_head.weight":
            return None  # llama.cpp reads the output projection from token_embd
        name = self.name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise UnsupportedModel(
                f"the checkpoint holds a tensor Fireside's {self.arch_name} converter does "
                f"not understand: {hf_name!r}"
            )
        return name

    def derived(self, hf_name: str, shape: tuple[int, ...]) -> list[tuple[str, tuple[int, ...]]]:
        """The GGUF tensors (name, numpy shape) cut or re-laid from one checkpoint tensor
        that llama.cpp holds as several (their values come from ``transform``); [] for a
        tensor that maps one to one."""
        return []

    def transform(self, gguf_name: str, array: np.ndarray) -> np.ndarray:
        """Change a tensor's values or layout for llama.cpp (the default: nothing)."""
        return array

    def changes(self, gguf_name: str) -> bool:
        """Whether ``transform`` does anything to this tensor (if not, it is streamed in pieces)."""
        return False

    def needs_float(self, gguf_name: str) -> bool:
        """Whether ``transform`` needs float32 input (arithmetic, not only a re-layout)."""
        return False

    def extra_tensors(self) -> dict[str, np.ndarray]:
        """Tensors llama.cpp needs that the checkpoint computes at run time (float32)."""
        return {}


def permute_for_rope(array: np.ndarray, n_heads: int) -> np.ndarray:
    """Re-order q/k rows from the rotate-half layout (HF) to the interleaved one (llama.cpp)."""
    rows = array.shape[0]
    head = rows // n_heads
    return (
        array.reshape(n_heads, 2, head // 2, *array.shape[1:]).swapaxes(1, 2).reshape(array.shape)
    )


def llama3_rope_factors(rope: dict[str, Any], head_dim: int) -> np.ndarray:
    """Per-frequency divisors of Llama 3.1's long-context rope (rope_type "llama3")."""
    base = float(rope["rope_theta"])
    factor = float(rope.get("factor", 8.0))
    low = float(rope.get("low_freq_factor", 1.0))
    high = float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    freqs = base ** -(np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / freqs
    smooth = (old_ctx / wavelen - low) / (high - low)
    mid = 1.0 / ((1.0 - smooth) / factor + smooth)
    out = np.where(wavelen < old_ctx / high, 1.0, np.where(wavelen > old_ctx / low, factor, mid))
    return out.astype(np.float32)
