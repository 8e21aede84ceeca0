"""MLX conversions of the real SmolLM2 checkpoint for the tests, made once and cached.

Each conversion runs through ``quant.mlx.convert_mlx`` (the code under test) into a cache
folder keyed by the converter's own source, mlx-lm's version and the checkpoint, so a change
to the converter makes fresh conversions and an unchanged one reuses them (about 20 s each
on two cores otherwise). A file lock keeps parallel sessions from converting twice.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

from hf_checkpoint import locked

ROOT = Path(__file__).resolve().parents[1]


def _key(checkpoint: Path) -> str:
    h = hashlib.sha256()
    for f in ("quant/mlx.py", "quant/_mlx_convert.py"):
        h.update((ROOT / f).read_bytes())
    h.update(version("mlx-lm").encode())
    h.update(str(checkpoint.resolve()).encode())
    h.update(str((checkpoint / "model.safetensors").stat().st_mtime_ns).encode())
    return h.hexdigest()[:16]


def mlx_model(cache_dir: Path, checkpoint: Path, to: str, group_size: int | None = None) -> Path:
    """The checkpoint converted to ``to`` (mlx-bf16, mlx-8bit, mlx-4bit), from the cache."""
    from quant.mlx import convert_mlx

    folder = cache_dir / f"mlx-{_key(checkpoint)}"
    name = to if group_size is None else f"{to}-g{group_size}"
    final = folder / name
    with locked(folder.with_suffix(".lock")):
        if not (final / "config.json").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            convert_mlx(checkpoint, to, final, group_size=group_size)
    return final
