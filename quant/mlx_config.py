"""The source config made explicit for mlx-lm, whatever the architecture.

transformers 5 saves the RoPE base under ``rope_parameters`` (flat, or per layer type for
Gemma 3), names a MoE's expert count ``num_local_experts`` and Gemma 3's attention pattern
``layer_types``; mlx-lm's model classes read ``rope_theta`` / ``rope_scaling`` /
``rope_local_base_freq``, ``num_experts`` and ``sliding_window_pattern`` instead, and
silently fall back to their own defaults when those are missing.
"""

from __future__ import annotations

from typing import Any

from models.errors import UnsupportedModel


def mlx_config(config: dict[str, Any]) -> dict[str, Any]:
    """The source config with what mlx-lm needs made explicit (see the module docstring),
    for every architecture: flat ``rope_parameters``, or per layer type (Gemma 3: the full
    layers' base and scaling at the top, the sliding layers' base as rope_local_base_freq)."""
    fixed = dict(config)
    # transformers 5 names a MoE's expert count num_local_experts; some mlx-lm models read
    # num_experts
    if "num_local_experts" in config:
        fixed.setdefault("num_experts", config["num_local_experts"])
    types = config.get("layer_types")
    if config.get("model_type") == "gemma3_text" and isinstance(types, list) and types:
        # mlx-lm's Gemma 3 reads a period (every n-th layer full attention), not the list
        period = types.index("full_attention") + 1 if "full_attention" in types else 0
        expected = [
            "sliding_attention" if (i + 1) % max(period, 1) else "full_attention"
            for i in range(len(types))
        ]
        if not period or types != expected:
            raise UnsupportedModel(
                "this model's sliding and full attention layers do not alternate with a "
                "fixed period, which mlx-lm's Gemma 3 expects; convert it to GGUF instead"
            )
        fixed["sliding_window_pattern"] = period
    params = config.get("rope_parameters")
    if not isinstance(params, dict):
        return fixed
    by_type = {k: v for k, v in params.items() if isinstance(v, dict)}
    if by_type:
        full = by_type.get("full_attention")
        if full is None or "rope_theta" not in full:
            raise UnsupportedModel(
                "the model's config gives RoPE parameters per layer type without the full "
                "attention layers' base, which the MLX converter does not handle; convert it "
                "to GGUF instead"
            )
        sliding = by_type.get("sliding_attention") or {}
        if "rope_theta" in sliding:
            fixed.setdefault("rope_local_base_freq", sliding["rope_theta"])
        params = full
    if "rope_theta" not in params:
        if "rope_theta" not in config:
            raise UnsupportedModel(
                "the model's config gives RoPE parameters without a base (rope_theta); "
                "convert it to GGUF instead"
            )
    else:
        fixed.setdefault("rope_theta", params["rope_theta"])
    # kept among the rope parameters by transformers 5, read at the top level by mlx-lm
    for key in ("partial_rotary_factor", "original_max_position_embeddings"):
        if key in params:
            fixed.setdefault(key, params[key])
    rope_type = params.get("rope_type") or params.get("type") or "default"
    if rope_type != "default" and not config.get("rope_scaling"):
        scaling = {
            k: v for k, v in params.items() if k not in ("rope_theta", "partial_rotary_factor")
        }
        fixed["rope_scaling"] = {**scaling, "type": rope_type}  # some mlx-lm models read "type"
    return fixed
