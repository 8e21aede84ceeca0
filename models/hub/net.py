"""The network edge: huggingface_hub's client, short timeouts, and its errors in plain words.

huggingface_hub is imported inside functions only: it costs most of a second to import, and
a user who never opens the Hub never pays it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from ..errors import is_disk_full
from .config import endpoint, is_offline
from .errors import (
    DiskFull,
    HubAccessDenied,
    HubError,
    HubOffline,
    HubRepoNotFound,
    HubUnreachable,
)

CONNECT_TIMEOUT = 5.0  # seconds to open a connection: a missing network shows up quickly
READ_TIMEOUT = 30.0  # seconds without a byte before a transfer counts as stalled
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}$")

OFFLINE_MESSAGE = (
    "offline: offline mode is on, so Fireside makes no network request. Turn it off to use "
    'the Hub (unset HF_HUB_OFFLINE, drop --offline, or set "offline": false in settings)'
)


def require_online(offline: bool | None = None) -> None:
    """Raise :class:`HubOffline` at once, before any socket is opened, when offline mode is on."""
    if is_offline(offline):
        raise HubOffline(OFFLINE_MESSAGE)


def check_repo_id(repo: str) -> str:
    if not _REPO_ID.match(repo) or ".." in repo or "--" in repo:
        raise HubRepoNotFound(
            f"{repo!r} is not a Hub repository name; it looks like OWNER/NAME, "
            "e.g. bartowski/Llama-3.2-1B-Instruct-GGUF"
        )
    return repo


def timeout() -> Any:
    import httpx2

    return httpx2.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)


def api() -> Any:
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def token_present() -> bool:
    from huggingface_hub import get_token

    try:
        return bool(get_token())
    except Exception:
        return False


def probe() -> None:
    """One quick request to the Hub, so a missing network is reported in seconds rather than
    after huggingface_hub's own retries (which wait up to half a minute)."""
    from huggingface_hub.utils import get_session

    with hub_errors():
        get_session().head(endpoint() + "/", timeout=timeout(), follow_redirects=False)


def _transport_errors() -> tuple[type[BaseException], ...]:
    import httpx2

    return (httpx2.TransportError,)


def unreachable_message(detail: str = "") -> str:
    why = f" ({detail})" if detail else ""
    return (
        f"cannot reach the Hub at {endpoint()}{why}. Check the network connection "
        "(or turn on offline mode to work without it)"
    )


def access_message(repo: str | None, status: int | None, gated: bool) -> str:
    name = repo or "this repository"
    if gated:
        head = f"{name} is gated: accept its terms on its Hub page, then log in"
    elif token_present():
        head = f"the Hub refused access to {name}{f' ({status})' if status else ''} with your token: it may be private, gated or misspelled, or the token lacks read access; check it"
    else:
        head = f"the Hub refused access to {name}{f' ({status})' if status else ''}: it is private or gated (or misspelled), and you are not logged in; log in"
    return f"{head} with `hf auth login`, or set HF_TOKEN to an access token"


@contextlib.contextmanager
def hub_errors(repo: str | None = None, revision: str | None = None) -> Iterator[None]:
    """Turn huggingface_hub / httpx / OS errors into Fireside's plain Hub errors."""
    from huggingface_hub import errors as hf

    transport = _transport_errors()
    try:
        yield
    except HubError:
        raise
    except hf.OfflineModeIsEnabled as exc:
        raise HubOffline(OFFLINE_MESSAGE) from exc
    except hf.GatedRepoError as exc:
        raise HubAccessDenied(access_message(repo, _status(exc), gated=True)) from exc
    except hf.RepositoryNotFoundError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise HubAccessDenied(access_message(repo, status, gated=False)) from exc
        raise HubRepoNotFound(
            f"there is no repository {repo or ''} on the Hub ({endpoint()}); check the name, "
            "or look for one with: fireside search WORDS"
        ) from exc
    except hf.RevisionNotFoundError as exc:
        raise HubRepoNotFound(
            f"{repo} has no revision {revision!r} (a branch, tag or commit)"
        ) from exc
    except hf.RemoteEntryNotFoundError as exc:
        raise HubRepoNotFound(
            f"a file listed for {repo} is missing on the Hub; try again later, or pin --revision"
        ) from exc
    except hf.HfHubHTTPError as exc:
        status = _status(exc)
        if status in (401, 403):
            raise HubAccessDenied(access_message(repo, status, gated=False)) from exc
        if status == 404:
            raise HubRepoNotFound(f"the Hub has no {repo or 'such repository'} (404)") from exc
        if status is not None and (status >= 500 or status == 429):
            raise HubUnreachable(
                f"the Hub is not answering properly right now (HTTP {status}); try again in a while"
            ) from exc
        raise HubError(f"the Hub refused the request (HTTP {status}): {_first_line(exc)}") from exc
    except transport as exc:
        raise HubUnreachable(unreachable_message(_first_line(exc) or type(exc).__name__)) from exc
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(
                "the disk is full (or a size limit was reached) while downloading; free some "
                "space and pull again: it continues where it stopped"
            ) from exc
        raise


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def listing_from_info(info: Any, repo: str) -> Any:
    """A :class:`RepoListing` from huggingface_hub's ``ModelInfo`` (with file metadata)."""
    from .listing import RemoteFile, RepoListing, check_listing

    siblings = info.siblings or []
    files = check_listing(
        RemoteFile(
            path=s.rfilename,
            size=(s.lfs.size if s.lfs else s.size),
            sha256=(s.lfs.sha256 if s.lfs else None),
            blob_id=s.blob_id,
        )
        for s in siblings
    )
    return RepoListing(
        repo=info.id or repo,
        revision=info.sha or "",
        files=files,
        tags=tuple(info.tags or ()),
        library=info.library_name,
        gated=bool(info.gated),
        extras={
            "downloads": info.downloads or 0,
            "likes": info.likes or 0,
            "private": bool(info.private),
            "last_modified": getattr(info, "last_modified", None),
        },
    )


def fetch_listing(repo: str, revision: str | None = None) -> Any:
    """The repository's files with sizes and hashes at ``revision`` (default: main)."""
    check_repo_id(repo)
    with hub_errors(repo, revision):
        info = api().model_info(repo, revision=revision, files_metadata=True, timeout=timeout())
    return listing_from_info(info, repo)
