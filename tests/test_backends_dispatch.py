"""Dispatch (format x machine x override), install hints, and ``fireside doctor``."""

from __future__ import annotations

import json

import pytest

from models import ModelRecord
from runtime import dispatch
from runtime.dispatch import BACKENDS, BackendSpec, choose_backend, plan
from runtime.errors import BackendUnavailable


def record(fmt: str, name: str = "test-model") -> ModelRecord:
    return ModelRecord(id=name, name=name, format=fmt, path=f"/nowhere/{name}", source="imported")


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("gguf", "llama.cpp"), ("gguf-split", "llama.cpp"), ("hf-safetensors", "torch"),
     ("hf-pytorch", "torch")],
)  # fmt: skip
def test_format_decides_the_engine(fmt, expected):
    assert choose_backend(record(fmt)) == expected


def test_mlx_runs_by_default_only_on_apple_silicon(monkeypatch):
    monkeypatch.setattr(dispatch, "apple_silicon", lambda: False)
    with pytest.raises(BackendUnavailable, match="--backend mlx") as err:
        choose_backend(record("mlx", "smol-mlx"))
    assert "Apple Silicon" in str(err.value) and "smol-mlx" in str(err.value)
    assert choose_backend(record("mlx"), "mlx") == "mlx"
    monkeypatch.setattr(dispatch, "apple_silicon", lambda: True)
    assert choose_backend(record("mlx")) == "mlx"


@pytest.mark.parametrize("alias", ["torch", "pytorch", "PyTorch", " torch "])
def test_override_names_and_aliases(alias):
    assert choose_backend(record("hf-safetensors"), alias) == "torch"


def test_override_that_cannot_run_the_format_says_what_can():
    with pytest.raises(BackendUnavailable, match=r"cannot run gguf models.*llama\.cpp"):
        choose_backend(record("gguf"), "torch")
    with pytest.raises(BackendUnavailable, match="unknown backend 'vulkan'; known:"):
        choose_backend(record("gguf"), "vulkan")


def test_unknown_format_is_a_plain_error():
    with pytest.raises(BackendUnavailable, match="no backend runs models in the 'tflite' format"):
        choose_backend(record("tflite"))


def test_missing_backend_names_the_extra_to_install(monkeypatch):
    """A registered engine whose library is absent: the message says what to pip install."""
    spec = BackendSpec("runtime.torch_backend", "TorchBackend", ("fireside_no_such_module",),
                       "torch", "Hugging Face folders")  # fmt: skip
    monkeypatch.setitem(BACKENDS, "torch", spec)
    with pytest.raises(BackendUnavailable) as err:
        choose_backend(record("hf-safetensors", "my-hf"))
    text = str(err.value)
    assert "my-hf needs the torch backend" in text
    assert "fireside_no_such_module" in text and "pip install 'fireside[torch]'" in text
    dispatch.probe.cache_clear()
    try:
        choice = plan(record("hf-safetensors"))
        assert choice.backend is None and "fireside[torch]" in choice.note
    finally:
        dispatch.probe.cache_clear()


def test_plan_says_backend_and_device():
    import torch

    choice = plan(record("hf-safetensors"))
    mps = getattr(torch.backends, "mps", None)
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if mps is not None and mps.is_available()
        else "cpu"
    )
    assert choice.backend == "torch" and choice.device == expected
    assert plan(record("gguf")).backend == "llama.cpp"


def test_doctor_reports_machine_engines_and_models(fresh_home, capsys):
    from app.cli import main

    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["memory"]["total_bytes"] > 0
    assert report["cpu"]["logical_cores"] >= 1
    engines = {b["backend"]: b for b in report["backends"]}
    assert {"llama.cpp", "torch", "mlx"} <= set(engines)
    assert engines["torch"]["usable"] and "cpu" in engines["torch"]["devices"]
    assert engines["llama.cpp"]["usable"]
    bundled = next(m for m in report["models"] if m["format"] == "gguf")
    assert bundled["backend"] == "llama.cpp" and bundled["device"] in ("cpu", "gpu")

    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    for heading in ("Machine", "Engines", "Models", "CUDA:", "MPS:", "Metal:", "Memory:"):
        assert heading in text
    assert "llama.cpp on" in text


def test_doctor_says_why_an_engine_is_missing(fresh_home, capsys, monkeypatch):
    from app.cli import main

    spec = BackendSpec("runtime.mlx_backend", "MLXBackend", ("fireside_absent_mlx",), "mlx",
                       "MLX folders")  # fmt: skip
    monkeypatch.setitem(BACKENDS, "mlx", spec)
    dispatch.probe.cache_clear()
    try:
        assert main(["doctor"]) == 0
    finally:
        dispatch.probe.cache_clear()
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("mlx"))
    assert "not installed" in line and "pip install 'fireside[mlx]'" in line
