"""Conversion: Hugging Face / PyTorch checkpoints to GGUF (and MLX, quant.mlx). No Qt.

``convert(source, to, out=None, progress=None, cancel=None)`` is the face; the output types
are in ``OUTPUT_TYPES`` and the architectures in ``supported_architectures()``. The K-quant
and Q4_0 types are quantized by ggml's own quantizer in xllamacpp's library, in llama.cpp's
mixes (``quant.kquant_rules``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.work import Progress

from .errors import ConversionError, NotEnoughSpace
from .types import CONVERTER_VERSION, OUTPUT_TYPES, OutputType, output_type

__all__ = [
    "CONVERTER_VERSION",
    "OUTPUT_TYPES",
    "ConversionError",
    "NotEnoughSpace",
    "OutputType",
    "convert",
    "output_type",
    "supported_architectures",
]


def convert(
    source: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    name: str | None = None,
    imatrix: Mapping[str, Any] | None = None,
) -> Path:
    """Convert a Hugging Face folder to GGUF ``to`` (``gguf-f16`` ... ``gguf-q4_k_m``).

    Unsupported or broken input is refused before any heavy work; a cancel (``cancel.is_set()``)
    or a failure removes every partial file. ``imatrix`` (GGUF tensor name -> one weight per
    column) guides the K-quant and Q4_0 types. Returns the output path.
    """
    from .to_gguf import convert as _convert

    return _convert(source, to, out, progress=progress, cancel=cancel, name=name, imatrix=imatrix)


def supported_architectures() -> tuple[str, ...]:
    from .arch import supported_architectures as _supported

    return _supported()
