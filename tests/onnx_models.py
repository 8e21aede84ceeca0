"""ONNX Runtime GenAI conversions of the real SmolLM2 checkpoint for the tests, made once and
cached.

Each conversion runs through ``quant.onnx.convert_onnx`` (the code under test) into a cache
folder keyed by the converter's own source, onnxruntime-genai's version and the checkpoint,
so a change to the converter makes fresh conversions and an unchanged one reuses them (about
10 s each on two cores otherwise). A file lock keeps parallel sessions from converting twice.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

from hf_checkpoint import locked

ROOT = Path(__file__).resolve().parents[1]


def _key(checkpoint: Path) -> str:
    h = hashlib.sha256()
    for f in ("quant/onnx.py", "quant/_onnx_build.py"):
        h.update((ROOT / f).read_bytes())
    h.update(version("onnxruntime-genai").encode())
    h.update(str(checkpoint.resolve()).encode())
    h.update(str((checkpoint / "model.safetensors").stat().st_mtime_ns).encode())
    return h.hexdigest()[:16]


def onnx_model(cache_dir: Path, checkpoint: Path, to: str = "onnx-int8") -> Path:
    """The checkpoint converted to ``to`` (onnx-int8, onnx-int4), from the cache."""
    from quant.onnx import convert_onnx

    folder = cache_dir / f"onnx-{_key(checkpoint)}"
    final = folder / to
    with locked(folder.with_suffix(".lock")):
        if not (final / "genai_config.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            convert_onnx(checkpoint, to, final)
    return final
