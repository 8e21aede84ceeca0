"""The error types of Fireside. Every message is written to be shown to a user as it is."""

from __future__ import annotations


class FiresideError(Exception):
    """Base of every error Fireside raises on purpose; ``str(err)`` is the user-facing text."""


class ModelNotFound(FiresideError):
    """No model in the library has that id, and no file exists at that path."""


class InvalidModelFile(FiresideError):
    """A file or folder is not a model Fireside can use (corrupt, truncated, hostile, unknown)."""


class UnsupportedModel(FiresideError):
    """A well-formed model that no installed backend or converter can handle."""


class LibraryError(FiresideError):
    """The catalog itself could not be read or written."""


class Cancelled(FiresideError):
    """Long work (copy, download, conversion) was cancelled by the user."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)
