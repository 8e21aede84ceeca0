"""The model host every face shares, and the server handle the window uses (in-process)."""

from __future__ import annotations

import threading
import time

import httpx
import psutil
import pytest

from runtime import GREEDY, BackendOptions, GenerationParams, ModelHost

pytestmark = pytest.mark.slow

# One thread: steady under a busy CPU. One request at a time: the queueing rules (parallel
# admission: tests/test_engine_parallel.py).
OPTS = BackendOptions(n_ctx=1024, n_threads=1, n_parallel=1)
QUESTION = [{"role": "user", "content": "What is 2+2?"}]
SHORT = GREEDY.replace(max_tokens=6)
STORY = [{"role": "user", "content": "Write a very long story about a dragon, in ten chapters."}]
LONG = GenerationParams(max_tokens=2000, seed=1, temperature=0.8)


@pytest.fixture(scope="module")
def record(bundled_gguf):
    from models import BUNDLED_ID, Catalog

    catalog = Catalog()
    yield catalog.get(BUNDLED_ID)  # the same record the server finds in the library
    catalog.close()


def text_of(chunks):
    return "".join(c.text for c in chunks)


def test_loads_on_first_request_and_unloads_when_idle(record):
    with ModelHost(idle_unload_s=0.5, options=OPTS) as host:
        assert host.status() == []  # nothing loaded before the first request
        first = text_of(host.chat(record, QUESTION, SHORT))
        assert first.strip()
        (status,) = host.status()
        assert status.loaded and not status.busy and status.info.backend == "llama.cpp"
        pid = host._slots[(record.id, record.path)].engine.pid
        assert pid and psutil.pid_exists(pid)
        deadline = time.monotonic() + 5
        while host.status() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert host.status() == []  # unloaded
        time.sleep(0.2)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        # and the next request loads it again (greedy: the same answer)
        assert text_of(host.chat(record, QUESTION, SHORT)) == first


def test_requests_are_served_one_at_a_time_in_arrival_order(record):
    with ModelHost(idle_unload_s=None, options=OPTS) as host:
        list(host.chat(record, QUESTION, GREEDY.replace(max_tokens=1)))  # loaded
        events: list[tuple[str, int, float]] = []
        lock = threading.Lock()

        def run(i: int) -> None:
            for chunk in host.chat(record, QUESTION, GREEDY.replace(max_tokens=4, seed=i)):
                with lock:
                    events.append(("end" if chunk.finish_reason else "chunk", i, time.monotonic()))

        threads = []
        for i in range(3):
            t = threading.Thread(target=run, args=(i,))
            t.start()
            threads.append(t)
            time.sleep(0.15)  # arrival order 0, 1, 2, 3
        for t in threads:
            t.join(60)
        order = [i for kind, i, _ in events if kind == "end"]
        assert order == [0, 1, 2]
        # no interleaving: each answer's chunks are contiguous
        sequence = [i for _, i, _ in events]
        assert sequence == sorted(sequence)


def test_cancel_while_queued_and_while_running_frees_the_engine(record):
    with ModelHost(idle_unload_s=None, options=OPTS) as host:
        running = host.chat(record, STORY, LONG)
        got_first = threading.Event()
        result: dict[str, object] = {}

        def consume() -> None:
            chunks = []
            for chunk in running:
                chunks.append(chunk)
                got_first.set()
            result["last"] = chunks[-1]
            result["ended"] = time.monotonic()

        t = threading.Thread(target=consume)
        t.start()
        assert got_first.wait(30)

        queued = host.chat(record, QUESTION, SHORT)
        started = time.monotonic()
        done = []
        q = threading.Thread(target=lambda: done.extend(queued))
        q.start()
        time.sleep(0.3)
        assert not done  # it waits its turn
        (status,) = host.status()
        assert status.busy and status.queued == 1
        queued.cancel()
        q.join(2)
        assert done and done[-1].finish_reason == "cancelled"
        assert time.monotonic() - started < 2.0
        assert t.is_alive()  # the running answer was not disturbed

        cancelled_at = time.monotonic()
        running.cancel()
        t.join(5)
        assert result["last"].finish_reason == "cancelled"
        assert result["ended"] - cancelled_at < 1.0
        # the engine is free for the next request at once, and answers it normally
        answer = list(host.chat(record, QUESTION, SHORT))
        assert answer[-1].finish_reason in ("stop", "length") and text_of(answer).strip()
        assert host.status()[0].loaded


def test_abandoned_iterator_does_not_poison_the_next_answer(record):
    """A face that stops reading mid-answer (closed window, dropped client) leaves no stale
    chunks behind: the engine drains the rest of that answer."""
    with ModelHost(idle_unload_s=None, options=OPTS) as host:
        expected = text_of(host.chat(record, QUESTION, SHORT))
        it = iter(host.chat(record, STORY, LONG))
        for _ in range(3):
            next(it)
        it.close()
        answer = list(host.chat(record, QUESTION, SHORT))
        assert text_of(answer) == expected
        assert answer[-1].finish_reason in ("stop", "length")


def test_local_server_handle_starts_stops_and_shares_the_host(record):
    from app.server import LocalServer, ServerConfig

    with ModelHost(idle_unload_s=None, options=OPTS) as host:
        server = LocalServer(ServerConfig(port=0), host=host)
        base = server.start()
        try:
            assert server.running
            assert base == f"http://127.0.0.1:{server.port}/v1"
            snippet = server.snippet("smollm2-135m")
            assert f"{base}/chat/completions" in snippet and '"smollm2-135m"' in snippet
            models = httpx.get(f"{base}/models").json()
            assert "smollm2-135m" in [m["id"] for m in models["data"]]
            reply = httpx.post(
                f"{base}/chat/completions",
                json={
                    "model": "smollm2-135m",
                    "messages": QUESTION,
                    "temperature": 0,
                    "max_tokens": 6,
                },
                timeout=120,
            ).json()
            expected = text_of(host.chat(record, QUESTION, SHORT))
            assert reply["choices"][0]["message"]["content"] == expected
            assert host.status()[0].loaded  # the window's host served it
        finally:
            server.stop()
        assert not server.running
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/models", timeout=2)
        # the shared host outlives the server
        assert text_of(host.chat(record, QUESTION, SHORT)) == expected


def test_unsafe_server_settings_are_refused():
    from app.server import ServerConfig, ServerConfigError

    with pytest.raises(ServerConfigError, match="API key"):
        ServerConfig(host="0.0.0.0")
    with pytest.raises(ServerConfigError, match="at least 8"):
        ServerConfig(api_key="short")
    with pytest.raises(ServerConfigError, match="origin"):
        ServerConfig(cors_origins=("localhost:3000",))
    assert ServerConfig(host="0.0.0.0", api_key="a-long-key").loopback is False
    assert ServerConfig(host="::1").loopback and ServerConfig(host="localhost").loopback


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_load_ahead_with_progress_then_answer_in_the_same_engine(record):
    """What the chat window does: load first (progress shown), then chat without a reload."""
    with ModelHost(idle_unload_s=None, options=OPTS) as host:
        assert host.info(record) is None
        steps: list[tuple[int, int]] = []
        info = host.load(record, progress=lambda d, t: steps.append((d, t)))
        assert info.backend == "llama.cpp" and info.context_length == 1024
        assert steps and steps[-1][0] == steps[-1][1]
        assert host.info(record) == info
        (status,) = host.status()
        pid = status.pid
        assert pid and psutil.pid_exists(pid)
        assert host.load(record) == info  # loaded already: nothing happens
        assert text_of(host.chat(record, QUESTION, SHORT)).strip()
        (status,) = host.status()
        assert status.pid == pid  # the same child answered


def test_cancelled_load_leaves_nothing_loaded_and_the_next_load_works(record):
    from models.errors import Cancelled

    with ModelHost(idle_unload_s=None, options=OPTS) as host:
        cancel = threading.Event()
        pids: list[int] = []

        def progress(_done: int, _total: int) -> None:
            (status,) = host.status()
            if status.pid:
                pids.append(status.pid)
            cancel.set()  # cancel as soon as the load reports anything

        started = time.monotonic()
        with pytest.raises(Cancelled, match="cancelled"):
            host.load(record, progress=progress, cancel=cancel)
        assert time.monotonic() - started < 30
        assert host.info(record) is None and host.status() == []
        assert pids and gone(pids[0])  # the half-loaded child was ended
        with pytest.raises(Cancelled):  # cancelled before its turn: nothing starts
            host.load(record, cancel=cancel)
        assert host.load(record).backend == "llama.cpp"


def test_a_child_that_died_while_idle_is_loaded_again(record):
    import os
    import signal

    with ModelHost(idle_unload_s=None, options=OPTS) as host:
        host.load(record)
        (status,) = host.status()
        os.kill(status.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while host.info(record) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert host.info(record) is None  # seen as unloaded, not as ready
        answer = list(host.chat(record, QUESTION, SHORT))
        assert answer[-1].finish_reason in ("stop", "length") and text_of(answer).strip()
        (again,) = host.status()
        assert again.loaded and again.pid != status.pid
