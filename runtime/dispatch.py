"""Which engine runs which model: the model's format, the machine, and the user's override.

GGUF -> llama.cpp (OpenVINO GenAI also runs F16/Q8_0/Q4_0 GGUF files, when asked for or
when ``fireside bench`` measured it faster). An MLX folder -> MLX on Apple Silicon; elsewhere
MLX only runs on the CPU, slowly, so it is used only when asked for (``--backend mlx``). A
Hugging Face folder -> PyTorch (which then picks CUDA, MPS or the CPU). An ONNX GenAI folder
-> ONNX Runtime GenAI. An OpenVINO IR folder -> OpenVINO GenAI. :func:`engines_for` lists
every engine that can run a given model here. Nothing heavy is imported to decide.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import platform
from dataclasses import dataclass

from models.errors import FiresideError
from models.records import FORMAT_ENGINES, ModelRecord

from .backend import Backend, BackendOptions
from .errors import BackendUnavailable


@dataclass(frozen=True)
class BackendSpec:
    module: str  # where the Backend subclass lives
    cls: str
    requires: tuple[str, ...]  # Python modules it needs
    extra: str  # what installs them: "fireside" (always there) or an extra's name
    formats: str  # for people: what it runs


BACKENDS: dict[str, BackendSpec] = {
    "llama.cpp": BackendSpec(
        "runtime.llamacpp", "LlamaCppBackend", ("xllamacpp",), "fireside", "GGUF"
    ),
    "mlx": BackendSpec(
        "runtime.mlx_backend", "MLXBackend", ("mlx", "mlx_lm"), "mlx", "MLX folders"
    ),
    "torch": BackendSpec(
        "runtime.torch_backend",
        "TorchBackend",
        ("torch", "transformers"),
        "torch",
        "Hugging Face folders",
    ),
    "onnx": BackendSpec(
        "runtime.onnx_backend",
        "OnnxBackend",
        ("onnxruntime_genai",),
        "onnx",
        "ONNX Runtime GenAI folders",
    ),
    "openvino": BackendSpec(
        "runtime.openvino_backend",
        "OpenVinoBackend",
        ("openvino_genai",),
        "openvino",
        "OpenVINO IR, F16/Q8_0 GGUF",
    ),
    "remote": BackendSpec(
        "runtime.remote", "RemoteBackend", ("httpx",), "fireside", "OpenAI-compatible servers"
    ),
}
ALIASES = {
    "pytorch": "torch",
    "llamacpp": "llama.cpp",
    "llama-cpp": "llama.cpp",
    "llama": "llama.cpp",
    "onnxruntime": "onnx",
    "onnxruntime-genai": "onnx",
    "ov": "openvino",
    "openvino-genai": "openvino",
}


def apple_silicon() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def on_request_only(backend: str) -> str | None:
    """Why ``backend`` is used here only when the user asks for it (None: it is not)."""
    if backend == "mlx" and not apple_silicon():
        return (
            "MLX is built for Apple Silicon; on this machine it can only use the CPU and is "
            "slow (a few tokens per second)"
        )
    return None


def missing_modules(backend: str) -> list[str]:
    return [m for m in BACKENDS[backend].requires if importlib.util.find_spec(m) is None]


def installed(backend: str) -> bool:
    return not missing_modules(backend)


def install_hint(backend: str) -> str:
    extra = BACKENDS[backend].extra
    return "pip install fireside" if extra == "fireside" else f"pip install 'fireside[{extra}]'"


def cannot_run(backend: str, record: ModelRecord) -> str | None:
    """Why ``backend``, which runs models of this format, cannot run this one (None: it can);
    reads at most a file header."""
    if backend == "openvino" and record.format == "gguf":
        from models.openvino_folder import openvino_gguf_refusal

        try:
            return openvino_gguf_refusal(record.path)
        except FiresideError as exc:
            return str(exc)
    return None


def engines_for(record: ModelRecord) -> list[str]:
    """Every engine that can run ``record`` here (installed, and able to run this file), best
    first; the ones used only on request (MLX off Apple Silicon) come too: ``fireside bench``
    runs them all."""
    return [
        name
        for name in FORMAT_ENGINES.get(record.format, ())
        if installed(name) and cannot_run(name, record) is None
    ]


def normalize_name(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


def choose_backend(record: ModelRecord, override: str | None = None) -> str:
    """The backend name for ``record``, or a clear error saying what to install or ask for."""
    return decide(record, override)[0]


def decide(record: ModelRecord, override: str | None = None) -> tuple[str, str]:
    """(backend, why it was chosen): what was asked for, else the user's setting for the
    model, else the fastest engine ``fireside bench`` measured here, else the default."""
    from . import choice

    if override:
        return _choose(record, override), f"asked for ({override})"
    setting = choice.setting_of(record)
    if setting:
        try:
            return _choose(record, setting), choice.setting_reason(record, setting)
        except BackendUnavailable as exc:
            raise BackendUnavailable(
                f"{exc} (the engine is this model's setting; fireside models set {record.id} "
                f"--engine auto lets Fireside choose)"
            ) from None
    candidates = FORMAT_ENGINES.get(record.format, ())
    refusals = {c: why for c in candidates if (why := cannot_run(c, record))}
    usable = [
        c for c in candidates if on_request_only(c) is None and installed(c) and c not in refusals
    ]
    best = choice.measured(record, usable) if usable else None
    if best is not None:
        return best.engine, best.reason
    name = _choose(record, None)
    words = record.format.upper()
    if len(candidates) == 1:
        return name, f"the only engine for {words} models"
    if len(candidates) - len(refusals) == 1:
        return name, "the only engine for this file (" + "; ".join(refusals.values()) + ")"
    return name, f"the default for {words} models here (fireside bench {record.id} measures)"


def _choose(record: ModelRecord, override: str | None) -> str:
    candidates = FORMAT_ENGINES.get(record.format, ())
    if override:
        override = normalize_name(override)
        if override not in BACKENDS:
            raise BackendUnavailable(
                f"unknown backend {override!r}; known: {', '.join(sorted(BACKENDS))}"
            )
        if override not in candidates:
            can = ", ".join(candidates) or "none yet"
            raise BackendUnavailable(
                f"the {override} backend cannot run {record.format} models "
                f"({override} runs {BACKENDS[override].formats}; for {record.name}: {can})"
            )
        if why := cannot_run(override, record):
            raise BackendUnavailable(why)
        candidates = (override,)
    if not candidates:
        raise BackendUnavailable(f"no backend runs models in the {record.format!r} format yet")
    usable = [c for c in candidates if override or on_request_only(c) is None]
    if not usable:
        name = candidates[0]
        raise BackendUnavailable(
            f"{record.name} is an {record.format.upper()} model. {on_request_only(name)}. "
            f"To run it anyway: --backend {name}"
            + ("; or convert the original weights to GGUF" if name == "mlx" else "")
        )
    for name in usable:
        if installed(name) and (name == usable[0] or cannot_run(name, record) is None):
            return name
    name = usable[0]
    raise BackendUnavailable(
        f"{record.name} needs the {name} backend, which is not installed "
        f"(missing: {', '.join(missing_modules(name))}): {install_hint(name)}"
    )


def create_backend(
    record: ModelRecord, options: BackendOptions | None = None, override: str | None = None
) -> Backend:
    name = choose_backend(record, override)
    spec = BACKENDS[name]
    return getattr(importlib.import_module(spec.module), spec.cls)(record, options)


# -- what the machine offers (imports the engines; for `fireside doctor`, not for dispatch) ----
@functools.cache
def probe(backend: str) -> tuple[bool, str, tuple[str, ...]]:
    """(usable, why or version, devices best first) for one backend on this machine."""
    missing = missing_modules(backend)
    if missing:
        return False, f"not installed (missing {', '.join(missing)}): {install_hint(backend)}", ()
    try:
        if backend == "remote":
            import httpx

            return True, f"httpx {httpx.__version__}", ("remote",)
        if backend == "llama.cpp":
            from .llama_engine import describe_build, thread_counts

            text, devices, hint = describe_build()
            decode, prompt = thread_counts()
            text += f"; {decode} decode / {prompt} prompt threads"
            if hint:
                text += f"; {hint}"
            return True, text, tuple("gpu" if d != "cpu" else d for d in devices)
        if backend == "torch":
            import torch
            import transformers

            from .torch_backend import available_devices

            return (
                True,
                f"torch {torch.__version__}, transformers {transformers.__version__}",
                (tuple(available_devices())),
            )
        if backend == "onnx":
            import onnxruntime_genai as og

            return True, f"onnxruntime-genai {og.__version__}", ("cpu",)
        if backend == "openvino":
            import openvino_genai

            return True, f"openvino-genai {openvino_genai.__version__.split('-')[0]}", ("cpu",)
        if backend == "mlx":
            import mlx.core as mx
            import mlx_lm

            from .mlx_backend import mlx_device

            version = f"mlx {getattr(mx, '__version__', '?')}, mlx-lm {mlx_lm.__version__}"
            return True, version, (mlx_device(),)
    except Exception as exc:  # a broken install: say what it says
        from models.errors import describe

        return False, f"installed but cannot start: {describe(exc)}", ()
    return False, "unknown backend", ()


@dataclass(frozen=True)
class Plan:
    """What would run a model here: a backend and device, or why nothing would."""

    backend: str | None
    device: str | None
    note: str | None = None
    reason: str | None = None  # why this engine (runtime.choice)


def plan(record: ModelRecord, override: str | None = None) -> Plan:
    try:
        name, reason = decide(record, override)
    except BackendUnavailable as exc:
        return Plan(None, None, str(exc))
    usable, why, devices = probe(name)
    if not usable:
        return Plan(name, None, why, reason)
    note = on_request_only(name) if override else None
    return Plan(name, devices[0] if devices else "cpu", note, reason)
