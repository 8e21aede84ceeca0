"""The PyTorch and MLX backends against their libraries called directly, in one run.

- PyTorch backend vs ``model.generate`` (transformers' own loop) on the same loaded model.
- MLX backend vs ``mlx_lm.stream_generate`` on the same loaded model.

Same checkpoint, prompt tokens, greedy settings, threads and token budget. Rounds come in
pairs whose order alternates, so machine noise hits both sides alike; the result is the
median over pairs of (our decode tokens/s) / (baseline decode tokens/s), each decode rate
being 1 / the median gap between successive tokens; target >= 0.95 each. PyTorch runs on one thread: on a
shared two-core machine two OpenMP threads make single runs vary several-fold.
Run: .venv/bin/python -m pytest tests/perf -m perf -s -k backend_bench
"""

from __future__ import annotations

import statistics
import time

import pytest

from models import describe
from runtime import GREEDY, BackendOptions

pytestmark = pytest.mark.perf

TORCH_ROUNDS, TORCH_TOKENS, TORCH_THREADS = 8, 32, 1
MLX_ROUNDS, MLX_TOKENS = 8, 16
MESSAGES = [
    {
        "role": "user",
        "content": "Write a long story about a lighthouse keeper who finds a message in a "
        "bottle. Describe the sea, the storm and the town in detail.",
    }
]


def rate(times: list[float]) -> float:
    """Decode tokens/s from the arrival times of successive tokens: 1 / the median gap
    (the median shrugs off the moments another process takes the CPU)."""
    return 1.0 / statistics.median(b - a for a, b in zip(times, times[1:]))


def generate_rate(model, prompt: list[int], max_new_tokens: int) -> tuple[float, int]:
    """(decode tokens/s, tokens) of transformers' own greedy ``model.generate``, timed by a
    streamer at every token."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    clock = Clock()
    with torch.inference_mode():
        model.generate(
            torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            streamer=clock,
        )
    t = clock.times[1:]  # the first put is the prompt itself
    return rate(t), len(t)


def ours_decode_rate(backend, tokens: int) -> tuple[float, int]:
    """Arrival times of our streamed chunks (one per token for this English text)."""
    backend.reset_cache()  # a cold prompt each round, like the baseline
    times, last = [], None
    for chunk in backend.stream(MESSAGES, GREEDY.replace(max_tokens=tokens)):
        if chunk.text:
            times.append(time.perf_counter())
        last = chunk
    assert len(times) >= last.completion_tokens - 2, "expected about one chunk per token"
    return rate(times), last.completion_tokens


def paired(rounds: int, ours, baseline) -> tuple[list[float], list[float], int, int]:
    """Alternating pairs: ours first in even rounds, the baseline first in odd ones."""
    ours_rates, base_rates, n_ours, n_base = [], [], 0, 0
    for i in range(rounds):
        for side in ("o", "b") if i % 2 == 0 else ("b", "o"):
            if side == "o":
                rate, n_ours = ours()
                ours_rates.append(rate)
            else:
                rate, n_base = baseline()
                base_rates.append(rate)
    return ours_rates, base_rates, n_ours, n_base


def report(name: str, ours: list[float], base: list[float], n_ours: int, n_base: int) -> float:
    ratio = statistics.median(o / b for o, b in zip(ours, base))
    mo, mb = statistics.median(ours), statistics.median(base)
    print(
        f"\n[bench] {name}: median pair ratio {ratio:.3f}; ours {mo:.2f} tok/s ({n_ours} tokens), "
        f"baseline {mb:.2f} tok/s ({n_base} tokens); rounds ours {[round(x, 2) for x in ours]} "
        f"baseline {[round(x, 2) for x in base]}"
    )
    return ratio


def test_torch_backend_vs_transformers_generate(hf_checkpoint):
    import torch

    from runtime.torch_backend import TorchBackend

    backend = TorchBackend(
        describe(hf_checkpoint), BackendOptions(device="cpu", n_threads=TORCH_THREADS)
    )
    backend.load()
    model = backend.model
    prompt, _, _ = backend.prompt_tokens(MESSAGES, GREEDY)

    def baseline() -> tuple[float, int]:
        return generate_rate(model, prompt, TORCH_TOKENS)

    assert torch.get_num_threads() == TORCH_THREADS
    ours_decode_rate(backend, 4)  # warm-up, both sides
    baseline()
    results = paired(TORCH_ROUNDS, lambda: ours_decode_rate(backend, TORCH_TOKENS), baseline)
    backend.unload()
    ratio = report(f"torch (CPU fp32, {TORCH_THREADS} thread)", *results)
    assert ratio >= 0.95


def test_mlx_backend_vs_mlx_lm_stream_generate(cache_dir, hf_checkpoint):
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler
    from mlx_models import mlx_model

    from runtime.mlx_backend import MLXBackend

    folder = mlx_model(cache_dir, hf_checkpoint, "mlx-bf16")
    backend = MLXBackend(describe(folder).replace(format="mlx"), BackendOptions())
    backend.load()
    prompt, _, _ = backend.prompt_tokens(MESSAGES, GREEDY)

    def baseline() -> tuple[float, int]:
        times = []
        for _ in stream_generate(
            backend.model,
            backend.tokenizer,
            prompt,
            max_tokens=MLX_TOKENS,
            sampler=make_sampler(temp=0.0),
        ):
            times.append(time.perf_counter())
        return rate(times), len(times)

    ours_decode_rate(backend, 4)
    baseline()
    results = paired(MLX_ROUNDS, lambda: ours_decode_rate(backend, MLX_TOKENS), baseline)
    backend.unload()
    ratio = report("mlx (CPU, bf16)", *results)
    assert ratio >= 0.95
