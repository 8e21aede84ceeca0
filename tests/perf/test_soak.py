"""Soak: 300 chat turns through one engine, and 1,000 requests to one server, with the
memory, file descriptors and threads of each process sampled as they go.

A leak shows as growth from the first sample (taken once everything is warm) to the last;
the growth is reported and bounded. The baseline is the same process earlier in the same run.

    .venv/bin/python -m pytest tests/perf/test_soak.py -m perf -s
"""

from __future__ import annotations

import httpx
import psutil
import pytest
from server_tools import start_server

from models import BUNDLED_ID, Catalog, resolve
from runtime import BackendOptions, Engine, GenerationParams

pytestmark = pytest.mark.perf

TURNS = 300
REQUESTS = 1000
SAMPLE_EVERY = 50
MAX_GROWTH_MB = 40  # RSS growth allowed once warm (caches settle well within it)
QUESTION = [{"role": "user", "content": "Name a colour."}]


def sample(proc: psutil.Process) -> tuple[float, int, int]:
    """(RSS in MB, open file descriptors, threads) of ``proc`` and its children together."""
    procs = [proc, *proc.children(recursive=True)]
    rss = sum(p.memory_info().rss for p in procs) / 1e6
    return rss, sum(p.num_fds() for p in procs), sum(p.num_threads() for p in procs)


def report(name: str, samples: list[tuple[float, int, int]]) -> tuple[float, int, int]:
    first, last = samples[0], samples[-1]
    growth = (last[0] - first[0], last[1] - first[1], last[2] - first[2])
    print(
        f"\n{name}: RSS {first[0]:.0f} -> {last[0]:.0f} MB (+{growth[0]:.1f}), "
        f"fds {first[1]} -> {last[1]}, threads {first[2]} -> {last[2]} "
        f"(samples every {SAMPLE_EVERY}: {', '.join(f'{s[0]:.0f}' for s in samples)} MB)"
    )
    return growth


def test_300_chat_turns_through_one_engine(fresh_home):
    record = resolve(Catalog(), BUNDLED_ID)
    me = psutil.Process()
    params = GenerationParams(temperature=0.7, max_tokens=8)
    samples = []
    with Engine() as engine:
        engine.load(record, BackendOptions(n_ctx=1024, n_threads=1, n_parallel=1))
        history: list[dict[str, str]] = []
        for turn in range(1, TURNS + 1):
            history = (history + QUESTION)[-6:]  # a rolling conversation, as a chat has
            text = "".join(c.text for c in engine.stream(history, params.replace(seed=turn)))
            assert text.strip()
            history.append({"role": "assistant", "content": text})
            if turn % SAMPLE_EVERY == 0:
                samples.append(sample(me))
    rss, fds, threads = report(f"{TURNS} chat turns (this process and its engine)", samples)
    assert rss < MAX_GROWTH_MB and fds <= 0 and threads <= 0


def test_1000_server_requests(tmp_path):
    served = start_server(
        tmp_path / "logs", "--threads", "1", "--idle-unload", "0", home=tmp_path / "home"
    )
    samples = []
    try:
        server = psutil.Process(served.proc.pid)
        body = {"model": BUNDLED_ID, "messages": QUESTION, "max_tokens": 4, "temperature": 0.7}
        with httpx.Client(timeout=120) as client:
            for i in range(1, REQUESTS + 1):
                stream = i % 2 == 0  # half streaming, half not
                r = client.post(
                    f"{served.base_url}/chat/completions",
                    json={**body, "seed": i, "stream": stream},
                )
                assert r.status_code == 200, r.text
                if i % SAMPLE_EVERY == 0:
                    samples.append(sample(server))
    finally:
        assert served.stop() == 0
    rss, fds, threads = report(f"{REQUESTS} server requests (the server and its engine)", samples)
    assert rss < MAX_GROWTH_MB and fds <= 2 and threads <= 2
