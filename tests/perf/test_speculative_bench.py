"""Speculative decoding (n-gram prompt lookup) against none, on a prompt the bundled model
answers by copying from it (rewrite a function with one change), with one and two threads;
and the same two on a prompt it does not copy from, where little is proposed.

Rounds alternate between the two engines so machine noise hits both alike; the ratio is
the median of each round's ratio (a round's two answers share the machine's state), the
medians of decode tokens/s are reported beside it. Greedy text with speculation can part from the
one-token text (a batch rounds differently): where it does is reported.
Run: .venv/bin/python -m pytest tests/perf/test_speculative_bench.py -m perf -s
"""

from __future__ import annotations

import statistics

import pytest
from copy_prompt import FUNCTION, MESSAGES, copied_lines

from models import describe
from runtime import GREEDY, BackendOptions
from runtime.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.perf

ROUNDS = 8
MAX_TOKENS = 180  # a sentence, then the rewritten function (about 150 tokens with its fences)
FREE = [
    {
        "role": "user",
        "content": "Describe a walk through a busy market on a summer morning: the stalls, "
        "the smells, the sounds and the people.",
    }
]


def _backend(gguf, threads, speculate):
    b = LlamaCppBackend(
        describe(gguf),
        BackendOptions(n_ctx=1024, n_threads=threads, n_parallel=1, speculate=speculate),
    )
    b.load()
    return b


def _run(backend, messages, params):
    backend.reset_cache()
    chunks = list(backend.stream(messages, params))
    return "".join(c.text for c in chunks), chunks[-1].timings


def _compare(gguf, threads, messages, params):
    off, ngram = _backend(gguf, threads, "off"), _backend(gguf, threads, "ngram")
    speeds: dict[str, list[float]] = {"off": [], "ngram": []}
    texts, accepted = {}, []
    try:
        for _ in range(ROUNDS):
            for name, backend in (("off", off), ("ngram", ngram)):
                text, t = _run(backend, messages, params)
                speeds[name].append(t.generation_tokens_per_s)
                texts[name] = text
                if name == "ngram":
                    accepted.append((t.accepted_tokens, t.draft_tokens))
    finally:
        off.unload()
        ngram.unload()
    med = {k: statistics.median(v) for k, v in speeds.items()}
    med["ratio"] = statistics.median(
        n / o for n, o in zip(speeds["ngram"], speeds["off"], strict=True)
    )
    return med, speeds, texts, accepted


def _divergence(a: str, b: str) -> str:
    if a == b:
        return "identical texts"
    at = next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )
    line = a[:at].count("\n") + 1
    return f"texts part at character {at} (line {line}): {a[at : at + 30]!r} vs {b[at : at + 30]!r}"


def _report(label, threads, med, speeds, texts, accepted):
    proposed = sum(d for _, d in accepted)
    share = sum(a for a, _ in accepted) / proposed if proposed else 0.0
    print(
        f"\n{label}, {threads} thread(s): off {med['off']:.1f} tokens/s "
        f"{[round(s) for s in speeds['off']]}, ngram {med['ngram']:.1f} "
        f"{[round(s) for s in speeds['ngram']]}, ratio of medians {med['ngram'] / med['off']:.2f}, "
        f"median of round ratios {med['ratio']:.2f}; "
        f"accepted {share:.0%} of {proposed // len(accepted)} proposed tokens an answer; "
        f"{_divergence(texts['off'], texts['ngram'])}"
    )
    return share


# The ratio is asserted for two threads (what a model gets on an idle two-core machine);
# with one thread (beside a busy process) it measured about even here, so it is reported.
@pytest.mark.parametrize("threads", [2, 1])
def test_ngram_speculation_pays_where_the_answer_copies(bundled_gguf, threads):
    med, speeds, texts, accepted = _compare(
        bundled_gguf, threads, MESSAGES, GREEDY.replace(max_tokens=MAX_TOKENS)
    )
    lines = len(FUNCTION.splitlines())
    assert copied_lines(texts["off"]) >= lines - 4, texts["off"]  # it really copies
    assert copied_lines(texts["ngram"]) >= lines - 4, texts["ngram"]
    share = _report("copying prompt", threads, med, speeds, texts, accepted)
    assert share > 0.5
    if threads == 2:
        assert med["ratio"] >= 1.3


def test_ngram_speculation_on_a_prompt_it_does_not_copy(bundled_gguf):
    """Reported, not asserted: the reason it is off by default."""
    params = GREEDY.replace(max_tokens=MAX_TOKENS, temperature=0.7, top_k=40, seed=7)
    params = params.replace(repeat_penalty=1.1, min_p=0.05, top_p=0.95)
    med, speeds, texts, accepted = _compare(bundled_gguf, 2, FREE, params)
    _report("free-text prompt (sampled)", 2, med, speeds, texts, accepted)
    assert med["off"] > 0 and med["ngram"] > 0


def test_a_draft_model_is_reported(bundled_gguf):
    """Reported, not asserted: the bundled model as its own draft (the only same-vocabulary
    pair here) accepts nearly everything but pays a second model's step for each proposal;
    a draft pays with a model several times smaller than the one it drafts for."""
    params = GREEDY.replace(max_tokens=MAX_TOKENS)
    off = _backend(bundled_gguf, 2, "off")
    drafted = LlamaCppBackend(
        describe(bundled_gguf),
        BackendOptions(n_ctx=1024, n_threads=2, n_parallel=1, draft=str(bundled_gguf)),
    )
    drafted.load()
    speeds: dict[str, list[float]] = {"off": [], "draft": []}
    shares, texts = [], {}
    try:
        for _ in range(ROUNDS // 2):
            for name, backend in (("off", off), ("draft", drafted)):
                text, t = _run(backend, MESSAGES, params)
                speeds[name].append(t.generation_tokens_per_s)
                texts[name] = text
                if t.acceptance is not None:
                    shares.append(t.acceptance)
    finally:
        off.unload()
        drafted.unload()
    med = {k: statistics.median(v) for k, v in speeds.items()}
    print(
        f"\ndraft (itself), 2 threads: off {med['off']:.1f} tokens/s, draft {med['draft']:.1f}, "
        f"ratio {med['draft'] / med['off']:.2f}, acceptance {statistics.median(shares):.0%}; "
        f"{_divergence(texts['off'], texts['draft'])}"
    )
    assert shares and statistics.median(shares) > 0.8
