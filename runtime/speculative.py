"""Speculative decoding on the llama.cpp engine: guessed tokens checked in one batch.

Two ways to guess, both verified by the model itself (greedy answers keep their meaning; a
batch of several tokens rounds a little differently from one-token steps, so long greedy
texts can part ways after a while):

- ``ngram`` (prompt lookup): when the last few tokens already appeared in the prompt or the
  answer, the tokens that followed them there are proposed. It costs little when nothing
  matches (nothing is proposed) and pays when the answer copies from the prompt (rewriting
  code, quoting a text).
  llama.cpp's ``ngram_map_k`` with a 3-token key and up to 8 proposed tokens: on the
  copying prompt of tests/perf/test_speculative_bench.py (2 threads, under load) it ran at 86-115
  tokens/s against 58-82 for ``ngram_simple`` 3/8 (which proposed 200 tokens for 120
  accepted, against 120 for 120) and 38-60 without; ``ngram_simple``'s defaults (12/48)
  were slower than none.
- ``draft``: a small model with the same vocabulary proposes the next few tokens. The two
  vocabularies are compared from the GGUF headers before anything loads.

Measured here (2 cores, beside other work) it pays on copy-heavy prompts with two threads
and not with one (what a busy machine gets), so it is off unless asked for (``DEFAULT``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InvalidParameters, ModelLoadError

MODES = ("off", "ngram")  # plus "draft", implied by a draft model
DEFAULT = "off"
NGRAM_KEY = 3  # tokens that must match
NGRAM_PROPOSE = 8  # tokens proposed after a match
DRAFT_PROPOSE = 8  # tokens a draft model proposes per step at most


def check_mode(mode: str | None) -> None:
    if mode is not None and mode not in MODES:
        raise InvalidParameters(
            f"speculative decoding is 'off' or 'ngram' (or a draft model), got {mode!r}"
        )


def mode_for(speculate: str | None, draft: str | None) -> str:
    """What runs: a draft model wins; else the mode asked for; else the default."""
    if draft:
        return "draft"
    return speculate or DEFAULT


def check_draft(model: str | Path, draft: str | Path) -> None:
    """Refuse, in words, a draft model whose vocabulary is not the model's own."""
    from models.errors import InvalidModelFile
    from models.gguf_vocab import read_vocabulary

    draft = Path(draft)
    if draft.suffix.lower() != ".gguf" and not draft.is_file():
        raise ModelLoadError(f"the draft model must be a GGUF file; {draft} is not one")
    try:
        mine, theirs = read_vocabulary(model), read_vocabulary(draft)
    except InvalidModelFile as exc:
        raise ModelLoadError(f"the draft model cannot be used: {exc}") from None
    name = draft.name
    if theirs.size != mine.size:
        raise ModelLoadError(
            f"the draft model {name} has a vocabulary of {theirs.size:,} tokens and this model "
            f"{mine.size:,}: a draft model must share the model's vocabulary (pick a smaller "
            "model of the same family)"
        )
    if theirs.model != mine.model:
        raise ModelLoadError(
            f"the draft model {name} uses another kind of tokenizer ({theirs.model} vs "
            f"{mine.model}): a draft model must share the model's vocabulary"
        )
    for i, (a, b) in enumerate(zip(mine.tokens, theirs.tokens, strict=True)):
        if a != b:
            raise ModelLoadError(
                f"the draft model {name} spells token {i} {b!r} where this model has {a!r}: "
                "a draft model must share the model's vocabulary"
            )


def configure(xl: Any, p: Any, mode: str, draft: str | None = None) -> None:
    """Set llama.cpp's speculative settings on CommonParams ``p`` for ``mode``."""
    kinds = xl.common_speculative_type
    spec = p.speculative
    if mode == "ngram":
        spec.types = [kinds.COMMON_SPECULATIVE_TYPE_NGRAM_MAP_K]
        spec.ngram_map_k.size_n = NGRAM_KEY
        spec.ngram_map_k.size_m = NGRAM_PROPOSE
    elif mode == "draft" and draft:
        spec.types = [kinds.COMMON_SPECULATIVE_TYPE_DRAFT_SIMPLE]
        spec.draft.mparams.path = str(draft)
        spec.draft.n_max = DRAFT_PROPOSE
        spec.draft.n_gpu_layers = p.n_gpu_layers
        spec.draft.cpuparams.n_threads = p.cpuparams.n_threads
        spec.draft.cpuparams_batch.n_threads = p.cpuparams_batch.n_threads
        spec.draft.cpuparams.poll = 0
        spec.draft.cpuparams_batch.poll = 0
    else:
        spec.types = [kinds.COMMON_SPECULATIVE_TYPE_NONE]


def draft_counts(timings: Any) -> tuple[int, int]:
    """(tokens proposed, tokens accepted) from llama.cpp's timings of one answer."""
    if not isinstance(timings, dict):
        return 0, 0
    return int(timings.get("draft_n") or 0), int(timings.get("draft_n_accepted") or 0)


def draft_path(catalog: Any, ref: str) -> str:
    """The GGUF file of a draft model given as a library id or a path (refused in words
    when it is not a GGUF model)."""
    from models import resolve

    record = resolve(catalog, ref)
    if record.format != "gguf":
        raise InvalidParameters(
            f"the draft model must be a GGUF model run by llama.cpp; {record.name} is not one"
        )
    return record.path
