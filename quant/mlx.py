"""Hugging Face folder -> MLX folder (4-bit, 8-bit or bf16), through ``mlx_lm.convert``.

The same guarantees as the GGUF path: the folder and its architecture are checked before any
heavy work; mlx-lm runs in a child process (so a cancel stops it at once and a native crash
stays there) on a staged copy of the source whose config is made explicit for mlx-lm; the
output is staged beside the target (quant.staging), read back and checked, and only then
renamed.

Why the staging: a config saved by transformers 5 keeps the RoPE base under
``rope_parameters``, which mlx-lm's model classes do not read; they silently fall back to
their default base and the converted model still talks, only worse. The staged config
carries ``rope_theta`` (and ``rope_scaling``) at the top level, where mlx-lm looks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import Cancelled, UnsupportedModel
from models.hf import HFCheckpoint, read_hf_folder, require_architecture
from models.records import ModelRecord
from models.space import require_space
from models.work import Progress

from .child import run_tool
from .errors import CONVERT_ADVICE, ConversionError, NotEnoughSpace
from .mlx_config import mlx_config
from .sources import require_tokenizer, require_unquantized
from .staging import require_new, require_tools, staged_output

MLX_CONVERTER_VERSION = "fireside-mlx 1"
GROUP_SIZES = (32, 64, 128)
DEFAULT_GROUP_SIZE = 64

# The architectures whose mlx-lm model class we have checked against transformers' config
# (names of the config's ``architectures`` entry -> mlx-lm's model module).
MLX_ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Phi3ForCausalLM": "phi3",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3_text",
    "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "MixtralForCausalLM": "mixtral",
    "GraniteForCausalLM": "granite",
    "Olmo2ForCausalLM": "olmo2",
    "SmolLM3ForCausalLM": "smollm3",
    "Glm4ForCausalLM": "glm4",
}


@dataclass(frozen=True)
class MLXType:
    name: str  # what the user types: mlx-4bit
    label: str  # what the library shows: MLX 4-bit
    bits: int | None  # None: not quantized
    dtype: str | None  # the float type of the weights (quantized: of the scales)


MLX_TYPES: dict[str, MLXType] = {
    t.name: t
    for t in (
        MLXType("mlx-4bit", "MLX 4-bit", 4, None),
        MLXType("mlx-8bit", "MLX 8-bit", 8, None),
        MLXType("mlx-bf16", "MLX BF16", None, "bfloat16"),
    )
}
STAGES = ("checked", "loading", "converting", "saved", "verified")


def is_mlx_type(name: str) -> bool:
    return name.strip().lower() in MLX_TYPES


def mlx_type(name: str) -> MLXType:
    key = name.strip().lower()
    if key not in MLX_TYPES:
        raise ConversionError(
            f"unknown MLX output type {name!r}; choose one of: {', '.join(MLX_TYPES)}"
        )
    return MLX_TYPES[key]


def check_source(source: str | os.PathLike[str]) -> tuple[HFCheckpoint, str]:
    """The validated checkpoint and its mlx-lm module, or a plain error (nothing heavy runs)."""
    ckpt = read_hf_folder(Path(source).expanduser())
    arch = require_architecture(ckpt, MLX_ARCHITECTURES)
    module = MLX_ARCHITECTURES[arch]
    if ckpt.model_type != module:
        raise UnsupportedModel(
            f"{ckpt.path.name} names {arch} but its model_type is {ckpt.model_type!r} "
            f"(expected {module!r}); the config looks inconsistent"
        )
    if ckpt.weight_format != "safetensors":
        raise UnsupportedModel(
            f"{ckpt.path.name} holds PyTorch .bin weights; MLX conversion reads safetensors. "
            f"Convert it to GGUF instead, or save it as safetensors first"
        )
    require_unquantized(ckpt)
    require_tokenizer(ckpt)
    mlx_config(ckpt.config)  # refuses configs it cannot make explicit
    return ckpt, module


def estimated_bytes(ckpt: HFCheckpoint, mtype: MLXType, group_size: int) -> int:
    params = ckpt.parameter_count or ckpt.weight_bytes // 2
    if mtype.bits is None:
        return params * 2
    # packed weights plus a 16-bit scale and bias per group
    return int(params * (mtype.bits + 32 / group_size) / 8)


def _stage(ckpt: HFCheckpoint, stage: Path) -> None:
    """A folder mlx-lm reads: links to the source's files, and the explicit config."""
    stage.mkdir()
    for f in sorted(ckpt.path.iterdir()):
        if f.name.startswith(".") or not f.is_file() or f.suffix == ".py":
            continue  # never carry custom code along
        if f.name == "config.json":
            (stage / f.name).write_text(json.dumps(mlx_config(ckpt.config), indent=2))
            continue
        target = stage / f.name
        try:
            os.symlink(f.resolve(), target)
        except OSError:
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)


# -- the child process --------------------------------------------------------------------------
def _run_child(
    stage: Path, out: Path, dtype: str | None, bits: int | None, group: int, step: Any, cancel: Any
) -> str | None:
    """Run mlx-lm's converter in a child; returns the bits-per-weight line it printed, if any."""
    bpw: list[str] = []

    def on_line(line: str) -> None:
        if "Loading" in line or "Starting" in line:
            step("loading")
        elif "Quantizing" in line or "Using dtype" in line:
            step("converting")
        elif "bits per weight" in line:
            bpw.append(line)

    args = [str(stage), str(out), dtype or "", str(bits or 0), str(group)]
    run_tool("quant._mlx_convert", args, tool="the MLX converter", on_line=on_line, cancel=cancel)
    return bpw[-1] if bpw else None


def _verify(out: Path, ckpt: HFCheckpoint, mtype: MLXType, group: int) -> dict[str, Any]:
    """Read the written folder back; returns facts for the provenance."""
    written = read_hf_folder(out)
    if not written.has_tokenizer:
        raise ConversionError("the converted folder has no tokenizer; nothing was kept")
    config = written.config
    expected = mlx_config(ckpt.config)
    for key in ("rope_theta", "hidden_size", "num_hidden_layers", "vocab_size"):
        if key in expected and config.get(key) != expected[key]:
            raise ConversionError(
                f"the converted model's {key} is {config.get(key)!r}, the source's is "
                f"{expected[key]!r}; nothing was kept"
            )
    names = written.tensors
    quantized = sorted(n for n in names if n.endswith(".scales"))
    facts: dict[str, Any] = {"tensors": len(names)}
    if mtype.bits is not None:
        q = config.get("quantization")
        if not isinstance(q, dict) or q.get("bits") != mtype.bits or q.get("group_size") != group:
            raise ConversionError(
                "the converted folder does not record the quantization asked for; nothing was kept"
            )
        linear = [
            n
            for n, t in ckpt.tensors.items()
            if n.endswith(".weight") and len(t.shape) == 2 and "norm" not in n
        ]
        if not quantized:
            raise ConversionError(
                f"no layer of {ckpt.path.name} could be quantized with group size {group} "
                f"(its layer widths are not multiples of it); try --group-size 32 or 64"
            )
        facts["quantized_layers"] = len(quantized)
        facts["linear_layers"] = len(linear)
    elif quantized:
        raise ConversionError("the bf16 conversion came out quantized; nothing was kept")
    return facts


@dataclass(frozen=True)
class MLXResult:
    path: Path
    type: MLXType
    group_size: int | None
    facts: dict[str, Any]

    @property
    def note(self) -> str | None:
        q, total = self.facts.get("quantized_layers"), self.facts.get("linear_layers")
        if q is not None and total and q < total:
            return (
                f"{total - q} of {total} weight matrices stayed unquantized (their width is "
                f"not a multiple of the group size {self.group_size})"
            )
        return None


def convert_mlx(
    source: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    group_size: int | None = None,
) -> MLXResult:
    """Convert the Hugging Face folder ``source`` to MLX type ``to`` (``mlx-4bit`` ...).

    Raises InvalidModelFile / UnsupportedModel before any heavy work, NotEnoughSpace before
    writing, Cancelled or ConversionError after removing every partial file.
    """
    mtype = mlx_type(to)
    if group_size is not None and mtype.bits is None:
        raise ConversionError(f"--group-size applies to quantized types only, not {mtype.name}")
    group = DEFAULT_GROUP_SIZE if group_size is None else group_size
    if group not in GROUP_SIZES:
        raise ConversionError(
            f"group size {group} is not supported; use one of {', '.join(map(str, GROUP_SIZES))}"
        )
    ckpt, _ = check_source(source)
    require_tools(mtype.name)
    final = require_new(out, ckpt.path, mtype.name)
    require_space(
        final.parent,
        estimated_bytes(ckpt, mtype, group),
        doing="the conversion",
        advice=CONVERT_ADVICE,
        error=NotEnoughSpace,
    )
    total = len(STAGES)
    reached = 0

    def step(stage: str) -> None:
        nonlocal reached
        n = STAGES.index(stage) + 1
        if n > reached:
            reached = n
            if progress:
                progress(n, total)

    if progress:
        progress(0, total)
    dtype = mtype.dtype
    if dtype is None:  # quantized: scales and unquantized layers in the source's 16-bit type
        src_dtype = str(ckpt.config.get("dtype") or ckpt.config.get("torch_dtype") or "")
        dtype = src_dtype if src_dtype in ("bfloat16", "float16") else "bfloat16"
    with staged_output(final) as stage:
        staged = stage.scratch / "source"
        _stage(ckpt, staged)
        step("checked")
        bpw_line = _run_child(staged, stage.out, dtype, mtype.bits, group, step, cancel)
        step("saved")
        if cancel is not None and cancel.is_set():
            raise Cancelled("conversion cancelled; nothing was kept")
        facts = _verify(stage.out, ckpt, mtype, group)
        if bpw_line:
            facts["mlx_lm"] = bpw_line.removeprefix("[INFO] ")
        with contextlib.suppress(FileNotFoundError):
            (stage.out / "README.md").unlink()  # mlx-lm's model card points at the Hub
    step("verified")
    return MLXResult(final, mtype, group if mtype.bits is not None else None, facts)


def mlx_record(
    result: MLXResult, source: str | os.PathLike[str], name: str | None = None
) -> ModelRecord:
    """The library record of a converted folder, with its provenance (not yet registered)."""
    from importlib.metadata import PackageNotFoundError, version

    from models.recognize import describe

    try:
        mlx_lm_version = version("mlx-lm")
    except PackageNotFoundError:
        mlx_lm_version = None
    record = describe(result.path, source="converted")
    quant = result.type.label.removeprefix("MLX ")
    if result.group_size:
        quant += f" g{result.group_size}"
    return record.replace(
        format="mlx",
        name=name or record.name,
        quantization=quant,
        provenance={
            "origin": str(Path(source).expanduser().resolve()),
            "converter": MLX_CONVERTER_VERSION,
            "tool": f"mlx-lm {mlx_lm_version}" if mlx_lm_version else "mlx-lm",
            "type": result.type.name,
            "group_size": result.group_size,
            **result.facts,
        },
    )
