"""The guards in front of every endpoint, as plain ASGI (so streaming and disconnects pass
through untouched): the Host check against DNS rebinding, the browser-Origin check, the API
key, and the body limits of a JSON request.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from runtime.remote_server import is_loopback_host

from .config import ServerConfig
from .errors import BadRequest, error_body

MAX_BODY_BYTES = 8 * 1024 * 1024
DRAIN_LIMIT_BYTES = 256 * 1024 * 1024  # an oversized body is read (and dropped) up to this

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Any]


def split_host_header(value: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8080`` -> ``::1``)."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _refusal(scope: Scope, message: str, kind: str) -> dict:
    """The error body in the shape of the API asked (Anthropic's for /v1/messages)."""
    if scope.get("path", "").startswith("/v1/messages"):
        return {"type": "error", "error": {"type": kind, "message": message}}
    return error_body(message, kind=kind)


async def _send_json(send: Callable, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class HostOriginGuard:
    """Refuses requests addressed to a non-loopback Host, and browser requests from unknown
    origins (outermost, before CORS, so a preflight from a stranger is refused too)."""

    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app, self.config = app, config
        self.allowed_hosts = {h.lower() for h in config.allowed_hosts}

    def host_ok(self, host_header: str | None) -> bool:
        if not self.config.loopback and not self.allowed_hosts:
            return True  # a public bind: the API key is the gate
        if not host_header:
            return False
        host = split_host_header(host_header).lower()
        return is_loopback_host(host) or host in self.allowed_hosts

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if not self.host_ok(_header(scope, b"host")):
            return await _send_json(
                send,
                403,
                _refusal(
                    scope,
                    "this server only answers requests addressed to localhost or a loopback "
                    "address (the Host header names another machine)",
                    "permission_error",
                ),
            )
        origin = _header(scope, b"origin")
        if (
            origin is not None
            and "*" not in self.config.cors_origins
            and origin.rstrip("/") not in self.config.cors_origins
        ):
            return await _send_json(
                send,
                403,
                _refusal(
                    scope,
                    f"requests from web pages at {origin} are not allowed; start the server "
                    f"with --cors-origin {origin} to allow them",
                    "permission_error",
                ),
            )
        return await self.app(scope, receive, send)


class ApiKeyGuard:
    """Every request must carry ``Authorization: Bearer KEY``, or ``x-api-key: KEY`` as
    Anthropic's clients send it (compared in constant time)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode("utf-8")

    def key_ok(self, header: str | None, x_api_key: str | None = None) -> bool:
        if x_api_key and hmac.compare_digest(
            x_api_key.strip().encode("utf-8", "replace"), self.expected
        ):
            return True
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8", "replace"), self.expected)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and not self.key_ok(
            _header(scope, b"authorization"), _header(scope, b"x-api-key")
        ):
            return await _send_json(
                send,
                401,
                _refusal(
                    scope,
                    "this server needs an API key: send it as 'Authorization: Bearer KEY' "
                    "(or 'x-api-key: KEY')",
                    "authentication_error",
                ),
            )
        return await self.app(scope, receive, send)


class BodyDeadline:
    """A request's body must arrive whole within ``timeout_s`` of the request: a client that
    sends it slowly (or stops half-way) gets a 408 naming the limit instead of holding the
    connection open for ever. Only the body is timed, not the wait for a disconnect after it."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        body_done = False

        async def timed_receive() -> dict:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise BadRequest(
                    f"the request body did not arrive within {self.timeout_s:g} s; the server "
                    "stops waiting for slow clients (fireside serve --client-timeout)",
                    status=408,
                ) from None
            body_done = message.get("type") != "http.request" or not message.get("more_body")
            return message

        return await self.app(scope, timed_receive, send)


async def read_json(request: Request) -> dict[str, Any]:
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise BadRequest(
            "send the request body as JSON with 'Content-Type: application/json'", status=415
        )
    chunks, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size <= MAX_BODY_BYTES:
            chunks.append(part)
        elif size > DRAIN_LIMIT_BYTES:
            break  # past this the client is hostile: answer now, whatever it sees
    # An oversized body is read to its end (and dropped) before the answer, so the client
    # gets the 413 instead of a connection reset in the middle of sending.
    if size > MAX_BODY_BYTES:
        raise BadRequest(
            f"the request body is {size / 1e6:.0f} MB or more; the limit is "
            f"{MAX_BODY_BYTES // (1024 * 1024)} MB",
            status=413,
        )
    raw = b"".join(chunks)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(
            "the request body nests objects or lists too deeply (about 1,000 levels or more)"
        ) from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def guarded(app: ASGIApp, config: ServerConfig) -> ASGIApp:
    """``app`` behind the guards, outermost first: Host/Origin, CORS (when configured), key."""
    app = BodyDeadline(app, config.client_timeout_s)
    if config.api_key:
        app = ApiKeyGuard(app, config.api_key)
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app = CORSMiddleware(
            app,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "x-api-key", "anthropic-version"],
            max_age=600,
        )
    return HostOriginGuard(app, config)
