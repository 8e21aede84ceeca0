"""SHA-256 hashes of a model folder's files, recorded at import or conversion and checked
before a load.

Some runtimes never check their weights (ONNX Runtime GenAI and OpenVINO both load random
bytes in a weights file silently and answer with garbage), so the library records a hash of
every file of such a folder in ``provenance["files"]`` and the backend verifies them first.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import InvalidModelFile

HASH_CHUNK = 8 * 1024 * 1024
# Formats whose runtime never checks its weights: their files are hashed at import.
HASHED_FORMATS = ("onnx", "openvino")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def file_hashes(folder: str | Path) -> dict[str, str]:
    """SHA-256 of every file of the folder, by name (the shape ``provenance["files"]`` has)."""
    folder = Path(folder)
    return {
        f.name: sha256_file(f)
        for f in sorted(folder.iterdir())
        if f.is_file() and not f.name.startswith(".")
    }


def verify_hashes(folder: str | Path, expected: dict[str, str]) -> None:
    """Raise InvalidModelFile naming each recorded file that is missing or changed."""
    folder = Path(folder)
    missing, changed = [], []
    for name, digest in sorted(expected.items()):
        f = folder / name
        if not f.is_file():
            missing.append(name)
        elif sha256_file(f) != digest:
            changed.append(name)
    if missing:
        raise InvalidModelFile(
            f"{folder.name} is incomplete: {', '.join(missing)} went missing since the model "
            "was added to the library"
        )
    if changed:
        raise InvalidModelFile(
            f"{', '.join(changed)} in {folder.name} changed since the model was added to the "
            "library (its contents no longer match the recorded hash): the file is damaged or "
            "was replaced; convert or import the model again"
        )


def verify_recorded(folder: str | Path, provenance: dict) -> None:
    """Verify the hashes a record's provenance holds (nothing to do when none were recorded)."""
    expected = provenance.get("files")
    if isinstance(expected, dict) and expected:
        verify_hashes(folder, expected)
