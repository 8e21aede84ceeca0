"""ONNX Runtime GenAI int8 vs llama.cpp Q8_0: decode speed on the same checkpoint, and the
quality of each against transformers.

The real SmolLM2 checkpoint is converted by our own converters (onnx-int8 through the model
builder, gguf-q8_0 through quant.convert) and each runs through its Fireside backend with the
same greedy settings, threads, prompt and token budget. Rounds alternate which side goes first
so machine noise hits both alike; the result is the median over rounds of (ONNX decode tokens/s)
/ (llama.cpp decode tokens/s), each rate 1 / the median gap between streamed tokens. The KL of
each against transformers is the conversion quality report (quant.onnx / quant.quality).
Run: .venv/bin/python -m pytest tests/perf -m perf -s -k onnx_bench
"""

from __future__ import annotations

import json
import statistics
import time

import pytest

from models import describe
from runtime import GREEDY, BackendOptions

pytestmark = pytest.mark.perf

ROUNDS, TOKENS, THREADS = 6, 128, 2
MESSAGES = [
    {
        "role": "user",
        "content": "Write a long story about a lighthouse keeper who finds a message in a "
        "bottle. Describe the sea, the storm and the town in detail.",
    }
]


def decode_rate(backend) -> tuple[float, int]:
    if hasattr(backend, "reset_cache"):
        backend.reset_cache()
    times, last = [], None
    for chunk in backend.stream(MESSAGES, GREEDY.replace(max_tokens=TOKENS)):
        if chunk.text:
            times.append(time.perf_counter())
        last = chunk
    return 1.0 / statistics.median(b - a for a, b in zip(times, times[1:])), last.completion_tokens


def test_onnx_int8_vs_llamacpp_q8_0(cache_dir, hf_checkpoint, converted):
    from onnx_models import onnx_model

    from quant.onnx import measure_onnx, onnx_record
    from quant.quality import measure
    from runtime.llamacpp import LlamaCppBackend
    from runtime.onnx_backend import OnnxBackend

    onnx_dir = onnx_model(cache_dir, hf_checkpoint, "onnx-int8")
    gguf = converted("gguf-q8_0")
    onnx = OnnxBackend(
        onnx_record(onnx_dir, hf_checkpoint, "onnx-int8"), BackendOptions(n_threads=THREADS)
    )
    llama = LlamaCppBackend(describe(gguf), BackendOptions(n_threads=THREADS, n_ctx=2048))
    onnx.load()
    llama.load()
    rates: dict[str, list[float]] = {"onnx": [], "llama": []}
    try:
        decode_rate(onnx), decode_rate(llama)  # warm-up
        for i in range(ROUNDS):
            order = (("onnx", onnx), ("llama", llama))
            for name, b in order if i % 2 == 0 else order[::-1]:
                rate, n = decode_rate(b)
                assert n >= 16, f"{name} stopped after {n} tokens"
                rates[name].append(rate)
    finally:
        onnx.unload()
        llama.unload()
    ratio = statistics.median(o / ll for o, ll in zip(rates["onnx"], rates["llama"]))
    q_onnx = measure_onnx(hf_checkpoint, onnx_dir, "onnx-int8")
    q_gguf = measure(hf_checkpoint, gguf, "gguf-q8_0")
    report = {
        "onnx_int8_tok_s": round(statistics.median(rates["onnx"]), 1),
        "llamacpp_q8_0_tok_s": round(statistics.median(rates["llama"]), 1),
        "ratio": round(ratio, 3),
        "kl_onnx_int8": round(q_onnx.kl, 4),
        "kl_llamacpp_q8_0": round(q_gguf.kl, 4),
        "threads": THREADS,
        "tokens": TOKENS,
        "rounds": ROUNDS,
    }
    print(f"\n[onnx-bench] {json.dumps(report)}")
    assert ratio > 0.3, report  # a sanity floor; the number itself is the result
    assert q_onnx.kl < 0.02 and q_gguf.kl < 0.02, report
