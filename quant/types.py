"""The output types ``fireside convert --to`` accepts, and how each one is made."""

from __future__ import annotations

from dataclasses import dataclass

CONVERTER_VERSION = "fireside-gguf 1"


@dataclass(frozen=True)
class OutputType:
    name: str  # what the user types: gguf-q4_k_m
    label: str  # what the library shows: Q4_K_M
    direct: bool  # written by our own writer (True) or by llama.cpp's quantizer (False)
    bits_per_weight: float  # for the free-space estimate of 2-D weights
    llama_ftype: int | None = None  # llama_ftype for llama_model_quantize


# llama_ftype values (llama.h): stable across llama.cpp releases.
OUTPUT_TYPES: dict[str, OutputType] = {
    t.name: t
    for t in (
        OutputType("gguf-f16", "F16", True, 16.0),
        OutputType("gguf-bf16", "BF16", True, 16.0),
        OutputType("gguf-q8_0", "Q8_0", True, 8.5),
        OutputType("gguf-q6_k", "Q6_K", False, 6.5625, 18),
        OutputType("gguf-q5_k_m", "Q5_K_M", False, 5.7, 17),
        OutputType("gguf-q4_k_m", "Q4_K_M", False, 4.9, 15),
        OutputType("gguf-q4_0", "Q4_0", False, 4.5, 2),
    )
}


def output_type(name: str) -> OutputType:
    from .errors import ConversionError

    key = name.strip().lower()
    if not key.startswith("gguf-"):
        key = f"gguf-{key}"
    if key not in OUTPUT_TYPES:
        raise ConversionError(
            f"unknown output type {name!r}; choose one of: {', '.join(OUTPUT_TYPES)}"
        )
    return OUTPUT_TYPES[key]
