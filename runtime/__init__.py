"""Generation: backends, chat templates, sampling parameters and the engine process. No Qt."""

from .backend import Backend, BackendOptions
from .dispatch import choose_backend, create_backend
from .engine import Engine
from .errors import (
    BackendUnavailable,
    ContextOverflow,
    EngineCrashed,
    InvalidParameters,
    ModelLoadError,
    TemplateError,
)
from .params import GREEDY, GenerationParams
from .types import CancelToken, Chunk, Message, ModelInfo, Timings

__all__ = [
    "GREEDY",
    "Backend",
    "BackendOptions",
    "BackendUnavailable",
    "CancelToken",
    "Chunk",
    "ContextOverflow",
    "Engine",
    "EngineCrashed",
    "GenerationParams",
    "InvalidParameters",
    "Message",
    "ModelInfo",
    "ModelLoadError",
    "TemplateError",
    "Timings",
    "choose_backend",
    "create_backend",
]
