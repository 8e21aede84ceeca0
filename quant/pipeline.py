"""One conversion, start to end, for every face: check the source, convert (GGUF, MLX or
ONNX), measure the quality against the source, register the result in the library with its
provenance. ``fireside convert`` and the window's Convert page both call
:func:`convert_into_library`; the checks and the size estimate the page shows before
starting come from here too (config and headers only: no torch, no weights).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import Cancelled, UnsupportedModel
from models.hf import HFCheckpoint, read_hf_folder
from models.records import ModelRecord
from models.work import Progress

from .errors import ConversionError
from .targets import Target, target


@dataclass(frozen=True)
class Options:
    group_size: int | None = None  # MLX 4/8-bit: weights per quantization group
    imatrix: Mapping[str, Any] | None = None  # GGUF K-quants: tensor name -> column weights
    imatrix_from: str | None = None  # where it came from ("auto", a file), kept in provenance
    report: bool = True  # measure the result against the source


@dataclass
class Converted:
    record: ModelRecord  # registered
    report: Any = None  # the QualityReport, or None
    note: str | None = None  # something the user should know about the result
    report_problem: str | None = None  # why there is no report, in plain words


# -- before any work ------------------------------------------------------------------------
def check(source: str | os.PathLike[str], to: str) -> HFCheckpoint:
    """The checkpoint, when ``source`` can become ``to`` on this machine; otherwise a plain
    error (InvalidModelFile, UnsupportedModel, ConversionError). Cheap: no torch, no weights."""
    t = target(to)
    problem = t.unavailable()
    if problem:
        raise UnsupportedModel(problem)
    if t.family == "mlx":
        from .mlx import check_source

        return check_source(source)[0]
    if t.family == "onnx":
        from .onnx import check_source as check_onnx

        return check_onnx(source)
    from .arch import architecture_for
    from .sources import require_tokenizer

    ckpt = read_hf_folder(Path(source).expanduser())
    architecture_for(ckpt)
    require_tokenizer(ckpt)
    return ckpt


def expected_size(source: str | os.PathLike[str], to: str) -> int:
    """About how many bytes the result of ``source`` as ``to`` will take (the exact tensor
    bytes for a GGUF from safetensors)."""
    t = target(to)
    ckpt = read_hf_folder(Path(source).expanduser())
    extra = sum(
        (ckpt.path / n).stat().st_size for n in ckpt.tokenizer_files if (ckpt.path / n).is_file()
    )
    if t.family == "mlx":
        from .mlx import DEFAULT_GROUP_SIZE, estimated_bytes, mlx_type

        return estimated_bytes(ckpt, mlx_type(to), DEFAULT_GROUP_SIZE) + extra
    params = ckpt.parameter_count or ckpt.weight_bytes // 2
    if t.family == "onnx":
        # the quantized matrices; the builder keeps the embeddings in float32 beside them, and
        # gives tied embeddings a quantized output matrix of their own
        embedding, bits = _embedding_params(ckpt), t.bits_per_weight or 16
        tied = bool((ckpt.config.get("text_config") or ckpt.config).get("tie_word_embeddings"))
        matrices = params - embedding + (embedding if tied else 0)
        return int(matrices * bits / 8) + embedding * 4 + extra
    if ckpt.weight_format == "safetensors":
        from .arch import architecture_for
        from .kquant_rules import MIXES
        from .sources import SafetensorsSource
        from .to_gguf import plan_tensors
        from .types import output_type

        otype = output_type(to)
        # a type made only with an importance matrix is as big with one as the plan says
        needs = otype.mixed and getattr(MIXES.get(otype.label), "needs_imatrix", False)
        source_tensors = SafetensorsSource(ckpt)
        try:
            plan = plan_tensors(
                architecture_for(ckpt), source_tensors, otype, has_imatrix=bool(needs)
            )
        finally:
            source_tensors.close()
        return sum(p.n_bytes for p in plan) + extra
    return int(params * (t.bits_per_weight or 16) / 8) + extra


def _embedding_params(ckpt: HFCheckpoint) -> int:
    config = ckpt.config.get("text_config") or ckpt.config
    try:
        return int(config.get("vocab_size", 0)) * int(config.get("hidden_size", 0))
    except (TypeError, ValueError):
        return 0


def _library_base(source: str | os.PathLike[str], t: Target, name: str | None) -> Path:
    from models.paths import models_dir
    from models.records import slugify

    return models_dir() / f"{slugify(name or Path(source).name)}-{slugify(t.label)}"


def library_output(source: str | os.PathLike[str], to: str, name: str | None = None) -> Path:
    """A free place in the library's models folder for ``source`` converted to ``to``."""
    t = target(to)
    base = _library_base(source, t, name)
    out, n = base.with_name(base.name + t.suffix), 2
    while out.exists():
        out, n = base.with_name(f"{base.name}-{n}{t.suffix}"), n + 1
    return out


# -- the conversion -------------------------------------------------------------------------
def write(
    source: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    options: Options | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
) -> tuple[ModelRecord, str | None]:
    """Convert ``source`` to ``to`` at ``out`` (default: beside the source); the library
    record of the result (not yet registered) and a note for the user, if any."""
    t, opts = target(to), options or Options()
    if t.family != "mlx" and opts.group_size is not None:
        raise ConversionError("--group-size applies to the MLX types only")
    if t.family != "gguf" and opts.imatrix is not None:
        raise ConversionError("an importance matrix applies only to the GGUF K-quant types")
    if t.family == "mlx":
        from .mlx import convert_mlx, mlx_record

        result = convert_mlx(
            source, to, out, progress=progress, cancel=cancel, group_size=opts.group_size
        )
        return mlx_record(result, source, name=name), result.note
    if t.family == "onnx":
        from .onnx import convert_onnx, onnx_record

        path = convert_onnx(source, to, out, progress=progress, cancel=cancel)
        return onnx_record(path, source, to, name=name), None
    from .to_gguf import convert, gguf_record

    path = convert(
        source, to, out, progress=progress, cancel=cancel, name=name, imatrix=opts.imatrix
    )
    return gguf_record(path, source, to, name=name), None


def measure(
    source: str | os.PathLike[str],
    result: str | os.PathLike[str],
    to: str,
    progress: Progress | None = None,
    cancel: Any = None,
) -> Any:
    """The quality report (``quant.quality.QualityReport``) of ``result`` against ``source``:
    the weights dequantized for GGUF and MLX, ONNX Runtime's own kernels for ONNX."""
    if target(to).family == "onnx":
        from .onnx import measure_onnx

        return measure_onnx(source, result, to, progress=progress, cancel=cancel)
    from .quality import measure as measure_weights

    return measure_weights(source, result, to, progress=progress, cancel=cancel)


def convert_into_library(
    source: str | os.PathLike[str],
    to: str,
    *,
    catalog: Any,
    out: str | os.PathLike[str] | None = None,
    name: str | None = None,
    options: Options | None = None,
    source_id: str | None = None,
    progress: Progress | None = None,
    report_progress: Progress | None = None,
    cancel: Any = None,
) -> Converted:
    """Convert, measure the quality (``options.report``), register in ``catalog``: the one
    pipeline of the CLI and the window. ``out`` None: a new name in the library's folder
    (the library owns the file). A cancel at any point (``cancel.is_set()``) leaves nothing
    behind; a report that cannot be made leaves the model registered without one
    (``report_problem`` says why)."""
    from models.errors import describe

    opts = options or Options()
    folder = Path(source).expanduser().resolve()
    owned = out is None
    final = Path(out).expanduser() if out is not None else library_output(folder, to, name)
    record, note = write(
        folder, to, final, name=name, options=opts, progress=progress, cancel=cancel
    )
    path = Path(record.path)
    quality, problem = None, None
    if opts.report:
        try:
            quality = measure(folder, path, to, progress=report_progress, cancel=cancel)
        except Cancelled:
            _remove(path)
            raise Cancelled("conversion cancelled; nothing was kept") from None
        except Exception as exc:  # the model is fine; only its report is missing
            problem = describe(exc)
    if cancel is not None and cancel.is_set():
        _remove(path)
        raise Cancelled("conversion cancelled; nothing was kept")
    provenance = dict(record.provenance)
    if source_id:
        provenance["source_id"] = source_id
    if quality is not None:
        provenance["quality"] = quality.to_dict()
    if opts.imatrix is not None:
        provenance["imatrix"] = opts.imatrix_from or "given"
    try:
        record = catalog.add(record.replace(owned=owned, provenance=provenance))
    except BaseException:
        if owned:
            _remove(path)
        raise
    return Converted(record, quality, note, problem)


def remove_partials(source: str | os.PathLike[str], to: str, name: str | None = None) -> None:
    """What a killed conversion into the library was writing (never under a final name)."""
    from .staging import partials_beside

    for partial in partials_beside(_library_base(source, target(to), name)):
        shutil.rmtree(partial, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


__all__ = [
    "Converted",
    "Options",
    "Target",
    "check",
    "convert_into_library",
    "expected_size",
    "library_output",
    "measure",
    "remove_partials",
    "write",
]
