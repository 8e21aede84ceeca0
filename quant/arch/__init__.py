"""One short module per architecture, registered by its Hugging Face class name.

Adding an architecture: a subclass of :class:`Architecture` in a new module here, decorated
with :func:`register`, and its import at the bottom of this file.
"""

from __future__ import annotations

from models.errors import UnsupportedModel
from models.hf import HFCheckpoint, require_architecture

from .base import Architecture

REGISTRY: dict[str, type[Architecture]] = {}


def register(cls: type[Architecture]) -> type[Architecture]:
    for name in cls.hf_names:
        REGISTRY[name] = cls
    return cls


def supported_architectures() -> tuple[str, ...]:
    return tuple(sorted(REGISTRY))


def architecture_for(ckpt: HFCheckpoint) -> Architecture:
    """The converter for this checkpoint, or UnsupportedModel naming the supported ones."""
    name = require_architecture(ckpt, REGISTRY)
    arch = REGISTRY[name](ckpt.config)
    arch.check()
    return arch


from . import (  # noqa: E402,F401  (they register)
    gemma2,
    gemma3,
    glm4,
    gpt_oss,
    granite,
    llama,
    mixtral,
    olmo2,
    phi3,
    qwen2,
    qwen2moe,
    qwen3,
    qwen3moe,
    smollm3,
)

__all__ = [
    "REGISTRY",
    "Architecture",
    "UnsupportedModel",
    "architecture_for",
    "register",
    "supported_architectures",
]
