"""The output types ``fireside convert --to`` accepts, and how each one is made."""

from __future__ import annotations

from dataclasses import dataclass

import gguf

CONVERTER_VERSION = "fireside-gguf 2"
FT = gguf.LlamaFileType


@dataclass(frozen=True)
class OutputType:
    name: str  # what the user types: gguf-q4_k_m
    label: str  # what the library shows: Q4_K_M
    file_type: FT  # general.file_type (llama_ftype)
    bits_per_weight: float  # roughly, for 2-D weights
    # Quantized per tensor by ggml (xllamacpp) in llama.cpp's mix ``label`` (quant.kquant_rules);
    # otherwise every 2-D weight is written in one type by our own writer.
    mixed: bool = False

    @property
    def needs_imatrix(self) -> bool:
        """Made only with an importance matrix (its mix says so: quant.kquant_rules)."""
        from .kquant_rules import MIXES

        return self.mixed and MIXES[self.label].needs_imatrix


OUTPUT_TYPES: dict[str, OutputType] = {
    t.name: t
    for t in (
        OutputType("gguf-f16", "F16", FT.MOSTLY_F16, 16.0),
        OutputType("gguf-bf16", "BF16", FT.MOSTLY_BF16, 16.0),
        OutputType("gguf-q8_0", "Q8_0", FT.MOSTLY_Q8_0, 8.5),
        OutputType("gguf-q6_k", "Q6_K", FT.MOSTLY_Q6_K, 6.5625, mixed=True),
        OutputType("gguf-q5_k_m", "Q5_K_M", FT.MOSTLY_Q5_K_M, 5.7, mixed=True),
        OutputType("gguf-q4_k_m", "Q4_K_M", FT.MOSTLY_Q4_K_M, 4.9, mixed=True),
        OutputType("gguf-q4_0", "Q4_0", FT.MOSTLY_Q4_0, 4.5, mixed=True),
        OutputType("gguf-iq4_xs", "IQ4_XS", FT.MOSTLY_IQ4_XS, 4.25, mixed=True),
        OutputType("gguf-q3_k_m", "Q3_K_M", FT.MOSTLY_Q3_K_M, 3.9, mixed=True),
        OutputType("gguf-q2_k", "Q2_K", FT.MOSTLY_Q2_K, 3.4, mixed=True),
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
