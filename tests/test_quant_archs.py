"""Every supported architecture: a tiny random checkpoint built by transformers, converted to
F16 by Fireside, gives the same logits in llama.cpp as in transformers on the same tokens."""

from __future__ import annotations

import json
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
    ("Qwen2MoeForCausalLM", "bfloat16"),
    ("MixtralForCausalLM", "bfloat16"),
    ("GraniteForCausalLM", "float32"),
    ("Olmo2ForCausalLM", "bfloat16"),
    ("SmolLM3ForCausalLM", "float32"),
    ("GptOssForCausalLM", "bfloat16"),
    ("Glm4ForCausalLM", "bfloat16"),
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


def _edited(folder: Path, dst: Path, **changes: object) -> Path:
    import json
    import shutil

    shutil.copytree(folder, dst)
    config = json.loads((dst / "config.json").read_text(encoding="utf-8"))
    config.update(changes)
    (dst / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return dst


@pytest.fixture(scope="module")
def tiny_moe(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("Qwen3MoeForCausalLM", tmp_path_factory.mktemp("moe") / "src", hf_checkpoint)


def test_a_moe_that_llama_cpp_would_compute_differently_is_refused_before_work(
    tiny_moe: Path, tmp_path: Path
) -> None:
    """Settings llama.cpp fixes per architecture (whether the chosen experts' weights are
    re-normalized, every layer a MoE one, SmolLM3's NoPE pattern, gpt-oss's layer pattern),
    gpt-oss's MXFP4 experts (not dequantized yet) are refused in words, and
    a checkpoint missing an expert is refused, each before anything is written."""
    from models.errors import InvalidModelFile, UnsupportedModel

    out = tmp_path / "out"
    out.mkdir()
    cases = [
        (dict(norm_topk_prob=False), "re-normalize"),
        (dict(mlp_only_layers=[0]), "mixes dense and expert layers"),
        (dict(architectures=["SmolLM3ForCausalLM"], no_rope_layers=[0, 1]), "fourth"),
        (
            dict(
                architectures=["GptOssForCausalLM"], quantization_config={"quant_method": "mxfp4"}
            ),
            "stores its experts as mxfp4",
        ),
        (
            dict(architectures=["GptOssForCausalLM"], layer_types=["full_attention"] * 2),
            "do not alternate",
        ),
    ]
    for i, (changes, words) in enumerate(cases):
        with pytest.raises(UnsupportedModel, match=words):
            convert(_edited(tiny_moe, tmp_path / f"c{i}", **changes), "gguf-f16", out / "x.gguf")
    with pytest.raises(InvalidModelFile, match="holds 4 experts .* the config says 5"):
        convert(_edited(tiny_moe, tmp_path / "five", num_experts=5), "gguf-f16", out / "x.gguf")
    assert list(out.iterdir()) == []


def test_experts_are_stacked_per_projection(tiny_moe: Path, tmp_path: Path) -> None:
    """Each layer's experts are one 3-D tensor per projection, expert by expert (llama.cpp's
    ffn_{gate,up,down}_exps), beside the router (ffn_gate_inp), with the expert counts."""
    from quant_helpers import gguf_contents
    from safetensors.numpy import load_file

    from models.gguf import read_gguf

    out = convert(tiny_moe, "gguf-f16", tmp_path / "moe.gguf")
    info = read_gguf(out)
    assert info.get("qwen3moe.expert_count") == 4
    assert info.get("qwen3moe.expert_used_count") == 2
    assert info.get("qwen3moe.expert_feed_forward_length") == 32
    _, tensors = gguf_contents(out)
    by_name = {name: (dims, data) for name, _t, dims, data in tensors}
    src = load_file(tiny_moe / "model.safetensors")
    for gguf_name, hf in (("gate", "gate_proj"), ("up", "up_proj"), ("down", "down_proj")):
        dims, data = by_name[f"blk.1.ffn_{gguf_name}_exps.weight"]
        experts = [src[f"model.layers.1.mlp.experts.{e}.{hf}.weight"] for e in range(4)]
        assert dims == tuple(reversed((4, *experts[0].shape)))
        stacked = np.frombuffer(data, np.float16).reshape(4, *experts[0].shape)
        assert np.array_equal(stacked, np.stack(experts).astype(np.float16))
    assert by_name["blk.0.ffn_gate_inp.weight"][0] == (64, 4)


def test_phi3_longrope_matches_transformers(hf_checkpoint: Path, tmp_path: Path) -> None:
    """Phi-3.5-mini / Phi-4-mini's LongRoPE (short and long divisors per frequency, an
    attention factor, partial rotary dimensions): within the original context (llama.cpp's
    context, which it pads to 256, and transformers' sequence), both use the short divisors
    and agree; the long ones are stored for llama.cpp's longer contexts."""
    import torch
    import transformers

    rope = {
        "rope_type": "longrope",
        "rope_theta": 10000.0,
        "original_max_position_embeddings": 512,
        "short_factor": [1.0 + 0.3 * i for i in range(6)],
        "long_factor": [2.0 + 0.5 * i for i in range(6)],
        "partial_rotary_factor": 0.75,  # where transformers 5 keeps it (as Phi-4-mini's)
    }
    folder = build_tiny(
        "Phi3ForCausalLM",
        tmp_path / "src",
        hf_checkpoint,
        original_max_position_embeddings=512,
        max_position_embeddings=2048,  # 4x the original: an attention factor of 1.15
        rope_parameters=rope,
    )
    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))["rope_parameters"]
    assert (
        saved["partial_rotary_factor"] == 0.75 and saved["original_max_position_embeddings"] == 512
    )
    model = transformers.Phi3ForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = model(torch.tensor([TOKENS])).logits[0].numpy()
    out = convert(folder, "gguf-f16", tmp_path / "tiny.gguf", name="tiny test model")
    (got,) = llama_logits(out, [TOKENS])
    kl, top1 = kl_and_top1(ref, got)
    assert kl < 1e-4, f"mean KL {kl}"
    assert top1 == 1.0
    from quant_helpers import gguf_contents

    _, tensors = gguf_contents(out)
    stored = {n: np.frombuffer(data, np.float32) for n, _t, _d, data in tensors if "rope" in n}
    for which in ("long", "short"):
        expected = np.asarray(rope[f"{which}_factor"], np.float32)
        assert np.array_equal(stored[f"rope_factors_{which}.weight"], expected)
