"""Every output type a conversion can make, in one table: GGUF (our own writer), MLX (mlx-lm)
and ONNX (onnxruntime-genai's model builder). The CLI's ``--to``, its help and the window's
choices all read it; what each family needs installed is said here too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionError
from .mlx import MLX_TYPES
from .needs import NEEDS, missing, unavailable
from .onnx import ONNX_TYPES
from .types import OUTPUT_TYPES

FAMILIES = tuple(NEEDS)

# OpenVINO IR export is left out: its exporter (optimum-intel) pins transformers < 5.6 and
# huggingface-hub < 1.22 and pulls torchvision, which breaks our CPU torch pin. OpenVINO GenAI
# reads F16/Q8_0/Q4_0 GGUF files itself, so the GGUF we make already runs on it.
NO_OPENVINO_EXPORT = (
    "Fireside does not convert to OpenVINO's own format: its exporter needs older versions of "
    "transformers and huggingface-hub than Fireside uses. OpenVINO runs GGUF files directly: "
    "convert with --to gguf-q8_0 (or gguf-f16) and chat with --backend openvino"
)


@dataclass(frozen=True)
class Target:
    name: str  # what the user types: gguf-q4_k_m, mlx-4bit, onnx-int8
    family: str  # gguf, mlx or onnx: which converter makes it, and the library's format
    label: str  # what the library shows: Q4_K_M, MLX 4-bit, ONNX int8
    bits_per_weight: float | None  # roughly, for the 2-D weights (None: unquantized MLX)

    @property
    def suffix(self) -> str:
        """The output's file suffix (MLX and ONNX outputs are folders)."""
        return ".gguf" if self.family == "gguf" else ""

    def beside(self, folder: Path) -> Path:
        """Where the conversion of ``folder`` goes when no output is named: next to it,
        ``NAME-Q4_K_M.gguf``, ``NAME-MLX-4bit``, ``NAME-ONNX-int8``."""
        tag = (
            self.label
            if self.family == "gguf"
            else f"{self.family.upper()}-{self.name.split('-', 1)[1]}"
        )
        return folder.parent / f"{folder.name}-{tag}{self.suffix}"

    def missing(self) -> list[str]:
        """The modules its converter needs that are not installed."""
        return missing(self.family)

    def unavailable(self) -> str | None:
        """Why this machine cannot make it, in plain words with the install command; None
        when it can."""
        return unavailable(self.name)


def _table() -> dict[str, Target]:
    table = {
        t.name: Target(t.name, "gguf", t.label, t.bits_per_weight) for t in OUTPUT_TYPES.values()
    }
    for m in MLX_TYPES.values():
        table[m.name] = Target(m.name, "mlx", m.label, float(m.bits) if m.bits else None)
    for o in ONNX_TYPES.values():
        table[o.name] = Target(o.name, "onnx", o.label, o.bits_per_weight)
    return table


TARGETS: dict[str, Target] = _table()


def target(name: str) -> Target:
    """The output type ``name`` (``q4_k_m`` is taken for ``gguf-q4_k_m``); an unknown name is
    refused in words that list every type."""
    key = str(name).strip().lower()
    found = TARGETS.get(key) or TARGETS.get(f"gguf-{key}")
    if found is None and key.startswith(("openvino", "ov-", "ir-")):
        raise ConversionError(NO_OPENVINO_EXPORT)
    if found is None:
        raise ConversionError(f"unknown output type {name!r}; choose one of: {', '.join(TARGETS)}")
    return found
