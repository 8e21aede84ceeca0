"""Load on ``fireside serve --parallel 8``: 8 and then 16 concurrent streaming clients,
loopback only.

Baseline in the same run, on the same server: one client making its requests one after
another. The 8-client figure is steady-state throughput: for a fixed window every client
keeps one request in flight (a new one as soon as the last ends), and the tokens streamed
inside the window count, for one client and for eight alike, alternating, two rounds each;
the tail of a batch of requests (fewer than eight still running) is not "8 clients at once".
The 16-client phase is a fixed batch of requests (all must complete, no errors), reported
as tokens over its whole wall time. Time-to-first-token and latency percentiles for each. One loaded model serves 8 requests at once (llama.cpp's slots,
continuous batching), so 8 clients get more than one client's throughput; 16 clients queue
the other 8 in order.

    .venv/bin/python -m pytest tests/perf/test_server_load.py -m perf -s

FIRESIDE_PERF_THREADS sets the engine's CPU threads (default: Fireside's own policy).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import openai
import pytest
from server_tools import start_server

from models import BUNDLED_ID

pytestmark = pytest.mark.perf

CLIENTS = 16
REQUESTS_PER_CLIENT = 10
PARALLEL = 8
SINGLE_REQUESTS = 8
# The steady phase asks for answers of a chat's usual length (a paragraph, not one word), so
# what is measured is answering, not the fixed cost of starting many tiny requests.
STEADY_PROMPTS = [
    "Write a short paragraph about autumn.",
    "Explain in a few sentences how a bicycle works.",
    "Describe a busy market in a paragraph.",
    "Tell me a short story about a lighthouse keeper.",
]
STEADY_MAX_TOKENS = 128
WINDOW_S = 10.0  # each steady-state window
LEAD_S = 1.5  # from the start of a window until every client is streaming (8 first prompts)
ROUNDS = 2
MAX_TOKENS = 48
PROMPTS = [
    "Name a colour.",
    "What is 2+2?",
    "Say hello in French.",
    "Give me one word that rhymes with cat.",
]


@dataclass
class Result:
    ttft: float | None
    total: float
    tokens: int
    complete: bool
    error: str | None = None


def one_request(
    client: openai.OpenAI,
    i: int,
    on_token: Callable[[float], None] | None = None,
    prompts: list[str] = PROMPTS,
    max_tokens: int = MAX_TOKENS,
) -> Result:
    start = time.perf_counter()
    first = None
    tokens, finish, usage_seen = 0, None, False
    try:
        stream = client.chat.completions.create(
            model=BUNDLED_ID,
            messages=[{"role": "user", "content": prompts[i % len(prompts)]}],
            max_tokens=max_tokens,
            temperature=0.7,
            seed=i,
            stream=True,
            stream_options={"include_usage": True},
        )
        for event in stream:
            for choice in event.choices:
                if choice.delta.content:
                    now = time.perf_counter()
                    if on_token is not None:
                        on_token(now)
                    if first is None:
                        first = now - start
                finish = choice.finish_reason or finish
            if event.usage:
                usage_seen = True
                tokens = event.usage.completion_tokens
    except Exception as exc:  # counted, never hidden
        return Result(None, time.perf_counter() - start, 0, False, f"{type(exc).__name__}: {exc}")
    total = time.perf_counter() - start
    return Result(first, total, tokens, finish in ("stop", "length") and usage_seen)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def describe(name: str, results: list[Result], wall: float | None) -> float:
    """Prints the latency percentiles (and, given the wall time, the tokens/s) of a phase."""
    ttfts = [r.ttft for r in results if r.ttft is not None]
    totals = [r.total for r in results]
    tokens = sum(r.tokens for r in results)
    rate = tokens / wall if wall else 0.0
    rated = f" in {wall:.1f} s = {rate:.1f} tokens/s" if wall else ""
    print(f"\n{name}: {len(results)} requests, {tokens} tokens{rated}")
    for label, values in (("time to first token", ttfts), ("total latency", totals)):
        print(
            f"  {label:20s} p50 {pct(values, 50) * 1000:7.0f} ms   p90 {pct(values, 90) * 1000:7.0f} ms"
            f"   p99 {pct(values, 99) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
        )
    return rate


def single_client(base_url: str, offset: int) -> tuple[list[Result], float]:
    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=300)
    start = time.perf_counter()
    results = [one_request(client, offset + i) for i in range(SINGLE_REQUESTS)]
    return results, time.perf_counter() - start


def many_clients(base_url: str, clients: int, requests: int) -> tuple[list[Result], float]:
    results: list[list[Result]] = [[] for _ in range(clients)]

    def client_loop(c: int) -> None:
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=600)
        for r in range(requests):
            results[c].append(one_request(client, c * 100 + r))

    workers = [threading.Thread(target=client_loop, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return [r for rs in results for r in rs], time.perf_counter() - start


def steady(base_url: str, clients: int) -> tuple[float, list[Result]]:
    """Tokens/s streamed while ``clients`` clients each keep one request in flight."""
    start = time.perf_counter()
    stop = start + LEAD_S + WINDOW_S
    stamps: list[float] = []
    results: list[Result] = []
    lock = threading.Lock()

    def loop(c: int) -> None:
        client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=300)
        i = 0
        while time.perf_counter() < stop:
            seen: list[float] = []
            result = one_request(
                client, 5000 + c * 100 + i, seen.append, STEADY_PROMPTS, STEADY_MAX_TOKENS
            )
            with lock:
                stamps.extend(seen)
                results.append(result)
            i += 1

    workers = [threading.Thread(target=loop, args=(c,)) for c in range(clients)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    counted = sum(1 for t in stamps if start + LEAD_S <= t < stop)
    return counted / WINDOW_S, results


def test_concurrent_streaming_clients_share_one_model(tmp_path):
    threads = os.environ.get("FIRESIDE_PERF_THREADS")
    args = ["--idle-unload", "0", "--parallel", str(PARALLEL), "--ctx", "1024"]
    if threads:
        args += ["--threads", threads]
    server = start_server(tmp_path / "logs", *args, home=tmp_path / "home")
    try:
        warm = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=300)
        assert one_request(warm, 0).complete  # loads the model

        before, wall_before = single_client(server.base_url, 1000)
        one_rates, eight_rates, eight = [], [], []
        for _ in range(ROUNDS):
            rate, _ = steady(server.base_url, 1)
            one_rates.append(rate)
            rate, results = steady(server.base_url, PARALLEL)
            eight_rates.append(rate)
            eight += results
        flat, wall = many_clients(server.base_url, CLIENTS, REQUESTS_PER_CLIENT)
        after, wall_after = single_client(server.base_url, 2000)
    finally:
        server.stop()

    errors = [r.error for r in flat + eight if r.error]
    print(
        f"\nengine threads: {threads or 'default'}; max_tokens {MAX_TOKENS} "
        f"(steady phase {STEADY_MAX_TOKENS}); loopback"
    )
    single = before + after
    single_rate = describe("single client (before + after)", single, wall_before + wall_after)
    steady_one, rate8 = sum(one_rates) / ROUNDS, sum(eight_rates) / ROUNDS
    print(
        f"\nsteady state, {WINDOW_S:.0f} s windows x {ROUNDS}: one client "
        f"{', '.join(f'{r:.1f}' for r in one_rates)} tokens/s; {PARALLEL} clients "
        f"{', '.join(f'{r:.1f}' for r in eight_rates)} tokens/s"
    )
    describe(f"{PARALLEL} clients, steady", eight, None)
    print(f"  aggregate tokens/s ratio ({PARALLEL} clients / one): {rate8 / steady_one:.2f}")
    rate = describe(f"{CLIENTS} clients x {REQUESTS_PER_CLIENT} requests", flat, wall)
    print(f"  aggregate tokens/s ratio ({CLIENTS} clients / one): {rate / single_rate:.2f}")

    assert not errors, errors[:5]
    assert len(flat) == CLIENTS * REQUESTS_PER_CLIENT
    assert all(r.complete and r.tokens > 0 and r.ttft is not None for r in flat + eight)
    assert all(r.complete for r in single)
    assert rate8 / steady_one >= 1.5, "8 clients at once must get 1.5x one client's tokens/s"
    assert pct([r.ttft for r in eight], 50) <= 3.0
    assert rate / single_rate >= 1.5
