"""Hugging Face / PyTorch checkpoint -> GGUF, one tensor at a time.

F16, BF16 and Q8_0 are encoded here. The K-quant and Q4_0 mixes choose each tensor's type by
llama.cpp's rules (quant.kquant_rules) and quantize it with ggml's own quantizer
(quant.ggml_quants, in xllamacpp's library), piece by piece as it streams through: no
intermediate file, peak memory near one piece of one tensor; the bytes go through the gguf
writer's own API (``_Streamed``). Output is staged beside the target (quant.staging), re-opened
and checked, and only then renamed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from models.errors import Cancelled, InvalidModelFile
from models.gguf import read_gguf
from models.hf import HFCheckpoint, read_hf_folder
from models.records import ModelRecord
from models.space import require_space
from models.work import Progress

from .arch import Architecture, architecture_for
from .errors import CONVERT_ADVICE, ConversionError, NotEnoughSpace
from .kquant_rules import MIXES, ModelShape, choose_types, loader_order
from .sources import TensorSource, as_bf16, as_f16, as_f32, open_source, require_tokenizer
from .staging import require_new, staged_output
from .types import CONVERTER_VERSION, OutputType, output_type
from .vocab import write_tokenizer

Q = gguf.GGMLQuantizationType
CHUNK_BYTES = 16 * 1024 * 1024  # float32 working set per piece of a large tensor
# (type, float32 rows, name, expert index in a stacked tensor) -> blocks
Quantize = Callable[[Q, np.ndarray, str, int], np.ndarray]


@dataclass(frozen=True)
class PlannedTensor:
    source: str | None  # the checkpoint's name (None: computed by the converter)
    name: str  # the GGUF name
    shape: tuple[int, ...]
    ggml_type: Q
    n_bytes: int
    quantized: bool = False  # made by ggml's quantizer from float32 (the K-quant mixes)
    parts: tuple[str, ...] = ()  # stacked experts: the checkpoint's tensors, expert by expert

    @property
    def sources(self) -> tuple[str, ...]:
        """The checkpoint tensors written into this one, in order."""
        if self.parts:
            return self.parts
        return () if self.source is None else (self.source,)


def _nbytes(shape: tuple[int, ...], qtype: Q) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape, dtype=np.int64)) // block * size


def _choose_type(kind: str, shape: tuple[int, ...], otype: OutputType) -> Q:
    """The type of a tensor our own writer encodes (every tensor of F16/BF16/Q8_0, and those
    a mix keeps unquantized)."""
    if len(shape) < 2:
        return Q.F32  # norms, biases: llama.cpp wants them in full precision
    if otype.label == "F16":
        return Q.F16
    if otype.label == "BF16":
        return Q.BF16
    if otype.label == "Q8_0":
        return Q.Q8_0 if shape[-1] % 32 == 0 else Q.F16
    # Kept by a mix: the source's own precision, nothing lost (as llama.cpp keeps them).
    return {"BF16": Q.BF16, "F16": Q.F16}.get(kind, Q.F32)


def model_shape(arch: Architecture) -> ModelShape:
    return ModelShape(arch.arch_name, arch.n_layers, arch.n_heads, arch.n_kv_heads)


def plan_tensors(
    arch: Architecture, src: TensorSource, otype: OutputType, has_imatrix: bool = False
) -> list[PlannedTensor]:
    """What will be written, in llama.cpp's tensor order (whole-model tensors, then by layer)."""
    entries: list[tuple[str | None, str, tuple[int, ...], str]] = []
    experts: dict[str, dict[int, str]] = {}
    for hf_name, t in src.tensors.items():
        part = arch.expert_part(hf_name)
        if part is not None:
            name = arch.gguf_name(part[0])
            if name is not None:
                experts.setdefault(name, {})[part[1]] = hf_name
            continue
        made = arch.derived(hf_name, t.shape)
        if made:
            entries.extend((hf_name, name, shape, t.kind) for name, shape in made)
            continue
        name = arch.gguf_name(hf_name)
        if name is not None:
            entries.append((hf_name, name, t.shape, t.kind))
    stacks = {name: _expert_stack(arch, src, name, parts) for name, parts in experts.items()}
    for name, (parts, shape, kind) in stacks.items():
        entries.append((parts[0], name, shape, kind))
    for name, array in arch.extra_tensors().items():
        entries.append((None, name, array.shape, "F32"))
    names = [e[1] for e in entries]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidModelFile(f"two checkpoint tensors map to the same GGUF tensor {dup!r}")
    if not any(n.startswith("token_embd") for n in names):
        raise InvalidModelFile("the checkpoint has no token embedding; it looks incomplete")
    mixed: Mapping[str, Q | None] = {}
    if otype.mixed:
        mix = MIXES[otype.label]
        mixed = choose_types([(e[1], e[2]) for e in entries], mix, model_shape(arch), has_imatrix)
    plan = []
    for source, name, shape, kind in sorted(entries, key=lambda e: loader_order(e[1])):
        qtype = mixed.get(name)
        quantized = qtype is not None
        if qtype is None:
            # biases in full precision, even stacked per expert (2-D): llama.cpp adds them as F32
            qtype = Q.F32 if name.endswith(".bias") else _choose_type(kind, shape, otype)
        parts = stacks[name][0] if name in stacks else ()
        plan.append(
            PlannedTensor(source, name, shape, qtype, _nbytes(shape, qtype), quantized, parts)
        )
    return plan


def _expert_stack(
    arch: Architecture, src: TensorSource, name: str, parts: dict[int, str]
) -> tuple[tuple[str, ...], tuple[int, ...], str]:
    """One layer's experts of one projection as one tensor: (their names in expert order,
    the stacked shape, their kind). All experts must be there, alike in shape and type."""
    if sorted(parts) != list(range(arch.n_experts)):
        raise InvalidModelFile(
            f"the checkpoint holds {len(parts)} experts for {name}, the config says "
            f"{arch.n_experts}; the download looks incomplete"
        )
    names = tuple(parts[i] for i in range(arch.n_experts))
    first = src.tensors[names[0]]
    if any((src.tensors[n].shape, src.tensors[n].kind) != (first.shape, first.kind) for n in names):
        raise InvalidModelFile(f"the experts of {name} differ in shape or type")
    return names, (len(names), *first.shape), first.kind


def _encode(
    array: np.ndarray, kind: str, p: PlannedTensor, quantize: Quantize, expert: int = 0
) -> np.ndarray:
    if p.quantized:
        return quantize(p.ggml_type, as_f32(array, kind), p.name, expert)
    if p.ggml_type == Q.F32:
        return np.ascontiguousarray(as_f32(array, kind))
    if p.ggml_type == Q.F16:
        return np.ascontiguousarray(as_f16(array, kind))
    if p.ggml_type == Q.BF16:
        return np.ascontiguousarray(as_bf16(array, kind))
    if p.ggml_type == Q.Q8_0:
        return gguf.quants.quantize(np.ascontiguousarray(as_f32(array, kind)), Q.Q8_0)
    raise ConversionError(f"internal: no encoder for {p.ggml_type.name}")


def _chunks(arch: Architecture, name: str, data: np.ndarray, kind: str):
    """The tensor, transformed, in pieces of whole rows (about CHUNK_BYTES of float32 each).

    Tensors an architecture transforms are transformed whole (they are small: q/k, norms).
    """
    if arch.needs_float(name):
        data, kind = as_f32(data, kind), "F32"
    if arch.changes(name):
        data = arch.transform(name, data)
    if data.ndim < 2:
        yield data, kind
        return
    rows = data.reshape(-1, data.shape[-1])
    step = max(1, CHUNK_BYTES // (rows.shape[1] * 4))
    for start in range(0, rows.shape[0], step):
        yield rows[start : start + step], kind


def _file_type(plan: list[PlannedTensor], otype: OutputType) -> int:
    if otype.mixed or otype.label == "Q8_0":
        return otype.file_type
    # "Mostly" 16-bit by the weights' size, as llama.cpp labels a file by what was asked:
    # a few 2-D tensors kept in F32 (gpt-oss's expert biases) do not make it an F32 file.
    sizes: dict[Q, int] = {}
    for p in plan:
        if len(p.shape) >= 2:
            sizes[p.ggml_type] = sizes.get(p.ggml_type, 0) + math.prod(p.shape)
    total = sum(sizes.values())
    if total and sizes.get(Q.BF16, 0) * 2 > total:
        return gguf.LlamaFileType.MOSTLY_BF16
    if total and sizes.get(Q.F16, 0) * 2 > total:
        return gguf.LlamaFileType.MOSTLY_F16
    return gguf.LlamaFileType.ALL_F32


class _Streamed:
    """One planned tensor as the gguf writer's lazy-tensor protocol sees it (``shape``,
    ``dtype``, ``nbytes``, ``tofile``): the writer lays out the file, aligns and pads, and
    calls ``tofile`` in its own order; the bytes are encoded piece by piece as they go out,
    so peak memory stays near one piece of one tensor."""

    dtype = np.dtype(np.uint8)  # raw ggml blocks, typed by the writer's raw_dtype

    def __init__(self, p: PlannedTensor, write: Callable[[PlannedTensor, Any], int]) -> None:
        block, size = gguf.GGML_QUANT_SIZES[p.ggml_type]
        self.plan, self.nbytes, self._write = p, p.n_bytes, write
        self.shape = (*p.shape[:-1], p.shape[-1] // block * size)  # the row in bytes

    def tofile(self, fout: Any) -> None:
        if self._write(self.plan, fout) != self.nbytes:
            raise ConversionError(f"internal: {self.plan.name} encoded to an unexpected size")


def _write_gguf(
    path: Path,
    ckpt: HFCheckpoint,
    arch: Architecture,
    src: TensorSource,
    plan: list[PlannedTensor],
    otype: OutputType,
    name: str,
    quantize: Quantize,
    tick: Callable[[int], None],
    cancel: Any,
) -> None:
    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("conversion cancelled; nothing was kept")

    extras = arch.extra_tensors()
    index = {p.name: i for i, p in enumerate(plan)}
    last_use = {source: i for i, p in enumerate(plan) for source in p.sources}

    def write(p: PlannedTensor, fout: Any) -> int:
        check_cancel()
        pieces: list[tuple[str | None, str]] = [(n, src.tensors[n].kind) for n in p.sources] or [
            (None, "F32")
        ]
        written = 0
        for expert, (source, kind) in enumerate(pieces):
            data = extras[p.name] if source is None else src.read(source)
            for chunk, chunk_kind in _chunks(arch, p.name, data, kind):
                check_cancel()
                encoded = _encode(chunk, chunk_kind, p, quantize, expert)
                fout.write(encoded.data)  # (numpy's tofile loses the errno of a full disk)
                written += encoded.nbytes
                tick(encoded.nbytes)
                del chunk, encoded
            del data
            if source is not None and last_use[source] == index[p.name]:
                src.release(source)
        return written

    w = gguf.GGUFWriter(path, arch.arch_name)
    try:
        w.add_name(name)
        w.add_string("general.source.converter", CONVERTER_VERSION)
        w.add_file_type(_file_type(plan, otype))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        arch.write_hparams(w)
        write_tokenizer(w, ckpt.path, arch.vocab_size)
        for p in plan:
            # llama.cpp reads GGUF shapes in reverse order; the writer reverses numpy's.
            w.add_tensor(p.name, _Streamed(p, write), raw_dtype=p.ggml_type)  # type: ignore[arg-type]
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.flush()
    finally:
        w.close()


def _check_space(folder: Path, needed: int) -> None:
    require_space(
        folder, needed, doing="the conversion", advice=CONVERT_ADVICE, error=NotEnoughSpace
    )


def _verify(path: Path, plan: list[PlannedTensor], arch_name: str) -> None:
    info = read_gguf(path)
    if info.architecture != arch_name:
        raise ConversionError("the written file does not read back as the converted model")
    got = [(t.name, t.ggml_type, t.n_bytes) for t in info.tensors]
    if got != [(p.name, int(p.ggml_type), p.n_bytes) for p in plan]:
        raise ConversionError(
            f"the written file holds {len(got)} tensors that do not match the {len(plan)} "
            f"that were written"
        )


def _quantizer(otype: OutputType, imatrix: Mapping[str, np.ndarray] | None) -> Quantize:
    """How the planned-quantized tensors are encoded: ggml's quantizer, with the importance
    matrix's row for each tensor (llama.cpp's handling: a tensor it lacks is quantized
    without one; a token embedding of another size is ignored)."""
    if not otype.mixed:
        if imatrix is not None:
            raise ConversionError(
                f"an importance matrix applies only to the K-quant and Q4_0 types, "
                f"not {otype.label}"
            )
        return _no_quantizer
    from .ggml_quants import load

    quantizer = load()
    weights: dict[str, np.ndarray] = {}
    for key, values in (imatrix or {}).items():
        array = np.asarray(values, dtype=np.float32).reshape(-1)
        if not np.isfinite(array).all():
            raise ConversionError(f"the importance matrix for {key} holds non-finite values")
        weights[key] = array

    def quantize(qtype: Q, rows: np.ndarray, name: str, expert: int = 0) -> np.ndarray:
        w = weights.get(name)
        if w is not None and w.size > rows.shape[-1] and w.size % rows.shape[-1] == 0:
            # a stacked experts tensor: llama.cpp keeps one row of weights per expert
            per = rows.shape[-1]
            if w.size >= (expert + 1) * per:
                w = w[expert * per : (expert + 1) * per]
        if w is not None and w.size != rows.shape[-1]:
            if name.startswith("token_embd"):
                w = None
            else:
                raise ConversionError(
                    f"the importance matrix for {name} has {w.size} values; its rows have "
                    f"{rows.shape[-1]}"
                )
        return quantizer.quantize(qtype, rows, w, name)

    return quantize


def _no_quantizer(qtype: Q, rows: np.ndarray, name: str, expert: int = 0) -> np.ndarray:
    raise ConversionError(f"internal: {name} planned as {qtype.name} without a quantizer")


def convert(
    source: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    name: str | None = None,
    imatrix: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Convert the Hugging Face folder ``source`` to GGUF type ``to`` (e.g. ``gguf-q4_k_m``).

    ``imatrix``: an importance matrix (GGUF tensor name -> one float32 weight per column),
    used by the K-quant and Q4_0 types. Returns the output path. Raises InvalidModelFile /
    UnsupportedModel before any heavy work, NotEnoughSpace before writing, Cancelled or
    ConversionError after removing partial files.
    """
    otype = output_type(to)
    ckpt = read_hf_folder(source)
    arch = architecture_for(ckpt)
    require_tokenizer(ckpt)
    quantize = _quantizer(otype, imatrix)
    final = require_new(out, ckpt.path, otype.name)
    model_name = name or str(ckpt.config.get("_name_or_path") or "").strip() or ckpt.path.name

    with open_source(ckpt) as src:
        plan = plan_tensors(arch, src, otype, has_imatrix=imatrix is not None)
        total = sum(p.n_bytes for p in plan)
        _check_space(final.parent, total)
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(min(done, total), total)

        if progress:
            progress(0, total)
        with staged_output(final) as stage:
            _write_gguf(stage.out, ckpt, arch, src, plan, otype, model_name, quantize, tick, cancel)
            _verify(stage.out, plan, arch.arch_name)
            stage.out.chmod(0o644)
    if progress:
        progress(total, total)
    return final


def gguf_record(
    path: Path, source: str | os.PathLike[str], to: str, name: str | None = None
) -> ModelRecord:
    """The library record of a converted GGUF, with its provenance (not yet registered)."""
    from models.recognize import describe

    record = describe(Path(path), source="converted")
    return record.replace(
        name=name or record.name,
        provenance={
            "origin": str(Path(source).expanduser().resolve()),
            "converter": CONVERTER_VERSION,
            "type": output_type(to).name,
        },
    )
