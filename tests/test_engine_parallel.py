"""Several answers at once through one engine: llama.cpp's slots with continuous batching,
multiplexed over the engine child's pipe, with the real bundled model."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from models import describe
from runtime import GREEDY, BackendOptions, Engine, GenerationParams, ModelHost
from runtime.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.slow

N = 3
OPTS = BackendOptions(n_ctx=1024, n_threads=1, n_parallel=N)  # one thread: steady when busy
PROMPTS = [
    "Write a short poem about the sea.",
    "List three fruits.",
    "Explain what a compiler does in two sentences.",
]
PARAMS = GREEDY.replace(max_tokens=24)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def text_of(chunks) -> str:
    return "".join(c.text for c in chunks)


@pytest.fixture(scope="module")
def engine(bundled_gguf):
    e = Engine()
    info = e.load(describe(bundled_gguf), OPTS)
    assert info.parallel == N
    assert info.context_length == 1024, "each request gets the context it was promised"
    yield e
    e.close()


def run_together(engine, prompts, params, on_chunk=None):
    """Start one stream per prompt on its own thread; (texts, finish chunks, time spans)."""
    texts: dict[int, str] = {}
    last: dict[int, object] = {}
    spans: dict[int, tuple[float, float]] = {}
    barrier = threading.Barrier(len(prompts))

    def run(i: int) -> None:
        stream = engine.stream(ask(prompts[i]), params)
        barrier.wait()
        parts, first = [], None
        for n, chunk in enumerate(stream):
            if first is None and chunk.text:
                first = time.monotonic()
            parts.append(chunk.text)
            last[i] = chunk
            if on_chunk:
                on_chunk(i, n, stream)
        texts[i] = "".join(parts)
        spans[i] = (first or time.monotonic(), time.monotonic())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return texts, last, spans


def test_concurrent_streams_give_the_same_text_as_one_at_a_time(engine):
    alone = [text_of(engine.stream(ask(p), PARAMS)) for p in PROMPTS]
    assert all(t.strip() for t in alone)
    texts, last, spans = run_together(engine, PROMPTS, PARAMS)
    assert [texts[i] for i in range(N)] == alone
    assert all(last[i].finish_reason in ("stop", "length") for i in range(N))
    # They really were generated together: every answer started before any had ended.
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values())


def test_cancelling_one_stream_leaves_the_others_untouched(engine):
    long = GREEDY.replace(max_tokens=40)
    alone = [text_of(engine.stream(ask(p), long)) for p in PROMPTS]

    def cancel_the_second(i, n, stream):
        if i == 1 and n == 3:
            stream.cancel()

    texts, last, _ = run_together(engine, PROMPTS, long, cancel_the_second)
    assert last[1].finish_reason == "cancelled"
    assert last[1].completion_tokens < 40
    assert alone[1].startswith(texts[1])
    assert texts[0] == alone[0] and texts[2] == alone[2]
    assert last[0].finish_reason != "cancelled" and last[2].finish_reason != "cancelled"


def test_an_abandoned_stream_frees_its_slot(engine):
    """Closing a stream halfway (a client that went away) stops it in the engine: all N
    slots then serve new answers at once, and nothing stale reaches them."""
    for _ in range(N):
        stream = engine.stream(ask("Tell me a very long story."), GenerationParams(max_tokens=500))
        for n, _chunk in enumerate(stream):
            if n == 2:
                break
        stream.close()
    alone = [text_of(engine.stream(ask(p), PARAMS)) for p in PROMPTS]
    texts, _, spans = run_together(engine, PROMPTS, PARAMS)
    assert [texts[i] for i in range(N)] == alone
    assert max(s for s, _ in spans.values()) < min(e for _, e in spans.values())


def test_a_crash_ends_every_stream_in_plain_words(bundled_gguf):
    with Engine() as engine:
        engine.load(describe(bundled_gguf), OPTS)
        story = GenerationParams(max_tokens=400, seed=2)

        def kill_after_a_few(i, n, stream):
            if i == 0 and n == 3 and engine.pid:
                os.kill(engine.pid, signal.SIGKILL)

        _, last, _ = run_together(engine, [p + " Make it long." for p in PROMPTS], story,
                                  kill_after_a_few)  # fmt: skip
        for i in range(N):
            assert last[i].finish_reason == "error"
            assert "crashed" in last[i].error and "conversation is safe" in last[i].error


def test_the_host_admits_as_many_as_the_engine_serves_and_queues_the_rest(bundled_gguf):
    from models import BUNDLED_ID, Catalog

    catalog = Catalog()
    record = catalog.get(BUNDLED_ID)
    catalog.close()
    opts = BackendOptions(n_ctx=1024, n_threads=1, n_parallel=2)
    with ModelHost(idle_unload_s=None, options=opts) as host:
        list(host.chat(record, ask("hi"), GREEDY.replace(max_tokens=1)))  # loaded
        starts: dict[int, float] = {}
        ends: dict[int, float] = {}

        def run(i: int) -> None:
            for chunk in host.chat(record, ask(PROMPTS[i]), GREEDY.replace(max_tokens=30)):
                if chunk.text and i not in starts:
                    starts[i] = time.monotonic()
            ends[i] = time.monotonic()

        threads = []
        for i in range(3):
            threads.append(threading.Thread(target=run, args=(i,)))
            threads[-1].start()
            time.sleep(0.05)  # arrival order 0, 1, 2
        for t in threads:
            t.join(120)
        assert set(ends) == {0, 1, 2}
        assert starts[1] < ends[0] and starts[0] < ends[1], "the first two run together"
        assert starts[2] >= min(ends[0], ends[1]), "the third waits for a free slot"
        (status,) = host.status()
        assert status.info.parallel == 2 and status.active == 0


def test_the_engines_own_listener_refuses_requests_without_its_key(bundled_gguf):
    backend = LlamaCppBackend(describe(bundled_gguf), BackendOptions(n_ctx=512, n_parallel=1))
    backend.load()
    try:
        address = backend._server.listening_address
        assert address.startswith("http://127.0.0.1:")
        for method, path in [("GET", "/props"), ("POST", "/tokenize"), ("GET", "/slots"),
                             ("POST", "/v1/chat/completions"), ("POST", "/completion")]:  # fmt: skip
            reply = httpx.request(method, address + path, json={"content": "hi"}, timeout=10)
            assert reply.status_code == 401, (path, reply.status_code)
        evil = {"Origin": "http://evil.example", "Authorization": "Bearer guess"}
        reply = httpx.post(address + "/tokenize", json={"content": "hi"}, headers=evil)
        assert reply.status_code == 401
        assert reply.headers.get("access-control-allow-origin") in (None, "")
        # Our own calls (with the per-engine key) still work.
        assert backend.tokenize("Hello", add_bos=False)
    finally:
        backend.unload()
