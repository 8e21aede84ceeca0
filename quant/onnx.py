"""Hugging Face folder -> ONNX Runtime GenAI folder (int8 or int4, CPU), and its quality.

Through onnxruntime-genai's own model builder, with the guarantees of the other converters:
the source and its architecture are checked before any heavy work; the builder runs in a
child process (a cancel kills it at once, a native crash stays there) writing into the
staging folder beside the output (quant.staging), with its cache inside it; the result is read back
(graph, every weight byte, tokenizer, shape against the source) and only then renamed into
place. The file hashes go into the record's provenance so every load can verify them
(ONNX Runtime loads damaged weights silently).

The quality report runs the result with ONNX Runtime itself, token by token over the same
built-in text the GGUF and MLX reports use, against the source run by transformers: for
ONNX the engine's int8/int4 kernels are what a user gets (the builder quantizes at build
time and its kernels quantize activations too), so they are what is measured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import Cancelled, InvalidModelFile
from models.file_hashes import file_hashes
from models.hf import HFCheckpoint, read_hf_folder, require_architecture
from models.onnx_folder import OnnxFolder, read_onnx_folder
from models.records import ModelRecord
from models.space import require_space
from models.work import Progress

from .child import STAGE_PREFIX, run_tool
from .errors import CONVERT_ADVICE, ConversionError, NotEnoughSpace, QualityError
from .sources import require_tokenizer, require_unquantized
from .staging import require_new, require_tools, staged_output

ONNX_CONVERTER_VERSION = "fireside-onnx 1"
SPACE_MARGIN = 64 * 1024 * 1024
STAGES = ("checked", "loading", "building", "quantizing", "saving", "verified")
# Text decoders onnxruntime-genai 0.18's builder exports (its own list); checked against
# transformers here: LlamaForCausalLM (SmolLM2).
ONNX_ARCHITECTURES = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Phi3ForCausalLM",
    "PhiForCausalLM",
    "GemmaForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "GraniteForCausalLM",
    "OlmoForCausalLM",
    "SmolLM3ForCausalLM",
    "NemotronForCausalLM",
    "InternLM2ForCausalLM",
    "Ernie4_5ForCausalLM",
)


@dataclass(frozen=True)
class OnnxType:
    name: str  # what the user types: onnx-int8
    label: str  # what the library shows: ONNX int8
    precision: str  # the builder's -p
    bits_per_weight: float  # roughly, for the quantized matrices (embeddings stay float32)


ONNX_TYPES: dict[str, OnnxType] = {
    t.name: t
    for t in (
        OnnxType("onnx-int8", "ONNX int8", "int8", 9.0),
        OnnxType("onnx-int4", "ONNX int4", "int4", 5.0),
    )
}


def is_onnx_type(name: str) -> bool:
    return name.strip().lower().startswith("onnx-")


def onnx_type(name: str) -> OnnxType:
    key = name.strip().lower()
    if key not in ONNX_TYPES:
        raise ConversionError(
            f"unknown ONNX output type {name!r}; choose one of: {', '.join(ONNX_TYPES)}"
        )
    return ONNX_TYPES[key]


def check_source(source: str | os.PathLike[str]) -> HFCheckpoint:
    """The validated checkpoint, or a plain error (nothing heavy runs)."""
    ckpt = read_hf_folder(Path(source).expanduser())
    require_architecture(ckpt, ONNX_ARCHITECTURES)
    require_unquantized(ckpt)
    require_tokenizer(ckpt)
    return ckpt


# -- the child process --------------------------------------------------------------------------
def _run_child(source: Path, out: Path, precision: str, cache: Path, step: Any, cancel: Any):
    def on_line(line: str) -> None:
        if line.startswith(STAGE_PREFIX):
            step(line.removeprefix(STAGE_PREFIX).strip())
        elif "quantize" in line:
            step("quantizing")
        elif line.startswith("Saving"):
            step("saving")

    run_tool(
        "quant._onnx_build",
        [str(source), str(out), precision, str(cache)],
        tool="the ONNX model builder",
        on_line=on_line,
        cancel=cancel,
        cwd=cache,
        env={"HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"},
    )


def _verify(out: Path, ckpt: HFCheckpoint, otype: OnnxType) -> OnnxFolder:
    """Read the written folder back: complete, the source's shape, the type asked for."""
    try:
        written = read_onnx_folder(out)
    except InvalidModelFile as exc:
        raise ConversionError(f"the ONNX model builder wrote a broken folder ({exc})") from None
    config = ckpt.config.get("text_config") or ckpt.config
    decoder = written.model.get("decoder") or {}
    for ours, theirs in (
        ("hidden_size", "hidden_size"),
        ("num_hidden_layers", "num_hidden_layers"),
        ("num_attention_heads", "num_attention_heads"),
    ):
        if ours in config and decoder.get(theirs) != config[ours]:
            raise ConversionError(
                f"the converted model's {ours} is {decoder.get(theirs)!r}, the source's is "
                f"{config[ours]!r}; nothing was kept"
            )
    if written.quantization != otype.label:
        raise ConversionError(
            f"the ONNX model builder wrote {written.quantization}, not {otype.label}; "
            "nothing was kept"
        )
    if written.chat_template is None and _has_template(ckpt.path):
        raise ConversionError("the converted folder lost the chat template; nothing was kept")
    return written


def _has_template(folder: Path) -> bool:
    from models.hf_folder import hf_chat_template

    return hf_chat_template(folder) is not None


def convert_onnx(
    source: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
) -> Path:
    """Convert the Hugging Face folder ``source`` to ``to`` (``onnx-int8`` / ``onnx-int4``).

    Raises InvalidModelFile / UnsupportedModel before any heavy work, NotEnoughSpace before
    writing, Cancelled or ConversionError after removing every partial file.
    """
    otype = onnx_type(to)
    ckpt = check_source(source)
    require_tools(otype.name)
    final = require_new(out, ckpt.path, otype.name)
    params = ckpt.parameter_count or ckpt.weight_bytes // 2
    # quantized matrices, plus float32 embeddings and the builder's float32 working copies
    needed = int(params * otype.bits_per_weight / 8) + params * 4 + SPACE_MARGIN
    require_space(
        final.parent, needed, doing="the conversion", advice=CONVERT_ADVICE, error=NotEnoughSpace
    )
    reached = 0

    def step(stage: str) -> None:
        nonlocal reached
        n = STAGES.index(stage) + 1 if stage in STAGES else reached
        if n > reached:
            reached = n
            if progress:
                progress(n, len(STAGES))

    if progress:
        progress(0, len(STAGES))
    with staged_output(final) as stage:
        step("checked")
        _run_child(ckpt.path.resolve(), stage.out, otype.precision, stage.scratch, step, cancel)
        if cancel is not None and cancel.is_set():
            raise Cancelled("conversion cancelled; nothing was kept")
        _verify(stage.out, ckpt, otype)
    step("verified")
    return final


def onnx_record(
    path: str | os.PathLike[str], source: str | os.PathLike[str], to: str, name: str | None = None
) -> ModelRecord:
    """The library record of a converted folder, with provenance and file hashes."""
    from importlib.metadata import PackageNotFoundError, version

    from models.recognize import describe

    try:
        tool = f"onnxruntime-genai {version('onnxruntime-genai')}"
    except PackageNotFoundError:
        tool = "onnxruntime-genai"
    record = describe(Path(path), source="converted")
    return record.replace(
        name=name or record.name,
        provenance={
            "origin": str(Path(source).expanduser().resolve()),
            "converter": ONNX_CONVERTER_VERSION,
            "tool": f"{tool} model builder",
            "type": onnx_type(to).name,
            "files": file_hashes(Path(path)),
        },
    )


# -- quality --------------------------------------------------------------------------------------
def onnx_log_probs(
    folder: str | os.PathLike[str], ids: list[int], cancel: Any = None
) -> np.ndarray:
    """Next-token log-probabilities of ``ids`` run by ONNX Runtime GenAI, token by token."""
    import onnxruntime_genai as og

    try:
        model = og.Model(str(folder))
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + 1)
        gen = og.Generator(model, params)
        rows = []
        for token in ids:
            if cancel is not None and cancel.is_set():
                raise Cancelled("the quality check was cancelled")
            gen.append_tokens(np.asarray([token], dtype=np.int32))
            x = gen.get_logits()[0, -1].astype(np.float64)
            x -= x.max()
            rows.append((x - np.log(np.exp(x).sum())).astype(np.float32))
        out = np.stack(rows)
    except Cancelled:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no reason given"
        raise QualityError(f"ONNX Runtime could not run the converted model ({first})") from None
    return out


def measure_onnx(
    source_folder: str | os.PathLike[str],
    result_path: str | os.PathLike[str],
    kind: str,
    progress: Progress | None = None,
    cancel: Any = None,
) -> Any:
    """The quality report (``quant.quality.QualityReport``) of an ONNX conversion."""
    from .quality import QualityReport, compare, reference_for, verdict_for

    read_onnx_folder(Path(result_path))
    if progress:
        progress(0, 2)
    ref = reference_for(source_folder, cancel)
    if progress:
        progress(1, 2)
    got = onnx_log_probs(result_path, ref.ids, cancel)
    kl, top1 = compare(ref.log_probs, got)
    if not np.isfinite(kl):
        raise QualityError(f"{Path(result_path).name} gives non-finite probabilities")
    if progress:
        progress(2, 2)
    return QualityReport(
        kl, top1, len(ref.ids), verdict_for(kl), onnx_type(kind).name,
        method="transformers float32 on CPU against ONNX Runtime GenAI's own kernels",
    )  # fmt: skip
