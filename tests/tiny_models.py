"""Tiny random-weight Hugging Face checkpoints of each architecture the converter supports.

Built by transformers from a config (2 layers, hidden 64), weights perturbed so that biases
and norms are not their trivial initial values, saved with safetensors and the SmolLM2
tokenizer files (the token ids are what the logit tests feed; the tokenizer only has to load).
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path
from typing import Any

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
COMMON: dict[str, Any] = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=2,
)


def tiny_config(arch: str, vocab_size: int) -> Any:
    import transformers as tf

    common = dict(COMMON, vocab_size=vocab_size)
    if arch == "LlamaForCausalLM":
        return tf.LlamaConfig(**common, tie_word_embeddings=False)
    if arch == "MistralForCausalLM":
        return tf.MistralConfig(**common, sliding_window=None, tie_word_embeddings=False)
    if arch == "Qwen2ForCausalLM":
        return tf.Qwen2Config(**common, tie_word_embeddings=True)
    if arch == "Qwen3ForCausalLM":
        return tf.Qwen3Config(**common, head_dim=32, tie_word_embeddings=False)
    if arch == "Gemma2ForCausalLM":
        return tf.Gemma2Config(
            **common,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=128,
            attn_logit_softcapping=50.0,
            final_logit_softcapping=30.0,
        )
    if arch == "Gemma3ForCausalLM":
        return tf.Gemma3TextConfig(
            **common, head_dim=16, query_pre_attn_scalar=16, sliding_window=128
        )
    if arch == "Phi3ForCausalLM":
        return tf.Phi3Config(**common, tie_word_embeddings=False)
    moe = dict(num_experts_per_tok=2, tie_word_embeddings=False)
    if arch == "Qwen3MoeForCausalLM":
        return tf.Qwen3MoeConfig(
            **common,
            **moe,
            head_dim=16,
            num_experts=4,
            moe_intermediate_size=32,
            norm_topk_prob=True,
        )
    if arch == "Qwen2MoeForCausalLM":
        return tf.Qwen2MoeConfig(
            **common,
            **moe,
            num_experts=4,
            moe_intermediate_size=32,
            shared_expert_intermediate_size=48,
            norm_topk_prob=False,
        )
    if arch == "MixtralForCausalLM":
        return tf.MixtralConfig(**common, **moe, num_local_experts=4, sliding_window=None)
    if arch == "GptOssForCausalLM":
        # a window shorter than the test's 16 tokens, so the sliding layers differ
        return tf.GptOssConfig(
            **dict(common, intermediate_size=32),
            **moe,
            head_dim=16,
            num_local_experts=4,
            sliding_window=8,
        )
    if arch == "GraniteForCausalLM":
        return tf.GraniteConfig(
            **common,
            embedding_multiplier=12.0,
            residual_multiplier=0.22,
            attention_multiplier=0.2,
            logits_scaling=4.0,
            tie_word_embeddings=True,
        )
    if arch == "Olmo2ForCausalLM":
        return tf.Olmo2Config(**common, tie_word_embeddings=False)
    if arch == "SmolLM3ForCausalLM":
        # four layers, so that one of them (the fourth) has no rotary embedding
        return tf.SmolLM3Config(**dict(common, num_hidden_layers=4), tie_word_embeddings=True)
    if arch == "Glm4ForCausalLM":
        # half of each head rotary, biases on q/k/v, the four norms of a GLM-4 layer
        return tf.Glm4Config(
            **common, head_dim=16, partial_rotary_factor=0.5, attention_bias=True,
            tie_word_embeddings=False,
        )  # fmt: skip
    raise ValueError(arch)


def build_tiny(
    arch: str, folder: Path, tokenizer_from: Path, *, dtype: str = "float32", **changes: Any
) -> Path:
    """Save a tiny random ``arch`` checkpoint in ``folder`` (dtype: float32 or bfloat16),
    its config changed by ``changes`` (set before the model is built)."""
    import torch
    import transformers as tf

    vocab = 49152
    config = tiny_config(arch, vocab)
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(zlib.crc32(arch.encode()) % 1000)
    model = getattr(tf, arch)(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model = model.to(getattr(torch, dtype))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (tokenizer_from / name).is_file():
            shutil.copy(tokenizer_from / name, folder / name)
    return folder
