"""This machine, as the engines see it: the CPU, and a fingerprint for stored measurements.

A benchmark result (``fireside bench``) holds only for the machine and the engine builds it
was measured with, so it is stored under a fingerprint of the CPU model, its core counts and
the installed engines' versions (read from the package metadata: nothing heavy is imported).
A new engine release or another machine simply has no measurement until the next bench.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
from pathlib import Path
from typing import Any

CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
)
# The distributions whose versions change what an engine does on this machine.
ENGINE_PACKAGES = (
    "xllamacpp",
    "torch",
    "transformers",
    "onnxruntime-genai",
    "openvino-genai",
    "mlx",
    "mlx-lm",
)


def physical_cores() -> int | None:
    """Cores, not hardware threads (Linux reads its CPU topology; elsewhere psutil)."""
    if sys.platform.startswith("linux"):
        root = "/sys/devices/system/cpu"
        cores = set()
        try:
            for name in os.listdir(root):
                if name[3:].isdigit() and name.startswith("cpu"):
                    with open(
                        f"{root}/{name}/topology/thread_siblings_list", encoding="ascii"
                    ) as fh:
                        cores.add(fh.read().strip())
        except OSError:
            cores = set()
        if cores:
            return len(cores)
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def cpu_info() -> dict[str, Any]:
    """The CPU: model name, machine, core counts and the vector features the engines use."""
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "model": platform.processor() or None,
        "logical_cores": os.cpu_count(),
        "features": [],
    }
    info["physical_cores"] = physical_cores()
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            text = ""
        flags: set[str] = set()
        model = None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model is None:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
        info["model"] = model or info["model"]
        if "asimd" in flags:
            flags.add("neon")
        info["features"] = [f for f in (*CPU_FLAGS, "neon", "sve") if f in flags]
    elif sys.platform == "darwin":
        import subprocess

        try:
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            info["model"] = brand or info["model"]
        except (OSError, subprocess.SubprocessError):
            pass
        if platform.machine() == "arm64":
            info["features"] = ["neon"]
    return info


def engine_versions() -> dict[str, str]:
    """Installed engine packages and their versions (absent ones left out)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ENGINE_PACKAGES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


@functools.cache
def fingerprint() -> tuple[str, str]:
    """(key, description) of this machine for stored measurements: CPU model, cores, engines."""
    cpu = cpu_info()
    cores = f"{cpu.get('physical_cores') or '?'} cores / {cpu.get('logical_cores') or '?'} threads"
    engines = ", ".join(f"{k} {v}" for k, v in sorted(engine_versions().items()))
    text = f"{cpu.get('model') or cpu['machine']} ({cores}); {engines or 'no engines'}"
    return hashlib.sha256(text.encode()).hexdigest()[:16], text
