"""The llama.cpp backend with the real bundled model, in this process."""

from __future__ import annotations

import threading
import time

import pytest
from backend_contract import collect

from models import Catalog, describe
from runtime import GREEDY, BackendOptions, ContextOverflow, GenerationParams
from runtime.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(bundled_gguf):
    b = LlamaCppBackend(
        describe(bundled_gguf), BackendOptions(n_ctx=2048, n_threads=2, n_parallel=1)
    )
    steps = []
    info = b.load(lambda d, t: steps.append((d, t)))
    assert steps[-1][0] == steps[-1][1], "load progress must end complete"
    assert info.context_length == 2048 and info.has_chat_template
    yield b
    b.unload()


QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


def test_real_generation_streams_text_and_ends_with_timings(backend):
    text, chunks = collect(
        backend.stream(
            [{"role": "user", "content": "What is the capital of France? Answer in one word."}],
            GREEDY.replace(max_tokens=24),
        )
    )
    assert "Paris" in text
    assert len(chunks) > 3, "the answer must arrive in several chunks, not at once"
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length")
    assert last.timings is not None and last.timings.generation_tokens_per_s > 0
    assert last.timings.time_to_first_token_s > 0
    assert last.prompt_tokens > 5 and 0 < last.completion_tokens <= 24
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_max_tokens_gives_length(backend):
    _, chunks = collect(
        backend.stream(
            [{"role": "user", "content": "Count from one to one hundred in words."}],
            GREEDY.replace(max_tokens=5),
        )
    )
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].completion_tokens == 5


def test_greedy_is_deterministic_and_seed_reproduces_sampling(backend):
    msgs = [{"role": "user", "content": "Write a short poem about the sea."}]
    a, _ = collect(backend.stream(msgs, GREEDY.replace(max_tokens=20)))
    b, _ = collect(backend.stream(msgs, GREEDY.replace(max_tokens=20)))
    assert a == b
    sampled = GenerationParams(temperature=1.0, seed=1234, max_tokens=20)
    c, _ = collect(backend.stream(msgs, sampled))
    d, _ = collect(backend.stream(msgs, sampled))
    assert c == d


def test_stop_string_ends_the_answer_before_it(backend):
    msgs = [{"role": "user", "content": "List the numbers 1, 2, 3, 4, 5 separated by commas."}]
    full, _ = collect(backend.stream(msgs, GREEDY.replace(max_tokens=30)))
    assert "3" in full
    stop_at = "3"
    text, chunks = collect(backend.stream(msgs, GREEDY.replace(max_tokens=30, stop=(stop_at,))))
    assert chunks[-1].finish_reason == "stop"
    assert stop_at not in text
    assert full.startswith(text)


def test_multi_turn_history_is_used(backend):
    msgs = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "My name is Zorblax. Remember it."},
        {"role": "assistant", "content": "Nice to meet you, Zorblax! I will remember your name."},
        {"role": "user", "content": "What is my name?"},
    ]
    text, _ = collect(backend.stream(msgs, GREEDY.replace(max_tokens=20)))
    assert "Zorblax" in text


def test_cancel_from_another_thread_ends_the_stream_at_the_next_step(backend):
    cancel = threading.Event()
    stream = backend.stream(
        [{"role": "user", "content": "Tell me a very long story about dragons."}],
        GenerationParams(max_tokens=2000, seed=1),
        cancel,
    )
    seen = 0
    for chunk in stream:
        if chunk.text:
            seen += 1
        if seen == 5:
            timer = threading.Timer(0.0, cancel.set)
            t0 = time.perf_counter()
            timer.start()
            timer.join()
            break
    rest = list(stream)
    elapsed = time.perf_counter() - t0
    assert rest[-1].finish_reason == "cancelled"
    # Bounded by what it means, not by the clock of a busy machine: the cancel lands at the
    # engine's next step, so at most a couple of tokens slip out after it (the time is
    # reported; on an idle machine it is a few milliseconds).
    late = sum(1 for c in rest if c.text)
    assert late <= 3, f"{late} tokens came after the cancel ({elapsed * 1000:.0f} ms)"


@pytest.fixture(scope="module")
def long_backend(bundled_gguf):
    b = LlamaCppBackend(
        describe(bundled_gguf), BackendOptions(n_ctx=4096, n_threads=2, n_parallel=1)
    )
    b.load()
    yield b
    b.unload()


def test_cancel_during_a_3000_token_prompt_lands_long_before_it_is_done(long_backend):
    """The prompt is evaluated in steps; a cancel lands at the next one, long before the
    prompt is done, and the engine is in order for the next answer."""
    backend = long_backend
    msgs = [{"role": "user", "content": "word " * 3000}]
    assert 2900 < len(backend.prompt_tokens(msgs, GREEDY)[0]) < 3200
    backend.reset_cache()
    t0 = time.perf_counter()
    list(backend.stream(msgs, GREEDY.replace(max_tokens=1)))
    full = time.perf_counter() - t0
    backend.reset_cache()
    cancel = threading.Event()
    stream = backend.stream(msgs, GREEDY.replace(max_tokens=10), cancel)
    threading.Timer(0.05, cancel.set).start()
    t0 = time.perf_counter()
    chunks = list(stream)
    cancelled_after = time.perf_counter() - t0
    assert chunks[-1].finish_reason == "cancelled"
    assert chunks[-1].completion_tokens == 0
    # against the same prompt evaluated whole, in the same run (a ratio: this machine is shared)
    assert cancelled_after < 0.5 * full, (cancelled_after, full)
    # The aborted batch leaves the model in order: the next answer is the usual one.
    text, _ = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=24)))
    assert "Paris" in text


def test_context_overflow_is_an_error_or_an_announced_drop(backend):
    filler = "lorem ipsum dolor sit amet " * 120  # ~700 tokens a turn
    msgs = [{"role": "system", "content": "Be brief."}]
    for i in range(3):
        msgs += [
            {"role": "user", "content": f"{i} {filler}"},
            {"role": "assistant", "content": "ok"},
        ]
    msgs.append({"role": "user", "content": "Say hi."})
    with pytest.raises(ContextOverflow, match="context holds 2048"):
        list(backend.stream(msgs, GREEDY.replace(max_tokens=100, context_overflow="error")))
    chunks = list(backend.stream(msgs, GREEDY.replace(max_tokens=100)))
    assert chunks[0].notice and "did not fit" in chunks[0].notice
    assert chunks[-1].finish_reason in ("stop", "length")
    assert chunks[-1].prompt_tokens + 100 <= 2048


def test_a_single_message_too_long_for_the_context_is_an_error(backend):
    with pytest.raises(ContextOverflow):
        list(
            backend.stream(
                [{"role": "user", "content": "word " * 3000}], GREEDY.replace(max_tokens=10)
            )
        )


def test_no_double_bos(backend, monkeypatch):
    bos_id = backend.tokenize(backend.template_vars["bos_token"], add_bos=False)[0]
    text, add_bos = backend.render([{"role": "user", "content": "hi"}])
    plain = backend.tokenize(text, add_bos=add_bos)
    assert plain[:2] != [bos_id, bos_id]
    # A template that writes BOS itself, for a tokenizer that also adds one: BOS once.
    tv = dict(backend.template_vars, add_bos=True)
    tv["chat_template"] = "{{ bos_token }}" + tv["chat_template"]
    monkeypatch.setattr(type(backend), "template_vars", property(lambda self: tv))
    text, add_bos = backend.render([{"role": "user", "content": "hi"}])
    assert text.startswith(tv["bos_token"]) and add_bos is False
    assert backend.tokenize(text, add_bos=add_bos) == [bos_id, *plain]


def test_base_model_without_template_continues_text(bundled_gguf, tmp_path):
    """The same weights with the chat template removed behave as a base model, and say so."""
    from gguf_tools import copy_without_chat_template

    base = copy_without_chat_template(bundled_gguf, tmp_path / "base.gguf")
    b = LlamaCppBackend(describe(base), BackendOptions(n_ctx=512, n_threads=2))
    info = b.load()
    try:
        assert not info.has_chat_template
        chunks = list(
            b.stream(
                [{"role": "user", "content": "The capital of France is"}],
                GREEDY.replace(max_tokens=8),
            )
        )
        assert chunks[0].notice and "base model" in chunks[0].notice
        assert "".join(c.text for c in chunks).strip()
    finally:
        b.unload()


def test_bundled_model_is_in_the_library_without_import(fresh_home):
    records = {r.id: r for r in Catalog().list()}
    bundled = records["smollm2-135m"]
    assert bundled.source == "bundled" and bundled.format == "gguf"
    assert bundled.architecture == "llama" and bundled.has_chat_template
    assert bundled.quantization == "Q4_1"
    assert 100e6 < bundled.parameters < 200e6


def test_a_broken_chat_template_still_loads_and_chats(bundled_gguf, tmp_path):
    """llama.cpp refuses to start on a template it cannot parse; the model still loads
    (we render templates ourselves), chats through the generic template with a notice in
    plain words saying why, and plain continuation works too."""
    from gguf_tools import copy_with_chat_template

    broken = copy_with_chat_template(
        bundled_gguf, tmp_path / "broken.gguf", "{% for m in messages %}{{ m.content }"
    )
    b = LlamaCppBackend(describe(broken), BackendOptions(n_ctx=512, n_threads=2, n_parallel=1))
    b.load()
    try:
        chunks = list(b.stream([{"role": "user", "content": "hi"}], GREEDY.replace(max_tokens=6)))
        notice = "; ".join(c.notice for c in chunks if c.notice)
        assert "chat template is broken" in notice and "generic template" in notice
        assert "Error" not in notice and "".join(c.text for c in chunks).strip()
        assert chunks[-1].finish_reason in ("stop", "length")
        chunks = list(b.complete("The capital of France is", GREEDY.replace(max_tokens=6)))
        assert "".join(c.text for c in chunks).strip()
        assert chunks[-1].finish_reason in ("stop", "length")
    finally:
        b.unload()
