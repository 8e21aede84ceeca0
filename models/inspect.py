"""Turn a model file or folder into a ModelRecord (validated, not registered).

Formats: a ``.gguf`` file, a split GGUF (its first part, ``-00001-of-0000N.gguf``, with every
part checked), a Hugging Face folder (``hf-safetensors`` / ``hf-pytorch``), an MLX folder
(config.json with a ``quantization`` entry and safetensors in MLX's packed layout). A folder
holding several models is walked by :func:`find_models`; each model found is described alone.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile, ModelNotFound, UnsupportedModel
from .gguf import SPLIT_PATTERN, ArraySummary, GGUFInfo, is_gguf_file, read_gguf
from .hf import (
    CONFIG_FILE,
    PYTORCH_SUFFIXES,
    HFCheckpoint,
    read_hf_config,
    read_hf_folder,
)
from .onnx_folder import describe_onnx_folder, is_onnx_folder
from .openvino_folder import describe_openvino_folder, is_openvino_folder
from .paths import canonical_path
from .records import ModelRecord, slugify

WEIGHT_SUFFIXES = (".safetensors", *PYTORCH_SUFFIXES)
MAX_WALK_DEPTH = 6
MAX_TEMPLATE_BYTES = 1024 * 1024


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


# -- MLX -----------------------------------------------------------------------------------------
def mlx_quantization(config: dict[str, Any]) -> dict[str, Any] | None:
    """MLX's ``quantization`` entry ({"group_size": 64, "bits": 4}), if the config has one."""
    q = config.get("quantization")
    if isinstance(q, dict) and isinstance(q.get("bits"), int) and not isinstance(q["bits"], bool):
        return q
    return None


def _mlx_parameter_count(ckpt: HFCheckpoint, bits: int) -> int | None:
    """Unpacked parameter count: packed uint32 weights hold 32/bits values per element."""
    if not ckpt.tensors:
        return None
    total = 0
    for name, t in ckpt.tensors.items():
        if (
            name.endswith((".scales", ".biases"))
            and name.rsplit(".", 1)[0] + ".weight" in ckpt.tensors
        ):
            continue
        n = t.n_elements
        if t.dtype == "U32" and name.rsplit(".", 1)[0] + ".scales" in ckpt.tensors:
            n = n * 32 // bits
        total += n
    return total


def _check_mlx_layout(ckpt: HFCheckpoint, bits: int) -> None:
    """MLX quantized weights are uint32 with .scales beside them; say so when they are not."""
    if ckpt.weight_format != "safetensors":
        raise InvalidModelFile(
            f"{ckpt.path.name} has an MLX quantization entry in config.json but no "
            "safetensors weights; MLX models are stored as safetensors"
        )
    packed = [n for n, t in ckpt.tensors.items() if t.dtype == "U32"]
    scales = [n for n in ckpt.tensors if n.endswith(".scales")]
    if not packed or not scales:
        raise InvalidModelFile(
            f"{ckpt.path.name} says it is quantized to {bits} bits for MLX, but its weights "
            "are not in MLX's packed layout (uint32 weights with .scales); the folder looks "
            "damaged or mislabelled"
        )
    for name in scales:
        if name.removesuffix(".scales") + ".weight" not in ckpt.tensors:
            raise InvalidModelFile(
                f"{ckpt.path.name}: {name} has no weight beside it; the folder looks damaged"
            )


# -- HF / MLX folders ---------------------------------------------------------------------------
def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config (multimodal configs nest it)."""
    nested = config.get("text_config")
    if isinstance(nested, dict):
        merged = dict(config)
        merged.update(nested)
        return merged
    return config


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def hf_chat_template(folder: Path) -> str | None:
    """The chat template of a Hugging Face folder (chat_template.jinja or tokenizer_config)."""
    jinja = folder / "chat_template.jinja"
    try:
        if jinja.is_file() and jinja.stat().st_size <= MAX_TEMPLATE_BYTES:
            text = jinja.read_text(encoding="utf-8", errors="replace")
            if text.strip():
                return text
        for name in ("chat_template.json", "tokenizer_config.json"):
            f = folder / name
            if f.is_file() and f.stat().st_size <= 16 * MAX_TEMPLATE_BYTES:
                data = json.loads(f.read_text(encoding="utf-8", errors="replace"))
                value = data.get("chat_template") if isinstance(data, dict) else None
                if isinstance(value, list):  # named templates: take "default"
                    named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
                    value = named.get("default") or next(iter(named.values()), None)
                if isinstance(value, str) and value.strip():
                    return value
    except (OSError, ValueError):
        return None
    return None


# Decoder families common enough to accept when neither transformers nor mlx_lm is installed
# (a GGUF-only install can still register a folder to convert or run later).
COMMON_MODEL_TYPES = frozenset(
    [
        "llama",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "qwen3",
        "qwen3_moe",
        "gemma",
        "gemma2",
        "gemma3",
        "gemma3_text",
        "phi",
        "phi3",
        "starcoder2",
        "gpt2",
        "gpt_neox",
        "falcon",
        "stablelm",
        "olmo",
        "olmo2",
        "granite",
        "cohere",
        "cohere2",
        "deepseek_v2",
        "deepseek_v3",
        "internlm2",
        "exaone",
        "smollm3",
    ]
)


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def architecture_known(model_type: str | None, fmt: str) -> bool | None:
    """Whether an installed engine knows ``model_type`` (None: no engine installed to ask)."""
    if not model_type:
        return False
    module = model_type.replace("-", "_")
    if fmt == "mlx":
        pkg = _package_dir("mlx_lm")
        return None if pkg is None else (pkg / "models" / f"{module}.py").is_file()
    pkg = _package_dir("transformers")
    return None if pkg is None else (pkg / "models" / module).is_dir()


def _check_architecture(folder: Path, config: dict[str, Any], fmt: str) -> None:
    model_type = text_config(config).get("model_type") or config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise UnsupportedModel(
            f"{folder.name}: config.json names no model_type, so no engine can run it"
        )
    known = architecture_known(model_type, fmt)
    if known is None:
        known = model_type in COMMON_MODEL_TYPES
    if not known:
        engine = "mlx-lm" if fmt == "mlx" else "transformers"
        raise UnsupportedModel(
            f"{folder.name} is a {model_type!r} model, which the installed {engine} "
            "(and Fireside's converters) do not know; a newer version may"
        )


def _folder_size(files: tuple[Path, ...], folder: Path) -> int:
    total = 0
    try:
        for f in folder.iterdir():
            if f.is_file():
                total += f.stat().st_size
    except OSError:
        total = sum(f.stat().st_size for f in files)
    return total


def _written_by_mlx(ckpt: HFCheckpoint) -> bool:
    """mlx-lm marks the safetensors it writes with ``{"format": "mlx"}`` in their metadata."""
    from .hf import read_safetensors_header

    first = ckpt.weight_files[0] if ckpt.weight_files else None
    return first is not None and read_safetensors_header(first).metadata.get("format") == "mlx"


def _describe_folder(folder: Path, source: str) -> ModelRecord:
    config = read_hf_config(folder)
    ckpt = read_hf_folder(folder)
    tc = text_config(config)
    q = mlx_quantization(config)
    quant: str | None
    if q is not None:
        bits = int(q["bits"])
        _check_mlx_layout(ckpt, bits)
        fmt, params = "mlx", _mlx_parameter_count(ckpt, bits)
        quant = f"{bits}-bit" + (f" g{q['group_size']}" if _int(q.get("group_size")) else "")
    else:
        fmt, params = ckpt.format, ckpt.parameter_count
        if fmt == "hf-safetensors" and _written_by_mlx(ckpt):
            fmt = "mlx"  # an unquantized (bf16/f16) MLX folder: same files, MLX's layout
        dtype: Any = config.get("dtype") or config.get("torch_dtype") or tc.get("dtype")
        if not isinstance(dtype, str) and ckpt.tensors:
            counts: dict[str, int] = {}
            for t in ckpt.tensors.values():
                counts[t.dtype] = counts.get(t.dtype, 0) + t.n_elements
            dtype = max(counts, key=counts.__getitem__)
        quant = (
            str(dtype)
            .upper()
            .replace("BFLOAT16", "BF16")
            .replace("FLOAT16", "F16")
            .replace("FLOAT32", "F32")
            if dtype
            else None
        )
    _check_architecture(folder, config, fmt)
    if not ckpt.has_tokenizer:
        raise InvalidModelFile(
            f"{folder.name} has no tokenizer (tokenizer.json, tokenizer.model, or "
            "vocab.json with merges.txt); copy the tokenizer files into the folder"
        )
    weight_bytes = ckpt.weight_bytes
    template = hf_chat_template(folder)
    arch = ckpt.architecture or ckpt.model_type
    return ModelRecord(
        id=slugify(folder.name),
        name=folder.name,
        format=fmt,
        path=str(canonical_path(folder)),
        source=source,
        architecture=arch,
        parameters=params,
        quantization=quant,
        bits_per_weight=round(8 * weight_bytes / params, 2) if params else None,
        size_bytes=_folder_size(ckpt.weight_files, folder),
        context_length=_int(tc.get("max_position_embeddings")),
        has_chat_template=template is not None,
        provenance={"origin": str(canonical_path(folder))},
        extra={"model_type": ckpt.model_type, "weight_files": len(ckpt.weight_files)},
    )


# -- GGUF -----------------------------------------------------------------------------------------
def _describe_gguf(path: Path, source: str) -> ModelRecord:
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


# -- entry points --------------------------------------------------------------------------------
def check_exists(path: Path) -> None:
    """Plain errors for paths that are missing, loops or unreadable."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InvalidModelFile(f"{path} is a link to something that does not exist") from None
        raise ModelNotFound(f"{path} does not exist") from None
    except PermissionError:
        raise InvalidModelFile(f"Fireside is not allowed to read {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InvalidModelFile(
                f"{path} is a link that points back to itself (a loop)"
            ) from None
        raise InvalidModelFile(f"{path} cannot be read: {exc.strerror or exc}") from None
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise InvalidModelFile(f"Fireside is not allowed to read the folder {path}")


def kind_of(path: Path) -> str | None:
    """'gguf', 'folder-model' (HF/MLX: config.json; ONNX: genai_config.json; OpenVINO:
    openvino_model.xml), 'collection' (a folder), or None."""
    if is_onnx_folder(path) or is_openvino_folder(path):
        return "folder-model"
    if path.is_file():
        if path.suffix.lower() == ".gguf" or is_gguf_file(path):
            return "gguf"
        return None
    if path.is_dir():
        return "folder-model" if (path / CONFIG_FILE).is_file() else "collection"
    return None


def describe(path: str | Path, *, source: str = "imported") -> ModelRecord:
    """Validate one model at ``path`` and say what it is (nothing is registered).

    Raises InvalidModelFile for anything unusable, and for a folder holding several models
    (use :func:`find_models`, or ``models.import_model`` which registers each).
    """
    path = Path(path).expanduser()
    check_exists(path)
    kind = kind_of(path)
    if kind == "gguf":
        return _describe_gguf(path, source)
    if kind == "folder-model" and is_onnx_folder(path):
        return describe_onnx_folder(path, source, str(canonical_path(path)))
    if kind == "folder-model" and is_openvino_folder(path):
        return describe_openvino_folder(path, source, str(canonical_path(path)))
    if kind == "folder-model":
        return _describe_folder(path, source)
    if kind == "collection":
        found, _ = find_models(path)
        if len(found) == 1:
            return describe(found[0], source=source)
        if found:
            raise InvalidModelFile(
                f"{path} holds {len(found)} models; import the folder to add each of them"
            )
        _raise_empty(path)
    raise InvalidModelFile(
        f"{path.name} is not a model Fireside recognises (expected a .gguf file, or a folder "
        "with config.json and weights)"
    )


def _raise_empty(folder: Path) -> None:
    loose = _loose_weights(folder)
    if loose:
        raise InvalidModelFile(
            f"{folder} holds weights ({loose[0].name}) but no config.json; "
            "a Hugging Face model folder needs its config.json beside the weights"
        )
    raise InvalidModelFile(
        f"no models found in {folder} (looked for .gguf files and folders with config.json)"
    )


def _loose_weights(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES)
    except OSError:
        return []


@dataclass
class WalkResult:
    found: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def find_models(
    root: str | Path, *, max_depth: int = MAX_WALK_DEPTH
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every model under ``root``: .gguf files (first parts of split ones) and model folders.

    Returns (found, skipped) where skipped lists (path, reason) for folders that could not be
    read. Links are followed, each real folder visited once, so link loops end.
    """
    root = Path(root).expanduser()
    result = WalkResult()
    seen: set[tuple[int, int]] = set()
    for path in _walk(root, 0, max_depth, seen, result):
        result.found.append(path)
    return result.found, result.skipped


def _walk(
    folder: Path, depth: int, max_depth: int, seen: set[tuple[int, int]], result: WalkResult
) -> Iterator[Path]:
    try:
        st = folder.stat()
    except OSError as exc:
        result.skipped.append((folder, exc.strerror or str(exc)))
        return
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return
    seen.add(key)
    if (
        is_onnx_folder(folder)
        or is_openvino_folder(folder)
        or ((folder / CONFIG_FILE).is_file() and _has_weights(folder))
    ):
        yield folder
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        if depth == 0:
            raise InvalidModelFile(
                f"Fireside is not allowed to read the folder {folder}"
                if isinstance(exc, PermissionError)
                else f"{folder} cannot be read: {exc.strerror or exc}"
            ) from None
        result.skipped.append((folder, exc.strerror or str(exc)))
        return
    subfolders = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            is_dir, is_file = entry.is_dir(), entry.is_file()
        except OSError as exc:
            result.skipped.append((entry, exc.strerror or str(exc)))
            continue
        if is_file and entry.suffix.lower() == ".gguf":
            m = SPLIT_PATTERN.match(entry.name)
            if m and int(m.group("no")) != 1:
                continue  # a later part: found through its first part
            yield entry
        elif is_dir and depth < max_depth:
            subfolders.append(entry)
    for sub in subfolders:
        yield from _walk(sub, depth + 1, max_depth, seen, result)


def _has_weights(folder: Path) -> bool:
    try:
        return any(p.suffix.lower() in WEIGHT_SUFFIXES for p in folder.iterdir())
    except OSError:
        return False


# -- details for `models show` -------------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, ArraySummary):
        from .gguf import TYPE_NAMES

        return f"[{value.count} {TYPE_NAMES[value.item_type]} values]"
    if isinstance(value, list) and len(value) > 16:
        return [*value[:16], f"... {len(value) - 16} more"]
    return value


def model_details(record: ModelRecord) -> dict[str, Any]:
    """Everything worth showing about a registered model: metadata, chat template, files."""
    path = Path(record.path)
    details: dict[str, Any] = {"metadata": {}, "chat_template": None, "files": []}
    if record.format in ("gguf", "gguf-split"):
        model = read_gguf_model(path)
        details["metadata"] = {
            k: _plain(v) for k, v in model.metadata.items() if k != "tokenizer.chat_template"
        }
        details["chat_template"] = model.first.chat_template
        details["tensors"] = sum(len(p.tensors) for p in model.parts)
        details["files"] = [{"path": str(p.path), "size": p.file_size} for p in model.parts]
    elif record.format in ("hf-safetensors", "hf-pytorch", "mlx"):
        details["metadata"] = {k: _plain(v) for k, v in read_hf_config(path).items()}
        details["chat_template"] = hf_chat_template(path)
        files = []
        for f in sorted(path.iterdir()):
            if f.is_file():
                files.append({"path": str(f), "size": f.stat().st_size})
        details["files"] = files
    return details
