"""The engine child process: real generation, and crashes that cost nothing but the answer."""

from __future__ import annotations

import os
import signal

import pytest

from models import InvalidModelFile, describe
from runtime import GREEDY, BackendOptions, Engine, GenerationParams, ModelLoadError

pytestmark = pytest.mark.slow

OPTS = BackendOptions(n_ctx=1024, n_threads=2)
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture
def engine():
    e = Engine()
    yield e
    e.close()


def answer(engine, msgs=QUESTION, params=GREEDY.replace(max_tokens=16)):
    chunks = list(engine.stream(msgs, params))
    return "".join(c.text for c in chunks), chunks[-1]


def test_engine_generates_in_a_child_process(engine, bundled_gguf):
    info = engine.load(describe(bundled_gguf), OPTS)
    assert engine.pid and engine.pid != os.getpid()
    assert info.backend == "llama.cpp"
    text, last = answer(engine)
    assert "Paris" in text and last.finish_reason in ("stop", "length")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV])
def test_killed_engine_mid_answer_is_reported_and_recoverable(engine, bundled_gguf, sig):
    record = describe(bundled_gguf)
    engine.load(record, OPTS)
    stream = engine.stream(
        [{"role": "user", "content": "Tell me a long story about a dragon."}],
        GenerationParams(max_tokens=500, seed=3),
    )
    received = []
    for chunk in stream:
        received.append(chunk)
        if len(received) == 3:
            os.kill(engine.pid, sig)
    last = received[-1]
    assert last.finish_reason == "error"
    assert "crashed" in last.error and sig.name in last.error
    assert "conversation is safe" in last.error
    with pytest.raises(ModelLoadError):
        list(engine.stream(QUESTION))
    engine.load(record, OPTS)  # a fresh child
    text, _ = answer(engine)
    assert "Paris" in text


def test_corrupt_file_is_refused_before_native_code_and_engine_survives(
    engine, bundled_gguf, tmp_path
):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bundled_gguf.read_bytes()[:5_000_000])
    record = describe(bundled_gguf).replace(path=str(bad), id="bad")
    with pytest.raises(InvalidModelFile, match="truncated"):
        engine.load(record, OPTS)
    engine.load(describe(bundled_gguf), OPTS)
    text, _ = answer(engine)
    assert "Paris" in text


def test_cancel_through_the_engine(engine, bundled_gguf):
    engine.load(describe(bundled_gguf), OPTS)
    chunks = []
    for chunk in engine.stream(
        [{"role": "user", "content": "Write a long essay."}], GenerationParams(max_tokens=800)
    ):
        chunks.append(chunk)
        if len(chunks) == 4:
            engine.cancel()
    assert chunks[-1].finish_reason == "cancelled"
    assert chunks[-1].completion_tokens < 100
    text, _ = answer(engine)  # the engine serves the next request
    assert "Paris" in text
