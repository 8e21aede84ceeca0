"""``fireside bench`` on a real family (perf marker: about two minutes on two cores): a Q8_0
conversion of the real SmolLM2 checkpoint run by llama.cpp and OpenVINO, and the checkpoint
itself by PyTorch, with the KL of the conversion measured by quant.quality against it.
Run: .venv/bin/python -m pytest tests/perf/test_bench_family.py -m perf -s
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models import Catalog, describe

pytestmark = pytest.mark.perf


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, FIRESIDE_HOME=str(tmp_path / "home"))


@pytest.fixture(scope="module")
def q8_gguf(cache_dir: Path, hf_checkpoint: Path) -> Path:
    from openvino_models import openvino_models

    return openvino_models(cache_dir, hf_checkpoint)[0]


def run(env: dict[str, str], *args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=timeout,
        env=env,
    )  # fmt: skip


def test_bench_runs_a_conversion_and_its_source_on_every_engine(
    env: dict[str, str], q8_gguf: Path, hf_checkpoint: Path
) -> None:
    """The real family: a Q8_0 conversion (llama.cpp and OpenVINO) and its source checkpoint
    (PyTorch), with KL measured by quant.quality against the source."""
    catalog = Catalog(Path(env["FIRESIDE_HOME"]) / "fireside.db")
    source = catalog.add(describe(hf_checkpoint).replace(id="smol-src"))
    gguf = catalog.add(describe(q8_gguf).replace(
        id="smol-q8", source="converted", provenance={"origin": source.path, "type": "gguf-q8_0"}
    ))  # fmt: skip
    catalog.close()
    out = run(env, "bench", gguf.id, "--rounds", "2", "--tokens", "64", "--parallel", "4",
              "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    table = run(env, "models", "show", gguf.id)
    print(table.stdout.split("tools:")[0])
    from app.commands.bench import render
    from runtime.bench_result import BenchResult

    result = json.loads(out.stdout)
    print(render(BenchResult.from_dict(result)))
    rows = {(r["engine"], r["model_id"]): r for r in result["rows"]}
    assert set(rows) == {("llama.cpp", "smol-q8"), ("openvino", "smol-q8"), ("torch", "smol-src")}
    for row in rows.values():
        assert row["error"] is None and len(row["rounds"]) == 2, row
        assert row["rounds"][0]["decode_tps"] > 0 and row["rounds"][0]["long_prompt_tokens"] > 250
    source_row = rows["torch", "smol-src"]
    assert source_row["kl"] == 0 and source_row["role"] == "source"
    for engine in ("llama.cpp", "openvino"):
        row = rows[engine, "smol-q8"]
        assert row["kl"] < 0.01 and row["top1"] > 0.9 and row["quality_note"] == "measured now"
