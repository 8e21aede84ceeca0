"""Turn a model file or folder into a ModelRecord (validated, not registered)."""

from __future__ import annotations

from pathlib import Path

from .errors import InvalidModelFile
from .gguf import read_gguf
from .records import ModelRecord, slugify


def describe(path: str | Path, *, source: str = "imported") -> ModelRecord:
    """Validate ``path`` and say what it is. Raises InvalidModelFile for anything unusable."""
    path = Path(path).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        info = read_gguf(path)
        name = info.name or path.stem
        return ModelRecord(
            id=slugify(path.stem),
            name=name,
            format="gguf",
            path=str(path.resolve()),
            source=source,
            architecture=info.architecture,
            parameters=info.parameter_count,
            quantization=info.file_type,
            bits_per_weight=info.bits_per_weight,
            size_bytes=info.file_size,
            context_length=info.context_length,
            has_chat_template=info.chat_template is not None,
            provenance={"origin": str(path.resolve())},
        )
    raise InvalidModelFile(f"{path} is not a model Fireside recognises")
