"""Reaching a remote OpenAI-compatible server: the API base from what a user pastes, the
key from its environment variable, the library record, the models it lists, and what its
refusals and lost connections mean in words (the backend that streams from it is
runtime.remote)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from models.records import ModelRecord, slugify

from .errors import InvalidParameters, ModelLoadError, RemoteError

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a big prompt on a busy cluster can take a while to start
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# -- records -----------------------------------------------------------------------------
def normalize_base_url(url: str) -> str:
    """The API base (``http://host:port/v1``) from what a user pastes, or a clear error."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameters(
            f"{url!r} is not an http(s) address; give the server's API base, "
            f"e.g. http://gpu-box:8000/v1"
        )
    if parts.username or parts.password:
        raise InvalidParameters(
            "put the API key in an environment variable (--api-key-env), not in the address"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/completions", "/models"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    if not path:
        path = "/v1"  # every OpenAI-compatible server serves under /v1
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def api_key_from_env(var: str | None, name: str = "the remote model") -> str | None:
    if not var:
        return None
    key = os.environ.get(var)
    if not key:
        raise ModelLoadError(
            f"{name} needs an API key in the environment variable {var}, which is not set"
        )
    return key


def list_remote_models(base_url: str, api_key: str | None = None) -> list[dict[str, Any]]:
    """The ``data`` of ``GET {base_url}/models`` (the models the server offers)."""
    with httpx.Client(timeout=httpx.Timeout(CONNECT_TIMEOUT_S)) as client:
        resp = get_models(client, base_url, api_key)
    if resp is None:
        return []
    return [m for m in resp if isinstance(m, dict) and isinstance(m.get("id"), str)]


def remote_record(
    name: str,
    url: str,
    remote_model: str,
    *,
    api_key_env: str | None = None,
    context_length: int | None = None,
    model_id: str | None = None,
) -> ModelRecord:
    """A library record for ``remote_model`` served at ``url`` (nothing is contacted)."""
    name = name.strip()
    if not name:
        raise InvalidParameters("a remote model needs a name")
    if not remote_model.strip():
        raise InvalidParameters("the remote model id cannot be empty")
    if api_key_env is not None and not ENV_NAME.match(api_key_env):
        raise InvalidParameters(
            f"{api_key_env!r} is not an environment variable name (letters, digits and _)"
        )
    base = normalize_base_url(url)
    return ModelRecord(
        id=model_id or slugify(name),
        name=name,
        format="remote",
        path=f"{base}#{remote_model}",  # unique per server and model
        source="remote",
        context_length=context_length,
        has_chat_template=True,
        provenance={"origin": base},
        extra={"url": base, "remote_model": remote_model, "api_key_env": api_key_env},
    )


# -- HTTP helpers ------------------------------------------------------------------------
def request_headers(api_key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(body.get("detail"), str):
            return body["detail"]
    return json.dumps(body)[:300]


def refusal(resp: httpx.Response, base_url: str) -> RemoteError:
    if resp.status_code in (401, 403):
        return RemoteError(
            f"the server at {base_url} refused the API key ({resp.status_code}: "
            f"{error_text(resp)}); check the key in the environment variable"
        )
    return RemoteError(f"the server at {base_url} answered {resp.status_code}: {error_text(resp)}")


def net_words(exc: BaseException) -> str:
    """What went wrong on the network, in words (httpx's messages, never a class name)."""
    if isinstance(exc, httpx.TimeoutException):
        return "it did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "the connection was refused or the host is unknown"
    from models.errors import describe

    return describe(exc)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``*.localhost``, and loopback addresses (127.0.0.0/8, ::1)."""
    h = host.strip().lower().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def refuse_if_offline(base_url: str) -> None:
    """Offline mode means no network request at all: a remote engine on another machine is
    refused before any connection (one on this machine, over loopback, is not the network)."""
    from models.hub import is_offline

    if is_loopback_host(urlsplit(base_url).hostname or ""):
        return
    if is_offline():
        raise RemoteError(
            f"offline mode is on, so Fireside makes no network request: the server at "
            f"{base_url} is not used until it is turned off (fireside offline off, or File > "
            f"Offline mode in the window)"
        )


def get_models(
    client: httpx.Client, base_url: str, api_key: str | None
) -> list[dict[str, Any]] | None:
    refuse_if_offline(base_url)
    try:
        resp = client.get(f"{base_url}/models", headers=request_headers(api_key))
    except httpx.HTTPError as exc:
        raise RemoteError(
            f"could not reach the server at {base_url} ({net_words(exc)}); "
            f"is it running, and is the address right?"
        ) from None
    if resp.status_code == 404:
        return None  # some servers do not list models; the chat request will tell
    if resp.status_code != 200:
        raise refusal(resp, base_url)
    try:
        data = resp.json().get("data")
    except (ValueError, AttributeError):
        return None
    return data if isinstance(data, list) else None


def context_length_of(entry: dict[str, Any]) -> int | None:
    for key in ("context_length", "max_model_len", "context_window", "n_ctx"):
        value = entry.get(key)
        if isinstance(value, int) and value > 0:
            return value
    meta = entry.get("meta")
    if isinstance(meta, dict) and isinstance(meta.get("n_ctx_train"), int):
        return meta["n_ctx_train"]
    return None
