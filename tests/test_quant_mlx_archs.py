"""MLX conversion of every architecture the MLX path takes: a tiny random checkpoint saved
by transformers 5 (RoPE base under ``rope_parameters``, per layer type for Gemma 3),
converted by ``quant.mlx.convert_mlx`` to MLX bf16, run by mlx-lm in float32, gives
transformers' logits. A converter that lost the RoPE base (mlx-lm falls back to its own
default) or an architecture's multipliers would not.

mlx-lm runs here in a child process (as the converter's own child does), so the test
process never holds MLX beside llama.cpp's libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from quant_helpers import kl_and_top1
from tiny_models import build_tiny

pytestmark = pytest.mark.slow  # about 8 s per architecture: an mlx-lm conversion and a run

TOKENS = [1, 504, 2365, 6354, 16438, 27003, 690, 260, 23790, 2767, 30, 9, 100, 2000, 40000, 7]
ARCHS = [
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Phi3ForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Qwen2MoeForCausalLM",
    "MixtralForCausalLM",
    "GraniteForCausalLM",
    "Olmo2ForCausalLM",
    "SmolLM3ForCausalLM",
    "Glm4ForCausalLM",
]
RUN_MLX = """
import json, sys
import mlx.core as mx
import numpy as np
from mlx_lm import load
model, _ = load(sys.argv[1])
model.set_dtype(mx.float32)
logits = model(mx.array([json.loads(sys.argv[2])]))[0].astype(mx.float32)
np.save(sys.argv[3], np.array(logits))
"""


def test_every_architecture_both_paths_take_is_tested() -> None:
    from quant import supported_architectures
    from quant.mlx import MLX_ARCHITECTURES

    assert set(MLX_ARCHITECTURES) & set(supported_architectures()) == set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_checkpoint_in_mlx_matches_transformers(
    arch: str, hf_checkpoint: Path, tmp_path: Path
) -> None:
    import torch
    import transformers

    from quant.mlx import convert_mlx

    # mlx-lm's Gemma 3 needs a full-attention layer within its first six (its default period)
    changes = {}
    if arch == "Gemma3ForCausalLM":
        changes = dict(
            num_hidden_layers=6, layer_types=["sliding_attention"] * 5 + ["full_attention"]
        )
    folder = build_tiny(arch, tmp_path / "src", hf_checkpoint, dtype="bfloat16", **changes)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert "rope_theta" not in config and "rope_parameters" in config  # as transformers 5 saves
    model = getattr(transformers, arch).from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(torch.tensor([TOKENS])).logits[0].numpy()
    result = convert_mlx(folder, "mlx-bf16", tmp_path / "mlx")
    out = tmp_path / "logits.npy"
    run = subprocess.run(
        [sys.executable, "-c", RUN_MLX, str(result.path), json.dumps(TOKENS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = np.load(out)
    kl, top1 = kl_and_top1(ref, got)
    assert kl < 1e-4, f"{arch}: mean KL {kl}"
    assert top1 == 1.0, f"{arch}: top-1 agreement {top1}"
