"""The memory-fit estimate: its arithmetic, its verdicts, and a real load to check it against."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from model_files import LLAMA_CONFIG, llama_gguf, make_hf_folder

from models import Catalog, UnsupportedModel
from models.fit import (
    Architecture,
    Memory,
    available_memory,
    estimate,
    gguf_architecture,
    hf_architecture,
    kv_cache_bytes,
)
from models.recognize import describe

GB = 1_000_000_000


def test_kv_cache_arithmetic() -> None:
    a = Architecture(30, 576, 9, (3,) * 30, 64, 64, 49152, 1536)
    # SmolLM2-135M: 30 layers x 3 KV heads x (64 + 64) x 2 bytes per token (llama.cpp: 45 MiB
    # at 2048 tokens, 180 MiB at 8192).
    assert kv_cache_bytes(a, 2048) == 45 * 1024 * 1024
    assert kv_cache_bytes(a, 8192) == 180 * 1024 * 1024
    assert kv_cache_bytes(a, 8192, "f32") == 2 * kv_cache_bytes(a, 8192)
    assert kv_cache_bytes(a, 8192, "q8_0") < 0.6 * kv_cache_bytes(a, 8192)


def test_sliding_window_layers_keep_only_their_window() -> None:
    # Gemma-3-like: 5 of every 6 layers slide over 1024 tokens.
    config = dict(
        LLAMA_CONFIG,
        num_hidden_layers=6,
        sliding_window=1024,
        layer_types=["sliding_attention"] * 5 + ["full_attention"],
        head_dim=256,
        num_key_value_heads=1,
    )
    a = hf_architecture(config)
    assert a.sliding_layers == (True,) * 5 + (False,)
    per_token = 1 * (256 + 256) * 2
    ctx = 32768
    assert kv_cache_bytes(a, ctx) == per_token * (ctx + 5 * (1024 + 512))
    full = hf_architecture(dict(config, layer_types=["full_attention"] * 6))
    assert kv_cache_bytes(full, ctx) == per_token * ctx * 6


def test_gguf_sliding_window_pattern_from_the_architecture() -> None:
    meta = {
        "general.architecture": "gemma3",
        "gemma3.block_count": 12,
        "gemma3.embedding_length": 640,
        "gemma3.attention.head_count": 4,
        "gemma3.attention.head_count_kv": 1,
        "gemma3.attention.key_length": 256,
        "gemma3.attention.value_length": 256,
        "gemma3.attention.sliding_window": 512,
    }
    a = gguf_architecture(meta)
    assert sum(a.sliding_layers) == 10 and a.head_dim_k == 256
    per_layer_kv = dict(meta, **{"gemma3.attention.head_count_kv": [1, 2] * 6})
    assert gguf_architecture(per_layer_kv).n_kv_heads == (1, 2) * 6


def test_verdicts_against_the_memory_available(tmp_path: Path) -> None:
    record = describe(llama_gguf(tmp_path / "m.gguf"))
    plenty = estimate(record, 2048, memory=Memory("ram", 64 * GB, 64 * GB, "RAM"))
    assert plenty.verdict == "fits" and plenty.n_ctx == 2048
    assert plenty.typical == plenty.weights + plenty.kv_cache + plenty.overhead
    assert plenty.worst > plenty.typical
    between = (plenty.typical + plenty.worst) // 2
    tight = estimate(record, 2048, memory=Memory("ram", between, between, "RAM"))
    assert tight.verdict == "tight"
    small = estimate(record, 2048, memory=Memory("vram", plenty.typical - 1, 8 * GB, "GPU"))
    assert small.verdict == "won't fit"
    assert "GB" in small.detail
    assert json.loads(json.dumps(small.to_dict()))["verdict"] == "won't fit"  # JSON-safe
    longer = estimate(record, 4096, memory=plenty.memory)
    assert longer.kv_cache == 2 * plenty.kv_cache
    assert any("trained for 2048" in n for n in longer.notes)


def test_hf_models_are_estimated_from_their_config(tmp_path: Path) -> None:
    record = describe(make_hf_folder(tmp_path / "hf"))
    est = estimate(record, 1024, memory=Memory("ram", 64 * GB, 64 * GB, "RAM"))
    assert est.engine == "torch"
    assert est.kv_cache == 2 * 1024 * 2 * (16 + 16) * 2  # layers, ctx, kv heads, k+v dims, bf16
    with pytest.raises(UnsupportedModel, match="positive"):
        estimate(record, 0)


def test_available_memory_is_real() -> None:
    import psutil

    mem = available_memory()
    assert mem.available > 0 and mem.total >= mem.available
    if mem.kind == "ram":
        assert mem.total == psutil.virtual_memory().total


# A subprocess loads the bundled model through Fireside's own llama.cpp backend (xllamacpp,
# its prompt step, f16 KV cache for every slot, no flash attention), generates a few tokens
# and reports its peak RSS (VmHWM) minus its RSS just before the engine library is imported.
# VmHWM, not ru_maxrss: the latter survives execve, so a child of a big pytest process would
# report the parent's footprint as its own peak.
# Why that baseline: the bare interpreter is there whatever model runs, but importing the
# engine's libraries is part of the cost of running a model, and the estimate's runtime
# overhead includes it; measuring from before the import makes the two comparable.
MEASURE = r"""
import sys
import psutil
from models import describe
from runtime import GREEDY, BackendOptions
from runtime.llamacpp import LlamaCppBackend
before = psutil.Process().memory_info().rss
n_ctx, n_parallel = int(sys.argv[2]), int(sys.argv[3])
backend = LlamaCppBackend(describe(sys.argv[1]),
                          BackendOptions(n_ctx=n_ctx, n_threads=2, n_parallel=n_parallel))
info = backend.load()
assert info.parallel == n_parallel and info.context_length == n_ctx
chunks = list(backend.complete("The capital of France is", GREEDY.replace(max_tokens=8)))
assert chunks[-1].completion_tokens > 0
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024  # kB
print(peak - before)
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is read from Linux /proc")
@pytest.mark.parametrize(("n_ctx", "n_parallel"), [(2048, 1), (8192, 1), (4096, 4)])
def test_estimate_matches_a_real_load(n_ctx: int, n_parallel: int) -> None:
    record = Catalog().get("smollm2-135m")
    est = estimate(record, n_ctx, n_parallel=n_parallel)
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, record.path, str(n_ctx), str(n_parallel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = int(proc.stdout.strip().splitlines()[-1])
    ratio = est.typical / measured
    print(
        f"n_ctx={n_ctx} x {n_parallel}: estimate {est.typical / 1e6:.1f} MB, "
        f"measured {measured / 1e6:.1f} MB"
    )
    assert 0.85 <= ratio <= 1.15, (
        f"estimate {est.typical / 1e6:.1f} MB vs measured {measured / 1e6:.1f} MB "
        f"(ratio {ratio:.2f}) at n_ctx={n_ctx} x {n_parallel} slots"
    )
