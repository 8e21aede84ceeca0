"""Turn a model file or folder into a ModelRecord (validated, not registered): which kind a
path is (a ``.gguf`` file, a split GGUF, a Hugging Face, MLX, ONNX or OpenVINO folder), the
walk of a folder holding several models (:func:`find_models`), and the details
``fireside models show`` prints."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile, ModelNotFound
from .gguf import SPLIT_PATTERN, is_gguf_file
from .gguf_model import describe_gguf, read_gguf_model
from .gguf_values import ArraySummary
from .hf import (
    CONFIG_FILE,
    PYTORCH_SUFFIXES,
    read_hf_config,
)
from .hf_folder import describe_folder, hf_chat_template
from .onnx_folder import describe_onnx_folder, is_onnx_folder
from .openvino_folder import describe_openvino_folder, is_openvino_folder
from .paths import canonical_path
from .records import ModelRecord

WEIGHT_SUFFIXES = (".safetensors", *PYTORCH_SUFFIXES)
MAX_WALK_DEPTH = 6


# -- entry points --------------------------------------------------------------------------------
def check_exists(path: Path) -> None:
    """Plain errors for paths that are missing, loops or unreadable."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InvalidModelFile(f"{path} is a link to something that does not exist") from None
        raise ModelNotFound(f"{path} does not exist") from None
    except PermissionError:
        raise InvalidModelFile(f"Fireside is not allowed to read {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidModelFile(
                f"{path} is a link that points back to itself (a loop)"
            ) from None
        raise InvalidModelFile(f"{path} cannot be read: {exc.strerror or exc}") from None
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise InvalidModelFile(f"Fireside is not allowed to read the folder {path}")


def kind_of(path: Path) -> str | None:
    """'gguf', 'folder-model' (HF/MLX: config.json; ONNX: genai_config.json; OpenVINO:
    openvino_model.xml), 'collection' (a folder), or None."""
    if is_onnx_folder(path) or is_openvino_folder(path):
        return "folder-model"
    if path.is_file():
        if path.suffix.lower() == ".gguf" or is_gguf_file(path):
            return "gguf"
        return None
    if path.is_dir():
        return "folder-model" if (path / CONFIG_FILE).is_file() else "collection"
    return None


def describe(path: str | Path, *, source: str = "imported") -> ModelRecord:
    """Validate one model at ``path`` and say what it is (nothing is registered).

    Raises InvalidModelFile for anything unusable, and for a folder holding several models
    (use :func:`find_models`, or ``models.import_model`` which registers each).
    """
    path = Path(path).expanduser()
    check_exists(path)
    kind = kind_of(path)
    if kind == "gguf":
        return describe_gguf(path, source)
    if kind == "folder-model" and is_onnx_folder(path):
        return describe_onnx_folder(path, source, str(canonical_path(path)))
    if kind == "folder-model" and is_openvino_folder(path):
        return describe_openvino_folder(path, source, str(canonical_path(path)))
    if kind == "folder-model":
        return describe_folder(path, source)
    if kind == "collection":
        found, _ = find_models(path)
        if len(found) == 1:
            return describe(found[0], source=source)
        if found:
            raise InvalidModelFile(
                f"{path} holds {len(found)} models; import the folder to add each of them"
            )
        _raise_empty(path)
    raise InvalidModelFile(
        f"{path.name} is not a model Fireside recognises (expected a .gguf file, or a folder "
        "with config.json and weights)"
    )


def _raise_empty(folder: Path) -> None:
    loose = _loose_weights(folder)
    if loose:
        raise InvalidModelFile(
            f"{folder} holds weights ({loose[0].name}) but no config.json; "
            "a Hugging Face model folder needs its config.json beside the weights"
        )
    raise InvalidModelFile(
        f"no models found in {folder} (looked for .gguf files and folders with config.json)"
    )


def _loose_weights(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)
    except OSError:
        return []


@dataclass
class WalkResult:
    found: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def find_models(
    root: str | Path, *, max_depth: int = MAX_WALK_DEPTH
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every model under ``root``: .gguf files (first parts of split ones) and model folders.

    Returns (found, skipped) where skipped lists (path, reason) for folders that could not be
    read. Links are followed, each real folder visited once, so link loops end.
    """
    root = Path(root).expanduser()
    result = WalkResult()
    seen: set[tuple[int, int]] = set()
    for path in _walk(root, 0, max_depth, seen, result):
        result.found.append(path)
    return result.found, result.skipped


def _walk(
    folder: Path, depth: int, max_depth: int, seen: set[tuple[int, int]], result: WalkResult
) -> Iterator[Path]:
    try:
        st = folder.stat()
    except OSError as exc:
        result.skipped.append((folder, exc.strerror or str(exc)))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return
    seen.add(key)
    if (
        is_onnx_folder(folder)
        or is_openvino_folder(folder)
        or ((folder / CONFIG_FILE).is_file() and _has_weights(folder))
    ):
        yield folder
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        if depth == 0:
            raise InvalidModelFile(
                f"Fireside is not allowed to read the folder {folder}"
                if isinstance(exc, PermissionError)
                else f"{folder} cannot be read: {exc.strerror or exc}"
            ) from None
        result.skipped.append((folder, exc.strerror or str(exc)))
        return
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError as exc:
            result.skipped.append((entry, exc.strerror or str(exc)))
            continue
        if is_file and entry.suffix.lower() == ".gguf":
            m = SPLIT_PATTERN.match(entry.name)
            if m and int(m.group("no")) != 1:
                continue  # a later part: found through its first part
            yield entry
        elif is_dir and depth < max_depth:
            subfolders.append(entry)
    for sub in subfolders:
        yield from _walk(sub, depth + 1, max_depth, seen, result)


def _has_weights(folder: Path) -> bool:
    try:
        return any(p.suffix.lower() in WEIGHT_SUFFIXES for p in folder.iterdir())
    except OSError:
        return False


# -- details for `models show` -------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, ArraySummary):
        from .gguf_values import TYPE_NAMES

        return f"[{value.count} {TYPE_NAMES[value.item_type]} values]"
    if isinstance(value, list) and len(value) > 16:
        return [*value[:16], f"... {len(value) - 16} more"]
    return value


def model_details(record: ModelRecord) -> dict[str, Any]:
    """Everything worth showing about a registered model: metadata, chat template, files."""
    path = Path(record.path)
    details: dict[str, Any] = {"metadata": {}, "chat_template": None, "files": []}
    if record.format in ("gguf", "gguf-split"):
        model = read_gguf_model(path)
        details["metadata"] = {
            k: _plain(v) for k, v in model.metadata.items() if k != "tokenizer.chat_template"
        }
        details["chat_template"] = model.first.chat_template
        details["tensors"] = sum(len(p.tensors) for p in model.parts)
        details["files"] = [{"path": str(p.path), "size": p.file_size} for p in model.parts]
    elif record.format in ("hf-safetensors", "hf-pytorch", "mlx"):
        details["metadata"] = {k: _plain(v) for k, v in read_hf_config(path).items()}
        details["chat_template"] = hf_chat_template(path)
        files = []
        for f in sorted(path.iterdir()):
            if f.is_file():
                files.append({"path": str(f), "size": f.stat().st_size})
        details["files"] = files
    return details
