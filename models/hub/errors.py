"""What can go wrong talking to the Hub, each with its own plain message."""

from __future__ import annotations

from ..errors import FiresideError


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


class DiskFull(HubError):
    """Not enough room on the disk for the download."""


class NothingToDownload(HubError):
    """The repository has no files Fireside can use, or the requested quantization is absent."""
