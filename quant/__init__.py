"""Conversion: Hugging Face / PyTorch checkpoints to GGUF, MLX or ONNX. No Qt.

The face every caller uses is ``convert_into_library(source, to, catalog=..., out=None,
name=None, options=Options(...), progress=..., cancel=...)``: the source checked before any
heavy work, converted, measured against the source, registered with its provenance; it
returns ``Converted`` (the record, the quality report). ``check`` and ``expected_size`` say
beforehand whether a source can become a type and how big it will be; ``target`` parses an
output type and ``TARGETS`` lists them all (GGUF ``gguf-q4_k_m`` ..., MLX ``mlx-4bit`` ...,
ONNX ``onnx-int8``/``onnx-int4``). ``convert`` writes a GGUF file only (no record); the
K-quant and Q4_0 types are quantized by ggml's own quantizer in xllamacpp's library, in
llama.cpp's mixes (``quant.kquant_rules``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.work import Progress

from .errors import ConversionError, NotEnoughSpace

if TYPE_CHECKING:  # the names below load on first use: importing quant stays cheap
    from .pipeline import (
        Converted,
        Options,
        check,
        convert_into_library,
        expected_size,
        library_output,
        measure,
        remove_partials,
        write,
    )
    from .targets import TARGETS, Target, target
    from .types import CONVERTER_VERSION, OUTPUT_TYPES, OutputType, output_type

_LAZY = {
    **dict.fromkeys(
        ("Converted", "Options", "check", "convert_into_library", "expected_size",
         "library_output", "measure", "remove_partials", "write"),
        ".pipeline",
    ),
    **dict.fromkeys(("TARGETS", "Target", "target"), ".targets"),
    **dict.fromkeys(("CONVERTER_VERSION", "OUTPUT_TYPES", "OutputType", "output_type"), ".types"),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    """The face's names, imported when first asked for (numpy, gguf and the converters'
    modules load then, not when a light caller such as ``quant.needs`` is imported)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "CONVERTER_VERSION",
    "OUTPUT_TYPES",
    "TARGETS",
    "ConversionError",
    "Converted",
    "NotEnoughSpace",
    "Options",
    "OutputType",
    "Target",
    "check",
    "convert",
    "convert_into_library",
    "expected_size",
    "library_output",
    "measure",
    "output_type",
    "remove_partials",
    "supported_architectures",
    "target",
    "write",
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
    """Write the Hugging Face folder as a GGUF of type ``to`` (``gguf-f16`` ... ``gguf-q4_k_m``)
    at ``out``, nothing more (no record, no report: see ``convert_into_library``).

    Unsupported or broken input is refused before any heavy work; a cancel (``cancel.is_set()``)
    or a failure removes every partial file. ``imatrix`` (GGUF tensor name -> one weight per
    column) guides the K-quant and Q4_0 types. Returns the output path.
    """
    from .to_gguf import convert as _convert

    return _convert(source, to, out, progress=progress, cancel=cancel, name=name, imatrix=imatrix)


def supported_architectures() -> tuple[str, ...]:
    from .arch import supported_architectures as _supported

    return _supported()
