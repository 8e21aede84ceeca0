"""`scan`: models in the Hugging Face cache, LM Studio and Ollama, registered in place.

The stores are laid out here the way those apps lay them out (HF cache: snapshot files that
are symlinks into blobs/, refs/main naming the revision; Ollama: manifests naming sha256 blobs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from model_files import llama_gguf, make_hf_folder, make_split

import models
from models import Catalog
from models.stores import hf_cache_dir, ollama_dir, scan


@pytest.fixture
def home(tmp_path: Path, fresh_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    user = tmp_path / "user"
    user.mkdir()
    monkeypatch.setenv("HOME", str(user))
    for var in (
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "OLLAMA_MODELS",
    ):
        monkeypatch.delenv(var, raising=False)
    return user


def hf_repo(cache: Path, repo: str, rev: str, files: dict[str, bytes]) -> Path:
    """A repo in the HF cache layout: blobs by hash, snapshot entries symlinked to them."""
    repo_dir = cache / f"models--{repo.replace('/', '--')}"
    snap = repo_dir / "snapshots" / rev
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / name).symlink_to(Path("../../blobs") / blob.name)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(rev)
    return snap


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def ollama_model(root: Path, name: str, tag: str, gguf: bytes) -> Path:
    digest = hashlib.sha256(gguf).hexdigest()
    blob = root / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(gguf)
    manifest = root / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "layers": [
                    {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:00"},
                    {
                        "mediaType": "application/vnd.ollama.image.model",
                        "digest": f"sha256:{digest}",
                    },
                ],
            }
        )
    )
    return blob


def test_store_locations_follow_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert hf_cache_dir() == home / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(home / "hfhome"))
    assert hf_cache_dir() == home / "hfhome" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hubcache"))
    assert hf_cache_dir() == home / "hubcache"
    assert ollama_dir() == home / ".ollama" / "models"
    monkeypatch.setenv("OLLAMA_MODELS", str(home / "oll"))
    assert ollama_dir() == home / "oll"


def test_scan_registers_every_store_in_place(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Hugging Face cache, through HF_HOME: one HF folder repo, one GGUF repo with a split model.
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    work = tmp_path / "work"
    hf_files = folder_bytes(make_hf_folder(work / "hf"))
    snap = hf_repo(home / "hf" / "hub", "org/Tiny-Llama", "abc123", hf_files)
    split = make_split(work / "split", count=2, prefix="Big-Q4")
    gguf_snap = hf_repo(
        home / "hf" / "hub", "org/Big-GGUF", "def456", {p.name: p.read_bytes() for p in split}
    )
    # LM Studio, both folders it has used.
    lms = llama_gguf(home / ".lmstudio" / "models" / "pub" / "repo" / "lms.gguf", name="lms")
    lms_old = llama_gguf(home / ".cache" / "lm-studio" / "models" / "p" / "r" / "old.gguf")
    # Ollama, through OLLAMA_MODELS.
    monkeypatch.setenv("OLLAMA_MODELS", str(home / "oll"))
    blob = ollama_model(home / "oll", "tiny", "latest", llama_gguf(work / "o.gguf").read_bytes())

    catalog = Catalog()
    before = {r.id for r in catalog.list()}
    stat_before = {p: p.stat().st_mtime_ns for p in (lms, lms_old, blob)}
    result = scan(catalog)
    assert result.skipped == []
    by_path = {r.path: r for r in result.added}
    assert set(by_path) == {
        str(snap),
        str(gguf_snap / split[0].name),
        str(lms),
        str(lms_old),
        str(blob),
    }
    assert all(r.source == "discovered" and not r.owned for r in result.added)
    hf = by_path[str(snap)]
    assert hf.name == "org/Tiny-Llama" and hf.provenance["repo"] == "org/Tiny-Llama@abc123"
    assert by_path[str(gguf_snap / split[0].name)].format == "gguf-split"
    oll = by_path[str(blob)]
    assert oll.name == "tiny:latest" and oll.format == "gguf"
    assert oll.provenance["sha256"] == blob.name.removeprefix("sha256-")
    assert {r.id for r in catalog.list()} == before | {r.id for r in result.added}

    # A second scan finds the same models and adds nothing.
    again = scan(catalog)
    assert again.added == [] and len(again.known) == 5
    # Removing a discovered model unregisters it and leaves its files alone.
    removal = models.remove_model(oll.id, catalog=catalog)
    assert not removal.deleted_files and blob.is_file()
    assert {p: p.stat().st_mtime_ns for p in (lms, lms_old, blob)} == stat_before
    assert all(p.exists() for p in (snap / "config.json", gguf_snap / split[1].name))


def test_scan_skips_what_it_cannot_use(home: Path, tmp_path: Path) -> None:
    oll = home / ".ollama" / "models"
    (oll / "manifests" / "registry.ollama.ai" / "library" / "broken").mkdir(parents=True)
    (oll / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest").write_text("{")
    ollama_model(oll, "gone", "1b", b"GGUF" + b"\0" * 40)
    for blob in (oll / "blobs").iterdir():
        blob.unlink()
    ollama_model(oll, "corrupt", "1b", b"GGUF\x03\0\0\0" + b"\xff" * 16)
    result = scan(Catalog())
    assert result.added == []
    reasons = " | ".join(why for _, why in result.skipped)
    assert "unreadable Ollama manifest" in reasons
    assert "file of the Ollama model gone:1b is missing" in reasons
    assert "corrupt" in reasons or "truncated" in reasons


def test_scan_with_no_stores(home: Path) -> None:
    result = scan(Catalog())
    assert result.searched == [] and result.added == []


def test_an_import_from_a_store_is_linked_by_default(home: Path) -> None:
    inside = llama_gguf(home / ".lmstudio" / "models" / "a" / "b" / "m.gguf")
    (rec,) = models.import_model(inside, catalog=Catalog())
    assert rec.provenance["mode"] == "link" and not rec.owned and rec.path == str(inside)
