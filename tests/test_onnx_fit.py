"""`fireside models fit` on an ONNX Runtime GenAI folder: the estimate from genai_config.json
and the graph, against a real load through Fireside's ONNX backend (the real SmolLM2
checkpoint converted to onnx-int8 by the tests and cached)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models import describe
from models.fit import estimate

# Like tests/test_models_fit.py: a subprocess reports its peak RSS (VmHWM) minus its RSS
# just before the engine library is imported, after a load and a short (or long) prompt.
MEASURE = r"""
import sys
import psutil
from models import describe
from runtime import GREEDY, BackendOptions
before = psutil.Process().memory_info().rss
from runtime.onnx_backend import OnnxBackend
n_ctx, words = int(sys.argv[2]), int(sys.argv[3])
backend = OnnxBackend(describe(sys.argv[1]), BackendOptions(n_ctx=n_ctx, n_threads=2))
backend.load()
prompt = " ".join(f"word{i % 97}" for i in range(words)) if words else "The capital of France is"
chunks = list(backend.complete(prompt, GREEDY.replace(max_tokens=4)))
assert chunks[-1].completion_tokens > 0
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) * 1024  # kB
print(chunks[-1].prompt_tokens, peak - before)
"""


@pytest.fixture(scope="module")
def onnx_int8(cache_dir: Path, hf_checkpoint: Path) -> Path:
    from onnx_models import onnx_model

    return onnx_model(cache_dir, hf_checkpoint, "onnx-int8")


def measured(folder: Path, n_ctx: int, words: int = 0) -> tuple[int, int]:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), str(n_ctx), str(words)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    tokens, peak = proc.stdout.split()[-2:]
    return int(tokens), int(peak)


def test_the_shape_comes_from_the_folder(onnx_int8: Path) -> None:
    est = estimate(describe(onnx_int8), 2048)
    assert est.engine == "onnx" and est.kv_dtype == "f32"  # the builder's CPU graph
    # 30 layers x 3 KV heads x 64 x (key + value) x 2048 tokens x 4 bytes
    assert est.kv_cache == 30 * 3 * 64 * 2 * 2048 * 4
    table = 49152 * 576 * 4  # float32 embeddings, looked up only: counted at worst
    files = sum(f.stat().st_size for f in onnx_int8.iterdir() if f.suffix in (".onnx", ".data"))
    assert est.weights == files - table
    assert est.worst > est.typical + table
    assert any("token-embedding table" in n for n in est.notes)
    assert estimate(describe(onnx_int8)).n_ctx == 8192  # the backend's default context
    from models.onnx_fit import PROMPT_CHUNK
    from runtime.onnx_backend import PROMPT_CHUNK as BACKEND_CHUNK

    assert PROMPT_CHUNK == BACKEND_CHUNK


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is read from Linux /proc")
@pytest.mark.parametrize("n_ctx", [2048, 8192])
def test_estimate_matches_a_real_load(onnx_int8: Path, n_ctx: int) -> None:
    est = estimate(describe(onnx_int8), n_ctx)
    _, peak = measured(onnx_int8, n_ctx)
    print(f"onnx n_ctx={n_ctx}: estimate {est.typical / 1e6:.1f} MB, measured {peak / 1e6:.1f} MB")
    assert 0.85 <= est.typical / peak <= 1.15


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="VmHWM is read from Linux /proc")
def test_a_prompt_filling_the_context_stays_within_the_worst_case(onnx_int8: Path) -> None:
    est = estimate(describe(onnx_int8), 2048)
    tokens, peak = measured(onnx_int8, 2048, words=650)
    print(f"onnx {tokens}-token prompt: worst {est.worst / 1e6:.1f} MB, measured {peak / 1e6:.1f}")
    assert tokens > 1500
    assert est.typical < peak <= est.worst <= 1.4 * peak


def test_models_fit_on_an_onnx_folder_from_the_cli(onnx_int8: Path, tmp_path: Path) -> None:
    env = dict(os.environ, FIRESIDE_HOME=str(tmp_path / "home"))
    cli = [sys.executable, "-m", "app", "models"]
    imported = subprocess.run([*cli, "import", str(onnx_int8), "--link", "--json"],
                              capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    (record,) = json.loads(imported.stdout)
    out = subprocess.run([*cli, "fit", record["id"], "--ctx", "4096", "--json"],
                         capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    fit = json.loads(out.stdout)
    assert fit["engine"] == "onnx" and fit["n_ctx"] == 4096 and fit["verdict"] == "fits"
    assert fit["kv_cache"] == 30 * 3 * 64 * 2 * 4096 * 4
