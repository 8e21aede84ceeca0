"""Hugging Face and MLX folders: config.json read, the architecture known to some engine, the
chat template found, MLX's packed layout checked, and the folder's library record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile, UnsupportedModel
from .hf import (
    HFCheckpoint,
    read_hf_config,
    read_hf_folder,
)
from .paths import canonical_path
from .records import ModelRecord, slugify

MAX_TEMPLATE_BYTES = 1024 * 1024


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


def describe_folder(folder: Path, source: str) -> ModelRecord:
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
