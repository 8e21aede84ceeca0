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

import dataclasses
import gc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import Cancelled, UnsupportedModel
from models.work import Progress

from .errors import QualityError
from .readback import SKIPPED, open_result

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
    weights = open_result(source, result, kind)
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
