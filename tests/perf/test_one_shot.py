"""``fireside chat "question"`` end to end against a raw xllamacpp script doing the same.

Both are fresh processes that load the bundled model, answer one question greedily with the
same context, threads and token budget, print the answer and exit; runs alternate, and the
median wall times are compared (raw / ours: 1.0 means no overhead at all).

    .venv/bin/python -m pytest tests/perf/test_one_shot.py -m perf -s
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.perf

ROUNDS = 5
QUESTION = "Write three sentences about the sea."
MAX_TOKENS = 64
N_CTX = 2048
ROOT = Path(__file__).resolve().parents[2]

RAW = """
import sys
import xllamacpp as xl
from runtime.llama_engine import thread_counts

decode, prompt = thread_counts()
p = xl.CommonParams()
p.model.path = sys.argv[1]
p.n_ctx = int(sys.argv[2])
p.n_parallel = 1
p.cpuparams.n_threads = decode
p.cpuparams_batch.n_threads = prompt
p.verbosity = -1
server = xl.Server(p)

def show(chunk):
    for choice in chunk.get("choices", ()):
        sys.stdout.write(choice.get("delta", {}).get("content") or "")
        sys.stdout.flush()
    return False

request = {
    "messages": [{"role": "user", "content": sys.argv[3]}],
    "max_tokens": int(sys.argv[4]),
    "temperature": 0,
    "repeat_penalty": 1.0,
    "stream": True,
}
server.handle_chat_completions(request, show)
print()
"""


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    return wall, out.stdout


def test_one_shot_chat_against_a_raw_xllamacpp_script(bundled_gguf, tmp_path):
    env = dict(os.environ, FIRESIDE_HOME=str(tmp_path / "home"))
    # As on a user's machine, Python keeps compiled bytecode (this sandbox turns it off,
    # which would charge the side with more Python modules for compiling them every run).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    fireside = Path(sys.executable).with_name("fireside")
    ours = [str(fireside), "chat", QUESTION, "--temperature", "0", "--repeat-penalty", "1"]
    ours += ["--max-tokens", str(MAX_TOKENS), "--ctx", str(N_CTX)]
    raw = [sys.executable, "-c", RAW, str(bundled_gguf), str(N_CTX), QUESTION, str(MAX_TOKENS)]
    timed(ours, env), timed(raw, env)  # warm: the library is made, the files are cached
    walls: dict[str, list[float]] = {"ours": [], "raw": []}
    for _ in range(ROUNDS):
        for name, cmd in (("ours", ours), ("raw", raw)):
            wall, text = timed(cmd, env)
            assert text.strip()
            walls[name].append(wall)
    med = {k: statistics.median(v) for k, v in walls.items()}
    ratio = med["raw"] / med["ours"]
    print(
        f"\none-shot answer, {ROUNDS} alternating rounds, median wall time:"
        f"\n  fireside chat {med['ours']:.3f} s, raw xllamacpp script {med['raw']:.3f} s,"
        f" ratio raw/ours {ratio:.3f} (target >= 0.9)"
    )
    assert ratio >= 0.9
