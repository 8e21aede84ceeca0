"""Generation: backends, chat templates, sampling parameters and the engine process. No Qt."""

from .backend import Backend, BackendOptions
from .dispatch import BACKENDS, Plan, choose_backend, create_backend, plan, probe
from .engine import Engine
from .errors import (
    BackendUnavailable,
    ContextOverflow,
    EngineCrashed,
    InvalidParameters,
    ModelLoadError,
    RemoteError,
    TemplateError,
)
from .host import HostRequest, LoadedModel, ModelHost
from .params import GREEDY, GenerationParams
from .types import CancelToken, Chunk, Message, ModelInfo, Timings

__all__ = [
    "BACKENDS",
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
    "HostRequest",
    "InvalidParameters",
    "LoadedModel",
    "Message",
    "ModelInfo",
    "ModelHost",
    "ModelLoadError",
    "Plan",
    "RemoteError",
    "TemplateError",
    "Timings",
    "choose_backend",
    "create_backend",
    "plan",
    "probe",
]
