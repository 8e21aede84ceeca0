"""What can go wrong talking to the Hub, each with its own plain message."""

from __future__ import annotations

from .. import errors as model_errors
from ..errors import FiresideError, describe, is_disk_full


class HubError(FiresideError):
    """Base of every Hub search or download problem."""


class HubOffline(HubError):
    """Offline mode is on: Fireside makes no network request at all."""


class HubUnreachable(HubError):
    """No connection to the Hub (no network, DNS failure, refused, timed out, dropped)."""


class HubAccessDenied(HubError):
    """A gated or private repository, or a token the Hub refuses."""


class HubRepoNotFound(HubError):
    """No such repository, revision or file on the Hub."""


class HubBadListing(HubError):
    """The Hub's answer cannot be trusted: unsafe file names, missing hashes, a changing commit."""


class DownloadVerificationFailed(HubError):
    """A downloaded file does not match the SHA-256 (or size) the Hub publishes for it."""


class DiskFull(HubError, model_errors.DiskFull):
    """Not enough room on the disk for the download."""


class NothingToDownload(HubError):
    """The repository has no files Fireside can use, or the requested quantization is absent."""


def failure_kind(exc: BaseException) -> str:
    """disk_full | unreachable | access | damaged | missing | other."""
    for cls, kind in (
        (DiskFull, "disk_full"),
        (HubUnreachable, "unreachable"),
        (HubAccessDenied, "access"),
        (DownloadVerificationFailed, "damaged"),
        (HubRepoNotFound, "missing"),
    ):
        if isinstance(exc, cls):
            return kind
    if is_disk_full(exc):
        return "disk_full"
    return "other"


def download_failure(name: str, done: int, total: int, exc: BaseException) -> str:
    """Why the download of ``name`` stopped, in plain words, and what to do (in any face)."""
    kind = failure_kind(exc)
    kept = f" ({done * 100 // total}% is kept)" if total and done else ""
    if kind == "disk_full":
        return (
            f"the disk is full, so {name} could not be saved{kept}. Free some space and "
            "resume the download: it continues where it stopped"
        )
    if kind == "unreachable":
        return (
            f"the connection to the Hub was lost while downloading {name}{kept}. Resume the "
            "download when the network is back: it continues where it stopped"
        )
    if kind == "damaged":
        return (
            f"a file of {name} arrived damaged (it does not match the SHA-256 the Hub "
            "publishes); it was deleted and nothing was added. Resume to fetch it again"
        )
    return describe(exc)
