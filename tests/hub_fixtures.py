"""Fixtures shared by the download-queue and Discover/Downloads tests: a fake Hub on
127.0.0.1 serving real tiny GGUF files and an HF folder, with a private HF cache and home.

A test module takes them with ``pytest_plugins = ("hub_fixtures",)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_hub import FakeHub, tiny_gguf, tiny_hf_folder
from hub_data import GATED_REPO, GGUF_REPO, HF_REPO, HUGE_REPO, Q4, Q8, TB


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The repositories' contents, built once: real tiny GGUF files (one split in two) and
    a transformers folder."""
    d = tmp_path_factory.mktemp("served")
    gguf_files = {
        Q4: tiny_gguf(d / Q4, 15, seed=1)[0].read_bytes(),
        Q8: tiny_gguf(d / Q8, 7, seed=2)[0].read_bytes(),
        "README.md": b"# tiny\n",
    }
    for shard in tiny_gguf(d / "tiny-F16.gguf", 1, seed=4, split=True):
        gguf_files[shard.name] = shard.read_bytes()
    return {"gguf": gguf_files, "hf": tiny_hf_folder(d / "hf", seed=5)}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Online (the suite defaults to HF_HUB_OFFLINE=1), with a private HF cache and home."""
    import huggingface_hub.constants

    from models.hub import download as hub_download

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("FIRESIDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(hub_download, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    monkeypatch.setattr(hub_download, "PROGRESS_INTERVAL", 0.0)
    return tmp_path


@pytest.fixture
def fake_hub(env: Path, served, monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as hub:
        hub.add_repo(
            GGUF_REPO,
            served["gguf"],
            downloads=500,
            likes=7,
            tags=["gguf", "license:apache-2.0"],
        )
        hub.add_repo(HF_REPO, served["hf"], downloads=20, tags=["safetensors", "license:mit"])
        hub.add_repo(GATED_REPO, {Q4: served["gguf"][Q4]}, downloads=5, tags=["gguf"], gated=True)
        hub.add_repo(
            HUGE_REPO,
            {Q4: served["gguf"][Q4]},
            downloads=3,
            tags=["gguf"],
            listed_sizes={"huge-Q8_0.gguf": 400 * TB},
        )
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


@pytest.fixture(scope="session")
def served_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The repositories' contents, built once: real tiny GGUF files and an HF folder."""
    d = tmp_path_factory.mktemp("served")
    gguf_files = {
        Q4: tiny_gguf(d / Q4, 15, seed=1)[0].read_bytes(),
        Q8: tiny_gguf(d / Q8, 7, seed=2)[0].read_bytes(),
        "mmproj-tiny-f16.gguf": tiny_gguf(d / "mmproj.gguf", 1, seed=3, n=4096)[0].read_bytes(),
        "README.md": b"# tiny\n",
    }
    for shard in tiny_gguf(d / "tiny-F16.gguf", 1, seed=4, split=True):
        gguf_files[shard.name] = shard.read_bytes()
    hf = tiny_hf_folder(d / "hf", seed=5)
    hf_files = {
        **hf,
        "pytorch_model.bin": b"\0" * 5000,
        "README.md": b"# hf\n",
        "LICENSE.txt": b"license\n",
    }
    mlx_files = {**tiny_hf_folder(d / "mlx", seed=6), "README.md": b"# mlx\n"}
    return {"gguf": gguf_files, "hf": hf_files, "mlx": mlx_files}


@pytest.fixture
def hub(env: Path, served_files, monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as fake:
        fake.add_repo(GGUF_REPO, served_files["gguf"], downloads=500, likes=7, tags=["gguf"])
        fake.add_repo(
            "other/tiny-GGUF",
            {"o-Q4_0.gguf": served_files["gguf"][Q8]},
            downloads=9000,
            tags=["gguf"],
        )
        fake.add_repo("test/tiny-hf", served_files["hf"], downloads=20, tags=["safetensors"])
        fake.add_repo(
            "mlx-community/tiny-4bit",
            served_files["mlx"],
            downloads=40,
            tags=["mlx", "safetensors"],
            library="mlx",
        )
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake
