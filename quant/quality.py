"""How closely a converted model follows its source: the quality report. No Qt.

``measure(source, result, kind)`` runs the source checkpoint with transformers (float32, CPU)
over a short built-in English text, keeps its next-token distributions, puts the result's
weights, dequantized to float32, into the same model (in place: never two models in memory)
and runs it again. The report: the mean KL(source || result) over every position, the share
of positions where both rank the same token first (top-1 agreement), and a verdict:

==========================  ==============  =============================================
verdict                     mean KL (nats)  measured on SmolLM2-135M (tests' checkpoint)
==========================  ==============  =============================================
very close to the original  below 0.01      F16 0.0000, Q8_0 0.0011, MLX 8-bit 0.0025
close to the original       0.01 to 0.05    Q4_K_M 0.047 (larger models score lower)
noticeably degraded         0.05 to 0.2     usable; now and then a worse word
badly degraded              0.2 or more     Q4_0 0.30, MLX 4-bit g64 0.41: prefer more bits
==========================  ==============  =============================================

Small models suffer most from few bits; the same type scores better on a larger model.

A GGUF's tensors are dequantized by ``gguf.quants.dequantize`` and mapped back to the
checkpoint's names by inverting the converter's own mapping (``quant.arch``: llama's Q/K rope
permutation, Gemma's ``1 + w`` norms); an MLX folder's affine weights are dequantized here in
numpy (``w = scale * q + bias`` per group). It measures the weights, not an engine's kernels
(MLX's CPU kernels are no oracle: ENVIRONMENT.md). torch and transformers load lazily.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import mmap
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import Cancelled, InvalidModelFile, UnsupportedModel

from .errors import ConversionError

Progress = Callable[[int, int], None]

# Our own words: plain prose, a list, a little dialogue and some numbers, so the measure sees
# more than one register. About 300 tokens for a Llama-style tokenizer.
TEXT = """\
On the first cold evening of autumn, the village gathered in the old stone hall to decide \
what to do about the bridge. It had stood over the river for nearly two hundred years, but the \
spring floods had cracked one of its arches, and the carts that carried apples to the market \
now went the long way round, through the hills.

The miller spoke first. "We could repair it ourselves," she said, "if every family gave two \
days of work and a little money for the stone." The schoolteacher agreed, and added that the \
children could help by carrying water and keeping a record of who had worked and when.

Not everyone was convinced. An old farmer pointed out that the last repair, in 1911, had taken \
three summers and most of the savings of the parish. He asked whether a new bridge, built of \
steel a little further upstream, might be cheaper in the end.

By nine o'clock they had a plan with four parts:
1. Measure the damage and ask an engineer from the town for advice.
2. Collect the stone from the quarry before the first snow.
3. Work on the arch on dry days from March to June.
4. Hold a small festival on the bridge when it opens again.

Walking home under a clear sky, people talked less about the cost than about the festival. \
Somebody promised music, somebody else promised bread, and the children argued about whether \
the first cart across should carry apples or pumpkins.
"""

# (upper bound on the mean KL, verdict); at or above the last bound: BADLY_DEGRADED.
VERDICTS: tuple[tuple[float, str], ...] = (
    (0.01, "very close to the original"),
    (0.05, "close to the original"),
    (0.2, "noticeably degraded"),
)
BADLY_DEGRADED = "badly degraded"
# Shares of the progress bar: the source's run, reading the result's weights, the result's run.
_SOURCE_RUN, _READ, _RESULT_RUN = 30, 40, 30
PROGRESS_TOTAL = _SOURCE_RUN + _READ + _RESULT_RUN
SKIPPED = ("rotary_emb.inv_freq", "attn.bias", "attn.masked_bias")  # computed, never converted


class QualityError(ConversionError):
    """The quality of a conversion could not be measured; the message says why."""


def verdict_for(kl: float) -> str:
    for bound, words in VERDICTS:
        if kl < bound:
            return words
    return BADLY_DEGRADED


@dataclass(frozen=True)
class QualityReport:
    kl: float  # mean KL(source || result) over the positions, in nats
    top1: float  # share of positions where both rank the same token first (0..1)
    tokens: int  # positions compared
    verdict: str
    kind: str = ""  # the output type measured (gguf-q4_k_m, mlx-4bit ...)
    method: str = "transformers float32 on CPU, the result's weights dequantized"

    def describe(self) -> str:
        """One plain sentence for the window and the terminal."""
        return (
            f"{self.verdict[:1].upper()}{self.verdict[1:]}: over {self.tokens} tokens of text it "
            f"picked the same next word as the original {self.top1:.0%} of the time "
            f"(mean KL divergence {self.kl:.4f})."
        )

    def to_dict(self) -> dict[str, Any]:
        """What the library keeps in the model's provenance (``summary``: the sentence)."""
        data = dataclasses.asdict(self)
        data.update(kl=round(self.kl, 6), top1=round(self.top1, 4), summary=self.describe())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityReport:
        kl, top1, tokens = float(data["kl"]), float(data["top1"]), int(data["tokens"])
        verdict = str(data.get("verdict") or verdict_for(kl))
        kept = {k: str(data[k]) for k in ("kind", "method") if data.get(k)}
        return cls(kl, top1, tokens, verdict, **kept)


@dataclass
class Reference:
    """The source's side of a measurement (reusable for several results of one source)."""

    folder: Path
    ids: list[int]
    log_probs: np.ndarray = field(repr=False)  # (tokens, vocab) float32


# -- checks ---------------------------------------------------------------------------------
def _check_cancel(cancel: Any) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("the quality check was cancelled")


def _need_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError:
        raise UnsupportedModel(
            "measuring a conversion's quality needs PyTorch and transformers, which are not "
            "installed: pip install 'fireside[torch]'"
        ) from None
    return torch


# -- the source's run -----------------------------------------------------------------------
def _load_source(folder: Path) -> tuple[Any, Any]:
    torch = _need_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our caller shows progress its own way
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QualityError(f"transformers could not load {folder.name} ({first})") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return tokenizer, model


def _log_probs(model: Any, ids: list[int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].float()
        return torch.log_softmax(logits, dim=-1).numpy()


def _run_source(folder: Path, cancel: Any) -> tuple[Reference, Any]:
    tokenizer, model = _load_source(folder)
    _check_cancel(cancel)
    ids = list(tokenizer(TEXT).input_ids)
    return Reference(folder, ids, _log_probs(model, ids)), model


def reference_for(source_folder: str | os.PathLike[str], cancel: Any = None) -> Reference:
    """The source's next-token distributions on the built-in text (to measure several results
    of one source against it without running the source again)."""
    ref, model = _run_source(Path(source_folder).expanduser().resolve(), cancel)
    del model
    gc.collect()
    return ref


def compare(reference: np.ndarray, result: np.ndarray) -> tuple[float, float]:
    """Mean KL(reference || result) and top-1 agreement of two (tokens, vocab) log-probs."""
    if reference.shape != result.shape:
        raise QualityError("the two models do not share a vocabulary; they cannot be compared")
    p = reference.astype(np.float64)
    q = result.astype(np.float64)
    kl = (np.exp(p) * (p - q)).sum(-1)
    top1 = (p.argmax(-1) == q.argmax(-1)).mean()
    return float(max(kl.mean(), 0.0)), float(top1)


# -- the result's weights, by checkpoint name -----------------------------------------------
def _inverse(arch: Any, gguf_name: str, shape: tuple[int, ...]) -> Callable[[np.ndarray], Any]:
    """Undo ``arch.transform`` on a tensor of (numpy) ``shape``, found by probing it (so the
    converter's mapping stays the one definition): a re-ordering of rows (the rope
    permutation) or a constant offset (``1 + w`` norms) are what the architectures do."""
    if not arch.changes(gguf_name):
        return lambda a: a
    if len(shape) >= 2:
        order = np.asarray(
            arch.transform(gguf_name, np.arange(shape[0], dtype=np.float32)[:, None])
        )
        order = order[:, 0].astype(np.int64)
        if sorted(order.tolist()) != list(range(shape[0])):
            raise QualityError(f"internal: no inverse for the transform of {gguf_name}")

        def unpermute(a: np.ndarray) -> np.ndarray:
            out = np.empty_like(a)
            out[order] = a
            return out

        return unpermute
    offset = np.asarray(arch.transform(gguf_name, np.zeros(shape, np.float32)))
    if not np.allclose(
        np.asarray(arch.transform(gguf_name, np.ones(shape, np.float32))) - offset, 1
    ):
        raise QualityError(f"internal: no inverse for the transform of {gguf_name}")
    return lambda a: a - offset


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield mm
        finally:
            with contextlib.suppress(BufferError):  # an array still viewing it: the GC closes it
                mm.close()


def _floats(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return raw.view({"F16": np.float16, "F32": np.float32}[dtype]).astype(np.float32)


def mlx_dequantize(
    packed: np.ndarray, scales: np.ndarray, biases: np.ndarray, bits: int, group_size: int
) -> np.ndarray:
    """MLX's affine quantization undone: ``packed`` uint32 words (little-endian, ``32/bits``
    values each), one float ``scale`` and ``bias`` per group of ``group_size`` values."""
    shifts = (np.arange(32 // bits, dtype=np.uint32) * bits)[None, :]
    rows = packed.reshape(-1, packed.shape[-1])
    q = (rows[..., None] >> shifts) & np.uint32((1 << bits) - 1)
    q = q.reshape(rows.shape[0], -1, group_size).astype(np.float32)
    s = scales.reshape(rows.shape[0], -1, 1).astype(np.float32)
    b = biases.reshape(rows.shape[0], -1, 1).astype(np.float32)
    return (q * s + b).reshape(*packed.shape[:-1], -1)


class _Result:
    """A converted model's weights by checkpoint name (``weights``), and ``shapes``: each
    tensor's logical, numpy-order shape (None: absent; what the result leaves out on purpose,
    a tied lm_head, is not listed)."""

    def __init__(self, source: Path, path: Path, kind: str) -> None:
        self.source, self.path, self.name = source, path, path.name

    def shapes(self, names: list[str]) -> dict[str, tuple[int, ...] | None]:
        raise NotImplementedError

    def check(self, expected: dict[str, tuple[int, ...]]) -> None:
        for name, shape in self.shapes(list(expected)).items():
            if shape != expected[name]:
                got = "it lacks it" if shape is None else f"it has {shape}"
                raise QualityError(
                    f"{self.name} is not a conversion of {self.source.name}: the source's "
                    f"{name} has shape {expected[name]}, {got}"
                )


class _GGUFResult(_Result):
    def __init__(self, source: Path, path: Path, kind: str) -> None:
        super().__init__(source, path, kind)
        from models.gguf import read_gguf
        from models.hf import read_hf_folder

        from .arch import architecture_for
        from .types import OUTPUT_TYPES

        self.arch = architecture_for(read_hf_folder(source))
        try:
            self.info = read_gguf(path)
        except InvalidModelFile as exc:
            raise QualityError(f"{path.name} cannot be measured: {exc}") from None
        otype = OUTPUT_TYPES.get(kind.strip().lower())
        found = self.info.file_type
        if otype is not None and found and found != otype.label:
            raise QualityError(f"{path.name} is a {found} file, not {otype.label}")
        if self.info.architecture != self.arch.arch_name:
            raise QualityError(
                f"{path.name} holds a {self.info.architecture or 'unknown'} model and "
                f"{source.name} is {self.arch.arch_name}: it is not a conversion of this source"
            )
        self.tensors = {t.name: t for t in self.info.tensors}

    def _gguf(self, names: list[str]) -> dict[str, Any]:
        mapped = {n: self.arch.gguf_name(n) for n in names}
        return {n: g for n, g in mapped.items() if g is not None}

    def shapes(self, names: Any) -> dict[str, tuple[int, ...] | None]:
        found = {n: self.tensors.get(g) for n, g in self._gguf(list(names)).items()}
        return {n: tuple(reversed(t.shape)) if t else None for n, t in found.items()}

    def weights(self, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        import gguf

        with _mapped(self.path) as mm:
            for name, gname in self._gguf(names).items():
                t = self.tensors[gname]
                qtype = gguf.GGMLQuantizationType(t.ggml_type)
                block, size = gguf.GGML_QUANT_SIZES[qtype]
                shape = tuple(reversed(t.shape))
                start = self.info.data_offset + t.offset
                raw = np.frombuffer(mm, np.uint8, count=t.n_bytes, offset=start)
                raw = raw.reshape(*shape[:-1], shape[-1] // block * size)
                array = np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32)
                yield name, _inverse(self.arch, gname, shape)(array.reshape(shape))
                del raw, array


class _MLXResult(_Result):
    def __init__(self, source: Path, path: Path, kind: str) -> None:
        super().__init__(source, path, kind)
        from models.hf import read_hf_folder

        from .mlx import MLX_TYPES

        try:
            self.ckpt = read_hf_folder(path)
        except InvalidModelFile as exc:
            raise QualityError(f"{path.name} cannot be measured: {exc}") from None
        config = self.ckpt.config
        quant = config.get("quantization") or config.get("quantization_config")
        self.bits, self.group = None, 64
        if isinstance(quant, dict) and quant.get("bits"):
            self.bits, self.group = int(quant["bits"]), int(quant.get("group_size", 64))
            if self.bits not in (2, 4, 8) or quant.get("mode", "affine") != "affine":
                raise QualityError(f"{path.name} uses a quantization that cannot be measured")
        mtype = MLX_TYPES.get(kind.strip().lower())
        if mtype is not None and mtype.bits != self.bits:
            has = f"{self.bits}-bit" if self.bits else "unquantized"
            raise QualityError(f"{path.name} holds {has} weights, not {mtype.label}")
        self.tied = bool(config.get("tie_word_embeddings", False))
        self.tensors = self.ckpt.tensors

    def _packed(self, name: str) -> tuple[Any, Any] | None:
        base = name.removesuffix(".weight")
        sc, bi = self.tensors.get(f"{base}.scales"), self.tensors.get(f"{base}.biases")
        if self.tensors[name].dtype == "U32" and sc is not None and bi is not None and self.bits:
            return sc, bi
        return None

    def shapes(self, names: Any) -> dict[str, tuple[int, ...] | None]:
        out: dict[str, tuple[int, ...] | None] = {}
        for name in names:
            t = self.tensors.get(name)
            if t is None:
                if not name.endswith(SKIPPED) and not (self.tied and name == "lm_head.weight"):
                    out[name] = None
                continue
            shape = tuple(t.shape)
            if self._packed(name) is not None:
                shape = (*shape[:-1], shape[-1] * 32 // (self.bits or 32))
            out[name] = shape
        return out

    def weights(self, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        with contextlib.ExitStack() as stack:
            maps: dict[Path, mmap.mmap] = {}

            def read(name: str) -> np.ndarray:
                t = self.tensors[name]
                if t.file not in maps:
                    maps[t.file] = stack.enter_context(_mapped(t.file))
                return np.frombuffer(maps[t.file], np.uint8, count=t.n_bytes, offset=t.start)

            for name in names:
                t = self.tensors.get(name)
                if t is None:
                    continue
                packed = self._packed(name)
                if packed is not None:
                    sc, bi = packed
                    array = mlx_dequantize(
                        read(name).view(np.uint32).reshape(t.shape),
                        _floats(read(sc.name), sc.dtype).reshape(sc.shape),
                        _floats(read(bi.name), bi.dtype).reshape(bi.shape),
                        self.bits or 4,
                        self.group,
                    )
                elif t.dtype in ("BF16", "F16", "F32"):
                    array = _floats(read(name), t.dtype).reshape(t.shape)
                else:
                    raise QualityError(f"{self.name}: {name} is stored as {t.dtype}")
                yield name, array
                del array


def _open_result(source: Path, result: Path, kind: str) -> _Result:
    if not result.exists():
        raise QualityError(f"{result} does not exist; there is nothing to measure")
    mlx = kind.strip().lower().startswith("mlx")
    if mlx != result.is_dir():
        what = "an MLX folder" if mlx else "a GGUF file"
        raise QualityError(f"{result.name} is not {what}, so it cannot be a {kind} conversion")
    return (_MLXResult if mlx else _GGUFResult)(source, result, kind)


# -- the measurement ------------------------------------------------------------------------
def measure(
    source_folder: str | os.PathLike[str],
    result_path: str | os.PathLike[str],
    kind: str,
    progress: Progress | None = None,
    cancel: Any = None,
    reference: Reference | None = None,
) -> QualityReport:
    """Measure how closely ``result_path`` (a GGUF file or an MLX folder, of output type
    ``kind``) follows the Hugging Face checkpoint in ``source_folder``.

    A result that is not of this source or type is refused before any model runs.
    ``reference`` (from :func:`reference_for`) skips the source's own run; its numbers are the
    same. Raises QualityError in plain words, UnsupportedModel without torch, Cancelled when
    ``cancel.is_set()``.
    """
    from models.hf import read_hf_folder

    source = Path(source_folder).expanduser().resolve()
    result = Path(result_path).expanduser()
    ckpt = read_hf_folder(source)  # a plain error for a folder that is not a checkpoint
    weights = _open_result(source, result, kind)
    if ckpt.tensors:  # safetensors: the shapes are known from the header, before any work
        weights.check({n: t.shape for n, t in ckpt.tensors.items() if not n.endswith(SKIPPED)})
    torch = _need_torch()

    def tick(done: int) -> None:
        if progress:
            progress(min(done, PROGRESS_TOTAL), PROGRESS_TOTAL)

    tick(0)
    _check_cancel(cancel)
    if reference is not None and reference.folder == source:
        ref, model = reference, _load_source(source)[1]
    else:
        ref, model = _run_source(source, cancel)
    tick(_SOURCE_RUN)
    try:
        params = dict(model.named_parameters())  # tied ones once, by their first name
        weights.check({name: tuple(p.shape) for name, p in params.items()})
        for i, (name, array) in enumerate(weights.weights(list(params)), 1):
            _check_cancel(cancel)
            if not array.flags.writeable or not array.flags.c_contiguous:
                array = np.array(array, dtype=np.float32)  # torch wants its own, writable copy
            with torch.no_grad():
                params[name].copy_(torch.from_numpy(array))
            tick(_SOURCE_RUN + _READ * i // len(params))
        _check_cancel(cancel)
        got = _log_probs(model, ref.ids)
    finally:
        del model
        gc.collect()
    kl, top1 = compare(ref.log_probs, got)
    if not np.isfinite(kl):
        raise QualityError(f"{result.name} gives non-finite probabilities; it looks damaged")
    tick(PROGRESS_TOTAL)
    return QualityReport(kl, top1, len(ref.ids), verdict_for(kl), kind.strip().lower())
