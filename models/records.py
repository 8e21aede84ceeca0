"""What the library knows about one model."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# model format -> the engines that can run it, best first (runtime.dispatch chooses among them)
FORMAT_ENGINES: dict[str, tuple[str, ...]] = {
    "gguf": ("llama.cpp", "openvino"),
    "gguf-split": ("llama.cpp",),
    "mlx": ("mlx",),
    "hf-safetensors": ("torch",),
    "hf-pytorch": ("torch",),
    "onnx": ("onnx",),
    "openvino": ("openvino",),
    "remote": ("remote",),
}
FORMATS = tuple(FORMAT_ENGINES)
HF_FORMATS = ("hf-safetensors", "hf-pytorch")  # Hugging Face / PyTorch: what converts
SOURCES = ("bundled", "imported", "downloaded", "converted", "discovered", "remote")


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-.")
    return slug[:64] or "model"


@dataclass(frozen=True)
class ModelRecord:
    id: str
    name: str
    format: str
    path: str
    source: str
    architecture: str | None = None
    parameters: int | None = None
    quantization: str | None = None
    bits_per_weight: float | None = None
    size_bytes: int = 0
    context_length: int | None = None
    has_chat_template: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)
    owned: bool = False
    added_at: str = field(default_factory=now_iso)
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> ModelRecord:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_row(self) -> dict[str, Any]:
        row = self.to_dict()
        row["has_chat_template"] = int(self.has_chat_template)
        row["owned"] = int(self.owned)
        row["provenance"] = json.dumps(self.provenance, sort_keys=True)
        row["extra"] = json.dumps(self.extra, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: Any) -> ModelRecord:
        data = dict(row)
        data["has_chat_template"] = bool(data["has_chat_template"])
        data["owned"] = bool(data["owned"])
        data["provenance"] = json.loads(data["provenance"] or "{}")
        data["extra"] = json.loads(data["extra"] or "{}")
        return cls(**data)
