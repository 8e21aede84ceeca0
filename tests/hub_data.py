"""Names and paths shared by the download-queue and Discover/Downloads tests (the fixtures
themselves are in hub_fixtures.py, taken with ``pytest_plugins = ("hub_fixtures",)``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

GGUF_REPO = "test/tiny-GGUF"
HF_REPO = "test/tiny-hf"
GATED_REPO = "test/gated-GGUF"
HUGE_REPO = "test/huge-GGUF"
Q8 = "tiny-Q8_0.gguf"
Q4 = "tiny-Q4_K_M.gguf"
TB = 1000**4


def cache_folder(env: Path, repo: str = GGUF_REPO) -> Path:
    return env / "hf-cache" / ("models--" + repo.replace("/", "--"))


def partial_of(env: Path, data: bytes, repo: str = GGUF_REPO) -> Path:
    """Where the download keeps a file being fetched."""
    sha = hashlib.sha256(data).hexdigest()
    return cache_folder(env, repo) / "blobs" / f"{sha}.incomplete"


def blob_of(env: Path, data: bytes, repo: str = GGUF_REPO) -> Path:
    return cache_folder(env, repo) / "blobs" / hashlib.sha256(data).hexdigest()


def downloaded(env: Path) -> list:
    """The library's downloaded records, read from the test home's database."""
    from models import Catalog

    return [r for r in Catalog(env / "home" / "fireside.db").list() if r.source == "downloaded"]
