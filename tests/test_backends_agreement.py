"""Same model, same answer: the real SmolLM2 checkpoint run three ways.

The PyTorch backend's model (float32 on the CPU) is the reference. The same checkpoint
converted to MLX (bf16, 8-bit, 4-bit) and to GGUF (F16, Q8_0) must give next-token
distributions that agree with it, position by position over real text (teacher forcing):
mean KL under 1e-3 for the 16-bit forms; bounded, and reported, for 8 and 4 bits.

MLX's CPU kernels are not a quality oracle for quantized weights (ENVIRONMENT.md), so the
quantized MLX folders are judged on their weights dequantized to float32 and run by the
reference's code; the bf16 folder runs through MLX's own model code (float32 compute), which
is where a misread config would show. This runs on a checkpoint saved by the installed transformers
version, so a config the converters misread (a wrong model that still talks) fails here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import describe
from runtime import BackendOptions

pytestmark = pytest.mark.slow

REPORT: dict[str, dict[str, float]] = {}
CONVERSATION = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "What is the capital of France, and what river runs through it?"},
    {
        "role": "assistant",
        "content": "The capital of France is Paris. The Seine runs through the city.",
    },
    {"role": "user", "content": "Name two famous museums there."},
]
PROSE = (
    "The old lighthouse stood at the edge of the cliff, its white paint peeling in long "
    "strips. Every evening the keeper climbed the spiral stairs, counted the steps out loud, "
    "and lit the lamp before the fishing boats came home."
)


def kl_report(name: str, ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """KL(reference || other) per position (natural log), and top-1 agreement."""
    p = np.exp(ref)
    kl = (p * (ref - other)).sum(-1)
    stats = {
        "mean_kl": float(kl.mean()),
        "max_kl": float(kl.max()),
        "top1": float((ref.argmax(-1) == other.argmax(-1)).mean()),
        "positions": int(kl.size),
    }
    REPORT[name] = stats
    print(f"\n[agreement] {name}: {json.dumps(stats)}")
    return stats


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.fixture(scope="module")
def torch_backend(hf_checkpoint):
    from runtime.torch_backend import TorchBackend

    b = TorchBackend(describe(hf_checkpoint), BackendOptions(device="cpu"))
    info = b.load()
    assert info.device == "cpu" and b.dtype == "float32"
    yield b
    b.unload()


@pytest.fixture(scope="module")
def sequences(torch_backend):
    chat, add_bos = torch_backend.render(CONVERSATION)
    chat += "Two famous museums in Paris are the Louvre and the Musée d'Orsay."
    seqs = [
        torch_backend.tokenize(chat, add_bos=add_bos),
        torch_backend.tokenize(PROSE, add_bos=False),
    ]
    assert all(len(s) > 30 for s in seqs)
    return seqs


@pytest.fixture(scope="module")
def reference(torch_backend, sequences):
    import torch

    out = []
    with torch.inference_mode():
        for ids in sequences:
            logits = torch_backend.model(torch.tensor([ids])).logits[0]
            out.append(log_softmax(logits.float().numpy()))
    return np.concatenate(out)


def mlx_logprobs(model, sequences) -> np.ndarray:
    import mlx.core as mx

    out = []
    for ids in sequences:
        logits = model(mx.array([ids]))[0].astype(mx.float32)
        out.append(log_softmax(np.array(logits)))
    return np.concatenate(out)


def load_mlx(path, dtype: str | None = "float32"):
    """The converted folder through the MLX backend's own loader."""
    from runtime.mlx_backend import MLXBackend

    b = MLXBackend(describe(path).replace(format="mlx"), BackendOptions(dtype=dtype))
    b.load()
    return b


def dequantized_logprobs(path, torch_backend, sequences) -> np.ndarray:
    """The MLX folder's weights, dequantized to float32, run by the reference's own code.

    Judges what the conversion wrote, not MLX-CPU's quantized kernels (ENVIRONMENT.md).
    """
    import copy

    import mlx.core as mx
    import torch
    from mlx.utils import tree_flatten
    from mlx_lm.utils import dequantize_model

    b = load_mlx(path, dtype=None)
    weights = {
        k: torch.from_numpy(np.array(v.astype(mx.float32)))
        for k, v in tree_flatten(dequantize_model(b.model).parameters())
    }
    b.unload()
    model = copy.deepcopy(torch_backend.model)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected, unexpected
    assert set(missing) <= {"lm_head.weight"}, missing  # tied to the embedding
    model.tie_weights()
    out = []
    with torch.inference_mode():
        for ids in sequences:
            out.append(log_softmax(model(torch.tensor([ids])).logits[0].float().numpy()))
    return np.concatenate(out)


@pytest.fixture(scope="module")
def mlx_dir(cache_dir, hf_checkpoint):
    from mlx_models import mlx_model

    return lambda to, group=None: mlx_model(cache_dir, hf_checkpoint, to, group)


def test_pytorch_backend_generation_matches_its_reference(torch_backend, sequences, reference):
    """The backend's own cached decode loop picks the reference's argmax at every step."""
    import torch

    from runtime import GREEDY

    prompt = sequences[0][:40]
    torch_backend.reset_cache()
    for _ in torch_backend._generate(prompt, GREEDY, 6, _Never()):
        pass
    tokens = torch_backend._cached[len(prompt) :]  # every sampled token fed back (not the last)
    assert len(tokens) >= 4
    with torch.inference_mode():
        logits = torch_backend.model(torch.tensor([prompt + tokens])).logits[0]
    expected = logits[len(prompt) - 1 : -1].argmax(-1).tolist()
    assert tokens == expected[: len(tokens)]


class _Never:
    def is_set(self) -> bool:
        return False


def test_mlx_bf16_agrees_with_pytorch(mlx_dir, sequences, reference):
    """MLX's own model code on the converted folder (float32 compute): catches config misreads."""
    b = load_mlx(mlx_dir("mlx-bf16"))
    stats = kl_report(
        "mlx-bf16 (MLX, float32 compute)", reference, mlx_logprobs(b.model, sequences)
    )
    b.unload()
    assert stats["mean_kl"] < 1e-3
    assert stats["top1"] >= 0.98


def test_mlx_8bit_agrees_with_pytorch(mlx_dir, torch_backend, sequences, reference):
    got = dequantized_logprobs(mlx_dir("mlx-8bit"), torch_backend, sequences)
    stats = kl_report("mlx-8bit g64 (dequantized to float32)", reference, got)
    assert stats["mean_kl"] < 0.02
    assert stats["top1"] >= 0.9


def test_mlx_4bit_is_bounded(mlx_dir, torch_backend, sequences, reference):
    got = dequantized_logprobs(mlx_dir("mlx-4bit"), torch_backend, sequences)
    stats = kl_report("mlx-4bit g64 (dequantized to float32)", reference, got)
    # 4-bit round-to-nearest on a 135M model (tied embeddings included) costs a lot: about
    # 0.5 nats per token here; bounded so a broken conversion (KL of several nats) fails.
    assert stats["mean_kl"] < 1.0
    assert stats["top1"] >= 0.6


def gguf_logprobs(path, sequences) -> np.ndarray:
    """llama.cpp's log-probabilities at every position (llama-cpp-python, the peer, in a
    child process: never beside xllamacpp's library in this one)."""
    from quant_helpers import llama_logits

    ids = [[int(t) for t in seq] for seq in sequences]
    return np.concatenate([log_softmax(x) for x in llama_logits(path, ids)])


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gguf")


def test_gguf_f16_agrees_with_pytorch(hf_checkpoint, gguf_dir, sequences, reference):
    from quant import convert

    path = convert(hf_checkpoint, "gguf-f16", gguf_dir / "smollm2-f16.gguf")
    stats = kl_report("gguf-f16 (llama.cpp)", reference, gguf_logprobs(path, sequences))
    assert stats["mean_kl"] < 1e-3
    assert stats["top1"] >= 0.98


def test_gguf_q8_0_is_bounded(hf_checkpoint, gguf_dir, sequences, reference):
    from quant import convert

    path = convert(hf_checkpoint, "gguf-q8_0", gguf_dir / "smollm2-q8_0.gguf")
    stats = kl_report("gguf-q8_0 (llama.cpp)", reference, gguf_logprobs(path, sequences))
    assert stats["mean_kl"] < 0.02
    assert stats["top1"] >= 0.9
