"""Errors of the runtime layer; each message is shown to the user as it is."""

from __future__ import annotations

from models.errors import FiresideError


class InvalidParameters(FiresideError, ValueError):
    """A generation parameter is out of range."""


class BackendUnavailable(FiresideError):
    """The engine a model needs is not installed or cannot run on this machine."""


class ModelLoadError(FiresideError):
    """The engine could not load the model."""


class ContextOverflow(FiresideError):
    """The conversation does not fit the model's context window."""


class TemplateError(FiresideError):
    """The model's chat template is broken or tried something it may not."""


class EngineCrashed(FiresideError):
    """The engine process died (native crash, out of memory, killed)."""


class RemoteError(FiresideError):
    """A remote (OpenAI-compatible) server could not be reached or refused the request."""
