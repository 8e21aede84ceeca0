"""Fireside's llama.cpp backend (xllamacpp) against llama-cpp-python called directly, and
its decode speed beside a busy process.

Same model, threads, context, prompt and greedy settings; runs alternate so that machine
noise hits both sides alike; the medians are compared as ratios.
Run: .venv/bin/python -m pytest tests/perf -m perf -s -k llama_backend
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import pytest

from models import describe
from runtime import GREEDY, BackendOptions
from runtime.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.perf

ROUNDS = 5
MAX_TOKENS = 96
THREADS = 2
N_CTX = 2048
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": "Write a detailed story about a lighthouse keeper who finds a message "
        "in a bottle, with dialogue, and describe the sea, the storm and the town. " * 3,
    },
]


def measure(stream) -> tuple[float, float, int]:
    """(time to first token, decode tokens/s, tokens) of one streamed answer."""
    t0 = time.perf_counter()
    first = last = None
    n = 0
    for _ in stream:
        now = time.perf_counter()
        first = first or now
        last = now
        n += 1
    return first - t0, (n - 1) / (last - first), n


# The peer (llama-cpp-python, the old way) runs in a process of its own: llama-cpp-python and xllamacpp each carry a copy
# of ggml, and once llama-cpp-python has run in a process, xllamacpp with two threads in that
# same process decoded at 62-70 tokens/s instead of 100-120 (measured here), which no user sees.
PEER = """
import sys, time, llama_cpp
model, prompt_file, threads, n_ctx, max_tokens = sys.argv[1:6]
prompt = open(prompt_file, encoding="utf-8").read()
llm = llama_cpp.Llama(model_path=model, n_ctx=int(n_ctx), n_threads=int(threads),
                      n_threads_batch=int(threads), n_gpu_layers=0, verbose=False)
for _ in sys.stdin:
    llm.reset()  # a cold prompt every run, as on our side
    t0 = time.perf_counter()
    first = last = None
    n = 0
    for _ in llm.create_completion(prompt, max_tokens=int(max_tokens), temperature=0.0, stream=True):
        now = time.perf_counter()
        first = first or now
        last = now
        n += 1
    print(first - t0, (n - 1) / (last - first), flush=True)
"""


class Peer:
    """llama-cpp-python in a process of its own, answering the same prompt on each call."""

    def __init__(self, model, prompt: str, threads: int, folder) -> None:
        prompt_file = folder / "prompt.txt"
        prompt_file.write_text(prompt, encoding="utf-8")
        args = [str(model), str(prompt_file), str(threads), str(N_CTX), str(MAX_TOKENS)]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PEER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self) -> tuple[float, float]:
        """(time to first token, decode tokens/s) of one answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        ttft, tps = self.proc.stdout.readline().split()
        return float(ttft), float(tps)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_backend_matches_direct_llama_cpp(bundled_gguf, tmp_path):
    ours = LlamaCppBackend(
        describe(bundled_gguf), BackendOptions(n_ctx=N_CTX, n_threads=THREADS, n_parallel=1)
    )
    ours.load()
    direct = Peer(bundled_gguf, ours.render(MESSAGES)[0], THREADS, tmp_path)
    params = GREEDY.replace(max_tokens=MAX_TOKENS)

    def run_ours():
        ours.reset_cache()
        chunks = (c for c in ours.stream(MESSAGES, params) if c.finish_reason is None and c.text)
        return measure(chunks)

    run_direct = direct.run

    run_ours(), run_direct()  # warm-up
    results = {"ours": [], "direct": []}
    for _ in range(ROUNDS):
        results["ours"].append(run_ours())
        results["direct"].append(run_direct())
    ttft = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    tps = {k: statistics.median(r[1] for r in v) for k, v in results.items()}
    decode_ratio = tps["ours"] / tps["direct"]
    ttft_ratio = ttft["ours"] / ttft["direct"]
    print(
        f"\nllama.cpp backend vs direct llama-cpp-python ({ROUNDS} alternating rounds, medians):"
        f"\n  decode  ours {tps['ours']:.1f} tok/s, direct {tps['direct']:.1f} tok/s, ratio {decode_ratio:.3f} (target >= 0.97)"
        f"\n  TTFT    ours {ttft['ours'] * 1000:.1f} ms, direct {ttft['direct'] * 1000:.1f} ms, ratio {ttft_ratio:.3f} (target <= 1.05)"
    )
    ours.unload()
    direct.close()
    assert decode_ratio >= 0.97
    assert ttft_ratio <= 1.05


def busy_process() -> subprocess.Popen:
    """Something else using a core, as on any laptop (a browser tab, a build, an indexer)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def test_decode_keeps_its_speed_beside_a_busy_process(bundled_gguf, tmp_path):
    """Fireside's own thread policy (no --threads; it is applied when a model loads): a model
    loaded beside one competing busy process decodes at least half as fast as one loaded on
    an idle machine, and idle it keeps within 3% of llama.cpp run the way Fireside ran it
    before (as many threads as physical cores, whatever else runs). The old way beside the
    busy process is shown too."""
    from runtime.llama_engine import physical_cores, thread_counts

    cores = physical_cores()
    params = GREEDY.replace(max_tokens=MAX_TOKENS)

    def ours_once():
        backend = LlamaCppBackend(describe(bundled_gguf), BackendOptions(n_ctx=N_CTX, n_parallel=1))
        backend.load()
        try:
            run = lambda: measure(  # noqa: E731
                c for c in backend.stream(MESSAGES, params) if c.finish_reason is None and c.text
            )[1]
            run()
            return run(), backend.render(MESSAGES)[0]
        finally:
            backend.unload()

    before = Peer(bundled_gguf, ours_once()[1], cores, tmp_path)

    def run_before() -> float:
        return before.run()[1]

    run_before()
    idle, busy, old_idle, old_busy, busy_threads = [], [], [], [], []
    for _ in range(ROUNDS):
        idle.append(ours_once()[0])
        old_idle.append(run_before())
        hog = busy_process()
        try:
            time.sleep(0.3)
            busy_threads.append(thread_counts()[0])
            busy.append(ours_once()[0])
            old_busy.append(run_before())
        finally:
            hog.kill()
            hog.wait()
    before.close()
    med = statistics.median
    busy_ratio = med(busy) / med(idle)
    idle_ratio = med(idle) / med(old_idle)
    print(
        f"\ndecode beside one busy process ({ROUNDS} alternating rounds, medians, {cores} cores;"
        f" threads chosen when busy: {busy_threads}):"
        f"\n  ours   idle {med(idle):.1f} tok/s, busy {med(busy):.1f} tok/s, busy/idle {busy_ratio:.2f} (target >= 0.5)"
        f"\n  before idle {med(old_idle):.1f} tok/s, busy {med(old_busy):.1f} tok/s, busy/idle {med(old_busy) / med(old_idle):.2f}"
        f"\n  idle, ours / before: {idle_ratio:.3f} (target >= 0.97)"
    )
    assert busy_ratio >= 0.5
    assert idle_ratio >= 0.97
