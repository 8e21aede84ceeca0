"""xllamacpp, the library that embeds llama.cpp's server engine: importing it with a clear
word when it is missing or too old, the engine settings we choose, and what the build can use.

Thread policy (measured on a 2-core laptop-class CPU, SmolLM2 Q4_1): llama.cpp's worker
threads wait for each other by spinning, so with as many decode threads as cores, any other
busy process makes decode collapse (124-132 tokens/s idle, 44-54 with one busy Python
thread, seconds per token beside a benchmark). Decode is bound by memory bandwidth, and one
thread fewer than the cores loses little when idle and keeps the speed when the machine is
busy; prompt evaluation is compute-bound and parallel enough to use every core. So: decode
threads = physical cores - 1 (at least 1, at most 8), prompt threads = physical cores,
and the threads sleep between requests instead of polling.
"""

from __future__ import annotations

import os
from typing import Any

from .errors import BackendUnavailable

MIN_VERSION = (2026, 10)
MAX_DECODE_THREADS = 8
GPU_WHEELS = (
    "this xllamacpp build uses the CPU only; for a GPU, install xllamacpp's CUDA, ROCm or "
    "Vulkan wheel from its own package index (see the xllamacpp README; the macOS wheel "
    "already uses Metal)"
)


def physical_cores() -> int:
    try:
        import psutil

        return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except Exception:
        return max(1, os.cpu_count() or 1)


def thread_counts(requested: int | None = None) -> tuple[int, int]:
    """(decode threads, prompt threads): ``requested`` for both, or the policy above."""
    if requested:
        return requested, requested
    cores = physical_cores()
    return max(1, min(cores - 1, MAX_DECODE_THREADS)), cores


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
