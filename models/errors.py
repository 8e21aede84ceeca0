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


class DiskFull(FiresideError):
    """No room on the disk for what was being written (checked up front, or met half-way);
    nothing half-written keeps a final name."""


class Cancelled(FiresideError):
    """Long work (copy, download, conversion) was cancelled by the user."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


def is_disk_full(exc: BaseException) -> bool:
    """A disk that is full, over quota, or past the file-size limit (EFBIG): one concept."""
    import errno

    full = (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
    return isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in full)


def describe(exc: BaseException) -> str:
    """The one way any face (CLI, window, API) puts an error into words for a person: our
    own errors as written; the common system failures as what happened; anything else as a
    plain sentence. Never a Python class name."""
    import errno

    if isinstance(exc, FiresideError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "there was not enough memory for that"
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        if is_disk_full(exc):
            return f"the disk is full{where}; free some space and try again"
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"permission denied{where}: that place cannot be written or read"
        if exc.errno == errno.ENOENT:
            return f"a file was not found{where}"
        if isinstance(exc, TimeoutError):
            return "the connection timed out"
        if isinstance(exc, ConnectionError):
            return "the connection failed"
        if exc.strerror:
            return f"the system refused: {exc.strerror.lower()}{where}"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"something went wrong ({first})" if first else "something went wrong"
