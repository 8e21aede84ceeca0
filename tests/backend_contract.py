"""What every engine's backend must do alike, written once: a test module for an engine
imports these tests and provides a ``backend`` fixture (a loaded backend of that engine on a
small real model), and pytest runs them there. Engine-specific checks stay in that module."""

from __future__ import annotations

from runtime import GREEDY, CancelToken

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def collect(stream):
    chunks = list(stream)
    return "".join(c.text for c in chunks), chunks


def test_max_tokens_gives_length(backend):
    _, chunks = collect(
        backend.stream(
            [{"role": "user", "content": "Count from one to fifty in words."}],
            GREEDY.replace(max_tokens=4),
        )
    )
    assert chunks[-1].finish_reason == "length" and chunks[-1].completion_tokens == 4


def test_stop_string_cuts_the_answer(backend):
    full, _ = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=12)))
    words = full.split()
    assert len(words) >= 3
    stop = " " + words[2]
    text, chunks = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=12, stop=(stop,))))
    assert text == full[: full.index(stop)]
    assert chunks[-1].finish_reason == "stop"


def test_cancel_between_tokens_and_before_the_prompt(backend):
    cancel = CancelToken()
    chunks = []
    for chunk in backend.stream(
        [{"role": "user", "content": "Write a long story about a dragon."}],
        GREEDY.replace(max_tokens=200),
        cancel,
    ):
        chunks.append(chunk)
        if chunk.text and len(chunks) == 3:
            cancel.set()
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].completion_tokens <= 4
    early = CancelToken()
    early.set()  # set before the answer starts: nothing is generated
    _, chunks = collect(backend.stream(QUESTION, GREEDY, early))
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].completion_tokens == 0
    text, chunks = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=4)))
    assert text and chunks[-1].finish_reason == "length"  # the engine is free again
