"""xllamacpp, the library that embeds llama.cpp's server engine: importing it with a clear
word when it is missing or too old, the engine settings we choose, and what the build can use.

Thread policy (measured on this 2-core machine, SmolLM2 Q4_1, decode tokens/s): llama.cpp's
worker threads wait for each other at every step of a token, so with as many threads as
cores, one other busy process makes decode collapse (about 65 idle, 18-20 beside one busy
process); one thread fewer than the cores keeps its speed beside it but gives up a third
of the idle speed on two cores. xllamacpp fixes the thread count when a model loads, so the
choice is made then: when another process is running on the CPU at that moment, decode and
prompt use one thread fewer than the physical cores; otherwise all of them. Idle threads
sleep between requests instead of polling.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import BackendUnavailable
from .machine import physical_cores

MIN_VERSION = (2026, 10)
MAX_DECODE_THREADS = 8
GPU_WHEELS = (
    "this xllamacpp build uses the CPU only; for a GPU, install xllamacpp's CUDA, ROCm or "
    "Vulkan wheel from its own package index (see the xllamacpp README; the macOS wheel "
    "already uses Metal)"
)


def _running_here() -> int:
    """Threads of this process on a CPU right now (this one included)."""
    import os

    n = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[1].split()[0] == b"R":
                    n += 1
        except OSError:
            continue
    return max(n, 1)


def others_running() -> float:
    """How many other threads are running on the CPU right now (a median of a few quick
    looks; Linux's /proc/stat, elsewhere psutil's CPU use over a short moment)."""
    import time

    try:
        samples = []
        for _ in range(5):
            with open("/proc/stat", "rb") as fh:
                for line in fh:
                    if line.startswith(b"procs_running"):
                        samples.append(int(line.split()[1]) - _running_here())
            time.sleep(0.004)
        if samples:
            return float(sorted(samples)[len(samples) // 2])
    except OSError:
        pass
    try:
        import psutil

        busy = psutil.cpu_percent(interval=0.05) / 100 * (psutil.cpu_count() or 1)
        return max(0.0, busy - 1.0)  # less this process
    except Exception:
        return 0.0


def thread_counts(requested: int | None = None) -> tuple[int, int]:
    """(decode threads, prompt threads): ``requested`` for both, or the policy above."""
    if requested:
        return requested, requested
    cores = min(physical_cores() or os.cpu_count() or 1, MAX_DECODE_THREADS)
    n = max(1, cores - 1) if others_running() >= 1 else cores
    return n, n


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def import_xllamacpp() -> Any:
    """The xllamacpp module, or :class:`BackendUnavailable` saying what to do."""
    try:
        import xllamacpp
    except ImportError as exc:
        if "libgomp" in str(exc):
            raise BackendUnavailable(
                "llama.cpp needs the system's OpenMP runtime (libgomp.so.1), which this "
                "system lacks: install it (Debian/Ubuntu: apt install libgomp1; Fedora: "
                "dnf install libgomp)"
            ) from None
        raise BackendUnavailable(
            "llama.cpp (the xllamacpp package) is not installed: pip install fireside"
        ) from None
    version = getattr(xllamacpp, "__version__", "0")
    if _version(version) < MIN_VERSION or not hasattr(xllamacpp, "Server"):
        need = ".".join(map(str, MIN_VERSION))
        raise BackendUnavailable(
            f"the installed xllamacpp {version} is too old for Fireside: "
            f"pip install 'xllamacpp>={need}'"
        )
    return xllamacpp


def offload_available(xl: Any) -> bool:
    """Whether this build of llama.cpp sees a GPU (Metal, CUDA, ROCm or Vulkan)."""
    return bool(gpu_devices(xl))


def gpu_devices(xl: Any) -> list[str]:
    try:
        devices = xl.get_device_info()
    except Exception:
        return []
    return [
        str(d.get("description") or d.get("name"))
        for d in devices
        if "CPU" not in str(d.get("type", "")) and str(d.get("name", "")).upper() != "CPU"
    ]


def describe_build() -> tuple[str, tuple[str, ...], str | None]:
    """(version and CPU features, devices best first, how to get a GPU build or None)."""
    xl = import_xllamacpp()
    info = xl.get_system_info() if hasattr(xl, "get_system_info") else ""
    features = [p.split("=")[0].strip() for p in str(info).split("|") if p.strip().endswith("1")]
    simd = " ".join(f.replace("CPU :", "").strip() for f in features if f)
    gpus = gpu_devices(xl)
    text = f"xllamacpp {xl.__version__}" + (f" ({simd})" if simd else "")
    devices = (*gpus, "cpu") if gpus else ("cpu",)
    return text, devices, None if gpus else GPU_WHEELS


def make_params(
    xl: Any,
    *,
    model: str,
    n_ctx: int,
    n_parallel: int,
    n_batch: int,
    n_threads: int | None,
    n_gpu_layers: int,
    api_key: str,
    cache_ram_mib: int = 0,
) -> Any:
    """llama.cpp's CommonParams as Fireside runs it."""
    p = xl.CommonParams()
    p.model.path = model
    p.n_ctx = n_ctx
    p.n_parallel = n_parallel
    p.n_batch = n_batch
    p.n_ubatch = n_batch
    decode, prompt = thread_counts(n_threads)
    p.cpuparams.n_threads = decode
    p.cpuparams_batch.n_threads = prompt
    p.cpuparams.poll = 0  # sleep, not spin, between requests: a laptop is never idle
    p.cpuparams_batch.poll = 0
    p.n_gpu_layers = n_gpu_layers
    p.api_keys = [api_key]  # the engine's own HTTP listener: nobody else may use it
    p.cors_origins = ""
    # The RAM prompt cache grows the process by about 1 MB a request; each slot keeps its
    # own last prompt in the KV cache anyway, which is what a chat's next turn reuses.
    p.cache_ram_mib = cache_ram_mib
    p.endpoint_slots = False
    p.endpoint_metrics = False
    p.ui = False
    p.offline = True  # the model is a local file; llama.cpp never reaches out
    p.verbosity = -1
    p.warmup = False
    return p
