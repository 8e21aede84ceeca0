"""What each conversion family needs installed, and the extra that installs it. Cheap (no
numpy, no converter imported), so the window can grey out what this machine cannot make
while it starts."""

from __future__ import annotations

import importlib.util

# family -> (the modules its converter imports, the extra that installs them, what it is)
NEEDS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "gguf": ((), "", ""),
    "mlx": (("mlx", "mlx_lm"), "fireside[mlx]", "MLX conversion"),
    "onnx": (
        ("onnxruntime_genai", "onnx_ir", "torch", "transformers"),
        "fireside[onnx,torch]",
        "ONNX conversion",
    ),
}


def family_of(to: str) -> str:
    """gguf, mlx or onnx, from an output type's name (``mlx-4bit``, ``onnx-int8``, else GGUF)."""
    head = str(to).strip().lower().split("-", 1)[0]
    return head if head in NEEDS else "gguf"


def missing(family: str) -> list[str]:
    """The modules the family's converter needs that are not installed."""
    return [m for m in NEEDS[family][0] if importlib.util.find_spec(m) is None]


def unavailable(to: str) -> str | None:
    """Why this machine cannot make output type ``to``, in plain words with the install
    command; None when it can."""
    family = family_of(to)
    absent = missing(family)
    if not absent:
        return None
    _, extra, what = NEEDS[family]
    which = "which is" if len(absent) == 1 else "which are"
    return f"{what} needs {', '.join(absent)}, {which} not installed: pip install '{extra}'"
