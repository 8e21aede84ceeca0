"""A GGUF model as the library sees it: one file, or a split GGUF (its first part,
``-00001-of-0000N.gguf``, with every part checked), and its library record."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile
from .gguf import SPLIT_PATTERN, GGUFInfo, read_gguf
from .paths import canonical_path
from .records import ModelRecord, slugify


# -- split GGUF -------------------------------------------------------------------------------
@dataclass(frozen=True)
class GGUFModel:
    """One GGUF model: a single file, or every part of a split one (first part first)."""

    parts: tuple[GGUFInfo, ...]

    @property
    def first(self) -> GGUFInfo:
        return self.parts[0]

    @property
    def path(self) -> Path:
        return self.first.path

    @property
    def is_split(self) -> bool:
        return len(self.parts) > 1

    @property
    def metadata(self) -> dict[str, Any]:
        return self.first.metadata

    @property
    def parameter_count(self) -> int:
        return sum(p.parameter_count for p in self.parts)

    @property
    def tensor_bytes(self) -> int:
        return sum(p.tensor_bytes for p in self.parts)

    @property
    def file_size(self) -> int:
        return sum(p.file_size for p in self.parts)

    @property
    def bits_per_weight(self) -> float | None:
        params = self.parameter_count
        return round(8 * self.tensor_bytes / params, 2) if params else None


def split_part_paths(path: Path) -> list[Path] | None:
    """For ``name-00001-of-00003.gguf``: all three part paths; None for an unsplit name."""
    m = SPLIT_PATTERN.match(path.name)
    if not m:
        return None
    count = int(m.group("count"))
    if count < 1:
        raise InvalidModelFile(f"{path.name} names a split model of {count} parts")
    prefix = m.group("prefix")
    return [path.with_name(f"{prefix}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]


def read_gguf_model(path: str | os.PathLike[str]) -> GGUFModel:
    """Validate a GGUF model: one file, or the first part of a split model and all its parts."""
    path = Path(path)
    parts = split_part_paths(path)
    if parts is None:
        info = read_gguf(path)
        if info.split_count > 1:
            raise InvalidModelFile(
                f"{path.name} is part {info.split_no + 1} of a model split into "
                f"{info.split_count} files, but its name does not say so "
                "(expected NAME-00001-of-0000N.gguf); rename the parts as they were published"
            )
        return GGUFModel((info,))
    m = SPLIT_PATTERN.match(path.name)
    assert m is not None
    number, count = int(m.group("no")), len(parts)
    if number != 1:
        raise InvalidModelFile(
            f"{path.name} is part {number} of {count} of a split model; "
            f"import the first part, {parts[0].name}"
        )
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise InvalidModelFile(
            f"{path.name} is the first of {count} parts, but {len(missing)} part(s) are missing "
            f"from {path.parent}: {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
        )
    infos = tuple(read_gguf(p) for p in parts)
    names: set[str] = set()
    for i, info in enumerate(infos):
        if info.split_count != count or info.split_no != i:
            raise InvalidModelFile(
                f"{info.path.name} says it is part {info.split_no + 1} of {info.split_count}, "
                f"but its name says part {i + 1} of {count}; the parts do not belong together"
            )
        for t in info.tensors:
            if t.name in names:
                raise InvalidModelFile(
                    f"tensor {t.name!r} appears in more than one part of {path.name}; "
                    "the parts do not belong together"
                )
            names.add(t.name)
    declared = infos[0].get("split.tensors.count")
    if isinstance(declared, int) and declared != len(names):
        raise InvalidModelFile(
            f"{path.name} declares {declared} tensors across its parts, "
            f"but the parts hold {len(names)}; a part is damaged or from another model"
        )
    return GGUFModel(infos)


# -- GGUF -----------------------------------------------------------------------------------------
def describe_gguf(path: Path, source: str) -> ModelRecord:
    model = read_gguf_model(path)
    info = model.first
    stem = path.name[:-5] if path.name.lower().endswith(".gguf") else path.name
    if model.is_split:
        m = SPLIT_PATTERN.match(path.name)
        stem = m.group("prefix") if m else stem
    extra: dict[str, Any] = {}
    if model.is_split:
        extra["parts"] = [p.path.name for p in model.parts]
    return ModelRecord(
        id=slugify(stem),
        name=info.name or stem,
        format="gguf-split" if model.is_split else "gguf",
        path=str(canonical_path(path)),
        source=source,
        architecture=info.architecture,
        parameters=model.parameter_count,
        quantization=info.file_type,
        bits_per_weight=model.bits_per_weight,
        size_bytes=model.file_size,
        context_length=info.context_length,
        has_chat_template=info.chat_template is not None,
        provenance={"origin": str(canonical_path(path))},
        extra=extra,
    )
