"""Models the user already has in other apps' stores, registered in place (never moved).

- the Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
  ``$XDG_CACHE_HOME/huggingface/hub`` or ``~/.cache/huggingface/hub``): ``models--ORG--NAME/
  snapshots/REV/`` folders, the revision taken from ``refs/main`` where present;
- LM Studio's models folders (``~/.lmstudio/models``, ``~/.cache/lm-studio/models``);
- Ollama's store (``OLLAMA_MODELS``, else ``~/.ollama/models``): manifests name the GGUF blob
  of each model.

Everything found is registered with source ``discovered`` and ``owned`` false, so removing it
from the library never deletes the files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog
from .errors import FiresideError
from .hub.config import cache_dir as hf_cache_dir
from .recognize import describe, find_models
from .records import ModelRecord, slugify

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_HOST = "registry.ollama.ai"
MAX_MANIFEST_BYTES = 1024 * 1024


def lmstudio_dirs() -> list[Path]:
    home = Path.home()
    return [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]


def ollama_dir() -> Path:
    explicit = os.environ.get("OLLAMA_MODELS")
    return Path(explicit).expanduser() if explicit else Path.home() / ".ollama" / "models"


def store_roots() -> list[Path]:
    """Every other app's store this machine may have (existing or not)."""
    return [hf_cache_dir(), *lmstudio_dirs(), ollama_dir()]


@dataclass(frozen=True)
class Found:
    """A model in a store, before it is validated."""

    path: Path
    store: str
    name: str | None = None
    provenance: dict[str, str] = field(default_factory=dict)


@dataclass
class ScanResult:
    added: list[ModelRecord] = field(default_factory=list)
    known: list[ModelRecord] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    searched: list[str] = field(default_factory=list)


# -- Hugging Face cache -----------------------------------------------------------------------
def _hf_snapshot(repo_dir: Path) -> tuple[Path, str] | None:
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / "main"
    try:
        if ref.is_file():
            rev = ref.read_text(encoding="utf-8").strip()
            if rev and (snapshots / rev).is_dir():
                return snapshots / rev, rev
        candidates = [p for p in snapshots.iterdir() if p.is_dir()]
    except OSError:
        return None
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    return newest, newest.name


def find_in_hf_cache(root: Path, skipped: list[tuple[str, str]]) -> Iterator[Found]:
    try:
        repos = sorted(p for p in root.iterdir() if p.name.startswith("models--"))
    except OSError:
        return
    for repo_dir in repos:
        repo_id = repo_dir.name.removeprefix("models--").replace("--", "/")
        snap = _hf_snapshot(repo_dir)
        if snap is None:
            continue
        folder, rev = snap
        found, bad = find_models(folder, max_depth=3)
        skipped.extend((str(p), why) for p, why in bad)
        for path in found:
            name = repo_id if path.is_dir() and path == folder else None
            yield Found(
                path,
                "huggingface",
                name,
                {"repo": f"{repo_id}@{rev}", "store": "huggingface"},
            )


# -- LM Studio ---------------------------------------------------------------------------------
def find_in_lmstudio(root: Path, skipped: list[tuple[str, str]]) -> Iterator[Found]:
    found, bad = find_models(root, max_depth=4)
    skipped.extend((str(p), why) for p, why in bad)
    for path in found:
        try:
            rel = path.relative_to(root)
        except ValueError:
            rel = Path(path.name)
        yield Found(path, "lmstudio", None, {"store": "lmstudio", "lmstudio": str(rel)})


# -- Ollama ------------------------------------------------------------------------------------
def _ollama_name(rel: Path) -> str:
    parts = rel.parts  # host / namespace / model / tag
    if len(parts) >= 4:
        host, namespace, model, tag = parts[-4:]
        prefix = "" if host == OLLAMA_DEFAULT_HOST else f"{host}/"
        if namespace != "library" or prefix:
            prefix += f"{namespace}/"
        return f"{prefix}{model}:{tag}"
    return ":".join(parts)


def find_in_ollama(root: Path, skipped: list[tuple[str, str]]) -> Iterator[Found]:
    manifests = root / "manifests"
    blobs = root / "blobs"
    if not manifests.is_dir():
        return
    for dirpath, _dirs, files in os.walk(manifests):
        for fname in sorted(files):
            mpath = Path(dirpath) / fname
            try:
                if mpath.stat().st_size > MAX_MANIFEST_BYTES:
                    raise ValueError("the manifest is too large")
                manifest = json.loads(mpath.read_text(encoding="utf-8"))
                layers = manifest.get("layers") if isinstance(manifest, dict) else None
                if not isinstance(layers, list):
                    raise ValueError("the manifest has no layers")
            except (OSError, ValueError) as exc:
                skipped.append((str(mpath), f"unreadable Ollama manifest ({exc})"))
                continue
            digest = next(
                (
                    layer.get("digest")
                    for layer in layers
                    if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_LAYER
                ),
                None,
            )
            name = _ollama_name(mpath.relative_to(manifests))
            if not isinstance(digest, str) or not digest.startswith("sha256:"):
                skipped.append((str(mpath), f"the Ollama model {name} names no model file"))
                continue
            hexdigest = digest.removeprefix("sha256:")
            if not hexdigest.isalnum():
                skipped.append((str(mpath), f"the Ollama model {name} has a malformed digest"))
                continue
            blob = blobs / f"sha256-{hexdigest}"
            if not blob.is_file():
                skipped.append((str(blob), f"the file of the Ollama model {name} is missing"))
                continue
            yield Found(
                blob,
                "ollama",
                name,
                {"store": "ollama", "ollama": name, "sha256": hexdigest},
            )


# -- scanning -----------------------------------------------------------------------------------
def discover() -> tuple[list[Found], list[tuple[str, str]], list[str]]:
    """Every model in every store present: (found, skipped, the store folders searched)."""
    found: list[Found] = []
    skipped: list[tuple[str, str]] = []
    searched: list[str] = []
    hf = hf_cache_dir()
    if hf.is_dir():
        searched.append(str(hf))
        found.extend(find_in_hf_cache(hf, skipped))
    for root in lmstudio_dirs():
        if root.is_dir():
            searched.append(str(root))
            found.extend(find_in_lmstudio(root, skipped))
    oll = ollama_dir()
    if oll.is_dir():
        searched.append(str(oll))
        found.extend(find_in_ollama(oll, skipped))
    return found, skipped, searched


def scan(catalog: Catalog | None = None) -> ScanResult:
    """Find the models in other apps' stores and register them in place (source 'discovered')."""
    catalog = catalog or Catalog()
    found, skipped, searched = discover()
    result = ScanResult(skipped=list(skipped), searched=searched)
    for item in found:
        existing = catalog.find_by_path(item.path)
        if existing is not None:
            result.known.append(existing)
            continue
        try:
            record = describe(item.path, source="discovered")
        except FiresideError as exc:
            result.skipped.append((str(item.path), str(exc)))
            continue
        changes: dict = {
            "owned": False,
            "provenance": {**record.provenance, **item.provenance},
        }
        if item.name:
            changes["name"] = item.name
            changes["id"] = slugify(item.name.split("/")[-1])
        record = record.replace(**changes)
        result.added.append(catalog.add(record))
    return result
