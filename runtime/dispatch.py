"""Which engine runs which model: the model's format, the machine, and the user's override."""

from __future__ import annotations

import importlib
import importlib.util

from models.records import ModelRecord

from .backend import Backend, BackendOptions
from .errors import BackendUnavailable

# backend name -> (module, class, the Python module it needs, the extra that installs it)
BACKENDS: dict[str, tuple[str, str, str, str]] = {
    "llama.cpp": ("runtime.llamacpp", "LlamaCppBackend", "llama_cpp", "fireside"),
}
# model format -> backends that can run it, best first
FORMAT_BACKENDS: dict[str, tuple[str, ...]] = {
    "gguf": ("llama.cpp",),
    "gguf-split": ("llama.cpp",),
}


def installed(backend: str) -> bool:
    return importlib.util.find_spec(BACKENDS[backend][2]) is not None


def choose_backend(record: ModelRecord, override: str | None = None) -> str:
    """The backend name for ``record``, or a clear error saying what to install."""
    candidates = FORMAT_BACKENDS.get(record.format, ())
    if override:
        if override not in BACKENDS:
            raise BackendUnavailable(
                f"unknown backend {override!r}; known: {', '.join(sorted(BACKENDS))}"
            )
        if override not in candidates:
            raise BackendUnavailable(f"the {override} backend cannot run {record.format} models")
        candidates = (override,)
    if not candidates:
        raise BackendUnavailable(f"no backend runs models in the {record.format!r} format yet")
    for name in candidates:
        if installed(name):
            return name
    name = candidates[0]
    extra = BACKENDS[name][3]
    hint = "pip install fireside" if extra == "fireside" else f"pip install 'fireside[{extra}]'"
    raise BackendUnavailable(
        f"{record.name} needs the {name} backend, which is not installed: {hint}"
    )


def create_backend(
    record: ModelRecord, options: BackendOptions | None = None, override: str | None = None
) -> Backend:
    name = choose_backend(record, override)
    module, cls, _, _ = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)(record, options)
