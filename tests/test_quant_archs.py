"""Every supported architecture: a tiny random checkpoint built by transformers, converted to
F16 by Fireside, gives the same logits in llama.cpp as in transformers on the same tokens."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from quant_helpers import kl_and_top1, llama_logits
from tiny_models import build_tiny

from quant import convert, supported_architectures

TOKENS = [1, 504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 9, 100, 2000, 40000, 7]
ARCHS = [
    ("LlamaForCausalLM", "float32"),
    ("MistralForCausalLM", "bfloat16"),
    ("Qwen2ForCausalLM", "bfloat16"),
    ("Qwen3ForCausalLM", "float32"),
    ("Gemma2ForCausalLM", "float32"),
    ("Gemma3ForCausalLM", "bfloat16"),
    ("Phi3ForCausalLM", "float32"),
    ("Qwen3MoeForCausalLM", "float32"),
    ("MixtralForCausalLM", "bfloat16"),
    ("GraniteForCausalLM", "float32"),
    ("Olmo2ForCausalLM", "bfloat16"),
    ("SmolLM3ForCausalLM", "float32"),
]


def test_every_registered_architecture_is_tested() -> None:
    assert set(supported_architectures()) == {a for a, _ in ARCHS}


@pytest.mark.slow
@pytest.mark.parametrize(("arch", "dtype"), ARCHS)
def test_tiny_checkpoint_logits_match_transformers(
    arch: str, dtype: str, hf_checkpoint: Path, tmp_path: Path
) -> None:
    import torch
    import transformers

    folder = build_tiny(arch, tmp_path / "src", hf_checkpoint, dtype=dtype)
    model = getattr(transformers, arch).from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(torch.tensor([TOKENS])).logits[0].numpy()
    # (a general.name containing "phi3" makes llama.cpp expect Phi-3's own special tokens)
    out = convert(folder, "gguf-f16", tmp_path / "tiny.gguf", name="tiny test model")
    (got,) = llama_logits(out, [TOKENS])
    kl, top1 = kl_and_top1(ref, got)
    assert kl < 1e-4, f"{arch}: mean KL {kl}"
    assert top1 == 1.0, f"{arch}: top-1 agreement {top1}"
    assert np.abs(ref - got).max() < 0.02
