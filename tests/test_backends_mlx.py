"""MLX: conversion of the real checkpoint (quant.mlx) and the MLX backend (CPU MLX here).

MLX on this CPU decodes a few tokens per second, so generations here are a handful of
tokens; the quality comparison lives in test_backends_agreement.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from backend_contract import QUESTION, collect

from models import Cancelled, UnsupportedModel, describe
from quant import ConversionError
from runtime import GREEDY, BackendOptions, CancelToken
from runtime.errors import BackendUnavailable

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# -- conversion ----------------------------------------------------------------------------------
def test_convert_4bit_group_32_through_the_cli(hf_checkpoint, tmp_path, fresh_home):
    out = tmp_path / "smol-mlx-4bit"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "convert", str(hf_checkpoint), "--to", "mlx-4bit",
         "--group-size", "32", "-o", str(out), "--name", "Smol MLX"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env=dict(os.environ, FIRESIDE_HOME=str(fresh_home)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "added" in proc.stdout
    assert leftovers(tmp_path) == [], "the temporary work folder must be gone"
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["bits"] == 4 and config["quantization"]["group_size"] == 32
    assert config["rope_theta"] == 100000.0, "the RoPE base must be explicit for mlx-lm"
    assert not list(out.glob("*.py")) and not (out / "README.md").exists()
    listing = subprocess.run(
        [sys.executable, "-m", "app", "models", "list", "--json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env=dict(os.environ, FIRESIDE_HOME=str(fresh_home)),
    )  # fmt: skip
    record = next(r for r in json.loads(listing.stdout) if r["path"] == str(out.resolve()))
    assert record["format"] == "mlx" and record["source"] == "converted"
    assert record["name"] == "Smol MLX" and record["quantization"] == "4-bit g32"
    prov = record["provenance"]
    assert prov["type"] == "mlx-4bit" and prov["group_size"] == 32
    assert prov["origin"] == str(hf_checkpoint.resolve()) and prov["converter"].startswith(
        "fireside-mlx"
    )
    assert prov["quantized_layers"] == prov["linear_layers"] > 0


def test_cancel_stops_the_converter_and_keeps_nothing(hf_checkpoint, tmp_path):
    from quant.mlx import convert_mlx

    cancel = CancelToken()
    steps = []

    def progress(done, total):
        steps.append(done)
        if done >= 2:  # mlx-lm has started loading in the child
            cancel.set()

    with pytest.raises(Cancelled):
        convert_mlx(hf_checkpoint, "mlx-8bit", tmp_path / "out", progress=progress, cancel=cancel)
    assert steps[:3] == [0, 1, 2]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("to", "group", "match"),
    [
        ("mlx-3bit", None, "unknown MLX output type"),
        ("mlx-4bit", 48, "group size 48 is not supported"),
        ("mlx-bf16", 64, "quantized types only"),
    ],
)
def test_bad_options_are_refused_before_any_work(hf_checkpoint, tmp_path, to, group, match):
    from quant.mlx import convert_mlx

    with pytest.raises(ConversionError, match=match):
        convert_mlx(hf_checkpoint, to, tmp_path / "out", group_size=group)
    assert list(tmp_path.iterdir()) == []


def _copy_small_files(src: Path, dst: Path) -> None:
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file() and not f.name.startswith(".") and f.suffix != ".safetensors":
            shutil.copy(f, dst / f.name)


def test_unsupported_architecture_is_refused_before_any_work(hf_checkpoint, tmp_path):
    from quant.mlx import convert_mlx

    src = tmp_path / "odd"
    _copy_small_files(hf_checkpoint, src)
    os.symlink(hf_checkpoint / "model.safetensors", src / "model.safetensors")
    config = json.loads((src / "config.json").read_text())
    config["architectures"] = ["TotallyNewForCausalLM"]
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        UnsupportedModel, match="TotallyNewForCausalLM.*can convert: .*LlamaForCausalLM"
    ):
        convert_mlx(src, "mlx-8bit", tmp_path / "out")
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_pytorch_bin_weights_get_a_plain_answer(hf_checkpoint, tmp_path):
    from quant.mlx import convert_mlx

    src = tmp_path / "bin"
    _copy_small_files(hf_checkpoint, src)
    (src / "pytorch_model.bin").write_bytes(b"not opened by the check")
    with pytest.raises(UnsupportedModel, match="reads safetensors"):
        convert_mlx(src, "mlx-8bit", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_output_is_never_overwritten(hf_checkpoint, tmp_path):
    from quant.mlx import convert_mlx

    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="already exists"):
        convert_mlx(hf_checkpoint, "mlx-bf16", out)
    assert (out / "keep.txt").read_text() == "mine"


def test_config_is_made_explicit_for_mlx_lm():
    from quant.mlx import mlx_config

    cfg = {"rope_parameters": {"rope_theta": 5e5, "rope_type": "llama3", "factor": 8.0}}
    fixed = mlx_config(cfg)
    assert fixed["rope_theta"] == 5e5
    assert fixed["rope_scaling"] == {"rope_type": "llama3", "type": "llama3", "factor": 8.0}
    assert mlx_config({"rope_theta": 1e4}) == {"rope_theta": 1e4}
    phi4_mini = {"rope_parameters": {"rope_theta": 1e4, "partial_rotary_factor": 0.75}}
    assert mlx_config(phi4_mini)["partial_rotary_factor"] == 0.75
    # Gemma 3's per-layer-type parameters: the full layers' at the top, the sliding base apart
    per_layer = {
        "rope_parameters": {
            "full_attention": {"rope_theta": 1e6, "rope_type": "linear", "factor": 8.0},
            "sliding_attention": {"rope_theta": 1e4, "rope_type": "default"},
        }
    }
    fixed = mlx_config(per_layer)
    assert fixed["rope_theta"] == 1e6 and fixed["rope_local_base_freq"] == 1e4
    assert fixed["rope_scaling"] == {"rope_type": "linear", "type": "linear", "factor": 8.0}
    with pytest.raises(UnsupportedModel, match="per layer type"):
        mlx_config({"rope_parameters": {"sliding_attention": {"rope_theta": 1e4}}})


# -- the backend ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlx_bf16(cache_dir, hf_checkpoint):
    from mlx_models import mlx_model

    return mlx_model(cache_dir, hf_checkpoint, "mlx-bf16")


@pytest.fixture(scope="module")
def backend(mlx_bf16):
    from runtime.mlx_backend import MLXBackend

    record = describe(mlx_bf16).replace(format="mlx")
    b = MLXBackend(record, BackendOptions())
    steps = []
    info = b.load(lambda d, t: steps.append((d, t)))
    assert steps[-1] == (3, 3)
    assert (info.backend, info.device) == ("mlx", "cpu") and info.has_chat_template
    yield b
    b.unload()


@pytest.fixture(scope="module")
def greedy_answer(backend):
    return collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=7)))


def test_mlx_streams_the_answer_token_by_token(greedy_answer):
    text, chunks = greedy_answer
    assert text.startswith("The capital of France is")
    assert len([c for c in chunks if c.text]) >= 5
    last = chunks[-1]
    assert last.finish_reason == "length" and last.completion_tokens == 7
    assert last.timings is not None and last.timings.generation_tokens_per_s > 0


def test_mlx_prompt_matches_the_pytorch_rendering(backend, hf_checkpoint):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_checkpoint), local_files_only=True)
    text, add_bos = backend.render(QUESTION)
    assert text == tok.apply_chat_template(QUESTION, tokenize=False, add_generation_prompt=True)
    assert backend.tokenize(text, add_bos=add_bos) == tok.encode(text, add_special_tokens=False)


def test_mlx_stop_string(backend, greedy_answer):
    full, _ = greedy_answer
    stop = " France"
    text, chunks = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=7, stop=(stop,))))
    assert text == full[: full.index(stop)] and chunks[-1].finish_reason == "stop"


def test_mlx_cancel_between_tokens_then_the_cache_still_agrees(backend, greedy_answer):
    cancel = CancelToken()
    chunks = []
    for chunk in backend.stream(QUESTION, GREEDY.replace(max_tokens=50), cancel):
        chunks.append(chunk)
        if chunk.text:
            cancel.set()
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].completion_tokens <= 2
    # the next answer reuses the cached prompt and still gives the same greedy text
    again, _ = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=7)))
    assert again == greedy_answer[0]


def test_mlx_cancel_before_the_prompt(backend):
    cancel = CancelToken()
    cancel.set()
    _, chunks = collect(backend.stream(QUESTION, GREEDY, cancel))
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].completion_tokens == 0


def test_mlx_model_needs_to_be_asked_for_off_apple_silicon(mlx_bf16):
    from runtime.dispatch import apple_silicon, choose_backend

    record = describe(mlx_bf16).replace(format="mlx", name="smol-mlx")
    if apple_silicon():
        assert choose_backend(record) == "mlx"
    else:
        with pytest.raises(BackendUnavailable, match="--backend mlx"):
            choose_backend(record)
    assert choose_backend(record, "mlx") == "mlx"
    with pytest.raises(BackendUnavailable, match="cannot run mlx models"):
        choose_backend(record, "torch")
