"""The OpenAI-compatible HTTP API: ``fireside serve``, and the server switch of the window.

Endpoints: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions`` and
``POST /v1/completions`` (streaming as server-sent events, and not), on FastAPI + uvicorn.
Models come from the library and run in a shared :class:`runtime.ModelHost` (loaded on the
first request, unloaded when idle, one answer at a time per model, in arrival order).

Safe by default:
- binds to loopback; any other address needs an API key, checked on every request
  (``Authorization: Bearer KEY``, constant-time comparison);
- on loopback, requests whose ``Host`` is not a loopback name or address are refused, which
  closes DNS rebinding (a web page whose name suddenly resolves to 127.0.0.1);
- no CORS unless origins are configured, and a browser request from any other ``Origin`` is
  refused; POST bodies must be JSON (a page cannot send one without a CORS preflight);
- bad requests get a 400 naming the wrong field, never a 500.

Qt-free: the window uses :class:`LocalServer` (start/stop on a background thread, the
address and a ready-to-paste snippet).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import Request

from models.errors import FiresideError
from runtime.remote import is_loopback_host

from . import __version__

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_IDLE_UNLOAD_S = 300.0
MAX_BODY_BYTES = 8 * 1024 * 1024
DRAIN_LIMIT_BYTES = 256 * 1024 * 1024  # an oversized body is read (and dropped) up to this
DISCONNECT_POLL_S = 0.2
ROLES = ("system", "user", "assistant")
ROLE_ALIASES = {"developer": "system"}  # newer OpenAI clients call the system prompt this
PARAM_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repeat_penalty",
    "seed",
    "stop",
)

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Any]


class ServerConfigError(FiresideError):
    """The server settings are unsafe or impossible (e.g. a public address with no API key)."""


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


class BadRequest(FiresideError):
    """A request the API refuses; ``param`` names the field that is wrong."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


# -- settings ----------------------------------------------------------------------------
def split_host_header(value: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8080`` -> ``::1``)."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (the handle reports which)
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    idle_unload_s: float | None = DEFAULT_IDLE_UNLOAD_S  # None or 0: keep models loaded
    allowed_hosts: tuple[str, ...] = ()  # extra Host names to accept (e.g. behind a proxy)
    access_log: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ServerConfigError(f"the port must be between 0 and 65535, got {self.port!r}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ServerConfigError("the API key must be at least 8 characters long")
        if not self.loopback and not self.api_key:
            raise ServerConfigError(
                f"serving on {self.host} would let other machines use your models: give an "
                f"API key (--api-key, or FIRESIDE_API_KEY) or bind to 127.0.0.1"
            )
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ServerConfigError(
                    f"{origin!r} is not a web origin; write it like http://localhost:3000"
                )
        object.__setattr__(self, "cors_origins", tuple(o.rstrip("/") for o in self.cors_origins))

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


# -- the guards (plain ASGI, so streaming and disconnects pass through untouched) ---------
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


def error_body(message: str, *, param: str | None = None, kind: str = "invalid_request_error"):
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


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
                error_body(
                    "this server only answers requests addressed to localhost or a loopback "
                    "address (the Host header names another machine)",
                    kind="permission_error",
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
                error_body(
                    f"requests from web pages at {origin} are not allowed; start the server "
                    f"with --cors-origin {origin} to allow them",
                    kind="permission_error",
                ),
            )
        return await self.app(scope, receive, send)


class ApiKeyGuard:
    """Every request must carry ``Authorization: Bearer KEY`` (compared in constant time)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.expected = api_key.encode("utf-8")

    def key_ok(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode("utf-8", "replace"), self.expected)

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and not self.key_ok(_header(scope, b"authorization")):
            return await _send_json(
                send,
                401,
                error_body(
                    "this server needs an API key: send it as 'Authorization: Bearer KEY'",
                    kind="authentication_error",
                ),
            )
        return await self.app(scope, receive, send)


# -- reading requests --------------------------------------------------------------------
@dataclass
class ParsedRequest:
    record: Any
    op: str  # "chat" | "complete"
    payload: Any  # messages or prompt
    params: Any  # runtime.GenerationParams
    stream: bool
    include_usage: bool
    model: str


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


def _messages(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("messages must be a non-empty list of messages", "messages")
    clean = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where} must be an object with role and content", where)
        role = m.get("role")
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise BadRequest(
                f"{where}.role is {m.get('role')!r}; use one of {', '.join(ROLES)}",
                f"{where}.role",
            )
        if m.get("tool_calls"):
            raise BadRequest(f"{where}: tool calls are not supported", f"{where}.tool_calls")
        content = m.get("content")
        if content is None and role == "assistant":
            content = ""
        if isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text":
                    raise BadRequest(
                        f"{where}.content[{j}] is not text; only text parts are supported",
                        f"{where}.content",
                    )
                if not isinstance(part.get("text"), str):
                    raise BadRequest(
                        f"{where}.content[{j}].text must be a string", f"{where}.content"
                    )
                parts.append(part["text"])
            content = "".join(parts)
        if not isinstance(content, str):
            raise BadRequest(f"{where}.content must be a string", f"{where}.content")
        clean.append({"role": role, "content": content})
    return clean


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, list):
        raise BadRequest("prompt must be one string (batches are not supported)", "prompt")
    if not isinstance(value, str):
        raise BadRequest("prompt must be a string", "prompt")
    return value


def parse_request(body: dict[str, Any], op: str, lookup: Callable[[str], Any]) -> ParsedRequest:
    """Validate an OpenAI-style body; BadRequest names the first wrong field."""
    from runtime import GenerationParams, InvalidParameters

    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: the id of a model in the library", "model")
    if op == "chat":
        if "messages" not in body:
            raise BadRequest("messages is required", "messages")
        payload: Any = _messages(body["messages"])
    else:
        if "prompt" not in body:
            raise BadRequest("prompt is required", "prompt")
        payload = _prompt(body["prompt"])
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object", "stream_options")
    include_usage = bool(options.get("include_usage", False))
    n = body.get("n", 1)
    if n not in (1, None):
        raise BadRequest("n must be 1: Fireside returns one answer per request", "n")
    if body.get("tools") or body.get("functions"):
        raise BadRequest("tools and functions are not supported yet", "tools")
    if body.get("logprobs") not in (None, False, 0):
        raise BadRequest("logprobs are not supported", "logprobs")
    if body.get("echo"):
        raise BadRequest("echo is not supported", "echo")
    fmt = body.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") not in ("text", None)):
        raise BadRequest(
            "response_format must be text (JSON modes are not supported)", "response_format"
        )

    # OpenAI has no repetition penalty: neutral unless asked for, so temperature 0 is greedy.
    values: dict[str, Any] = {"repeat_penalty": 1.0}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        values["max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "top_k", "min_p", "seed"):
        if body.get(name) is not None:
            values[name] = body[name]
    penalty = body.get("repeat_penalty", body.get("repetition_penalty"))
    if penalty is not None:
        values["repeat_penalty"] = penalty
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list):
            raise BadRequest("stop must be a string or a list of strings", "stop")
        values["stop"] = tuple(stop)
    if isinstance(values.get("temperature"), int | float) and not isinstance(
        values["temperature"], bool
    ):
        values["temperature"] = float(values["temperature"])
    try:
        params = GenerationParams(**values)
    except InvalidParameters as exc:
        text = str(exc)
        param = next((f for f in PARAM_FIELDS if text.startswith(f)), None)
        if param == "max_tokens" and "max_completion_tokens" in body:
            param = "max_completion_tokens"
        raise BadRequest(text, param) from None
    except TypeError as exc:  # e.g. an unhashable stop entry
        raise BadRequest(f"a generation parameter has the wrong type: {exc}") from None

    record = lookup(model)
    if (
        params.max_tokens is not None
        and record.context_length
        and params.max_tokens > record.context_length
    ):
        raise BadRequest(
            f"max_tokens is {params.max_tokens}, more than {model}'s whole context "
            f"({record.context_length} tokens)",
            "max_tokens",
        )
    return ParsedRequest(record, op, payload, params, stream, include_usage, model)


# -- the app -----------------------------------------------------------------------------
_END = object()


def _finish(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def create_app(config: ServerConfig, host: Any, catalog: Any) -> ASGIApp:
    """The ASGI app, guards included. ``host`` is a runtime.ModelHost; ``catalog`` a Catalog."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from models.errors import ModelNotFound

    api = FastAPI(
        title="Fireside",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    def fail(status: int, message: str, param: str | None = None, kind: str | None = None):
        kind = kind or ("invalid_request_error" if status < 500 else "server_error")
        return JSONResponse(error_body(message, param=param, kind=kind), status_code=status)

    @api.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest):
        return fail(exc.status, str(exc), exc.param)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            message = f"there is no {request.url.path} here; see /v1/models"
        return fail(exc.status_code, message)

    @api.exception_handler(ClientGone)
    async def _gone(request: Request, exc: ClientGone):
        return Response(status_code=499)  # nobody is listening any more

    @api.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        from models.errors import describe

        return fail(500, f"the server failed: {describe(exc)}")

    def lookup(model_id: str) -> Any:
        try:
            return catalog.get(model_id)
        except ModelNotFound:
            known = [r.id for r in catalog.list()]
            raise BadRequest(
                f"model {model_id!r} is not in the library; available: "
                f"{', '.join(known[:20]) or 'none'}",
                "model",
            ) from None

    def model_entry(r: Any) -> dict[str, Any]:
        try:
            created = int(datetime.fromisoformat(r.added_at).timestamp())
        except (ValueError, TypeError):
            created = 0
        entry = {
            "id": r.id,
            "object": "model",
            "created": created,
            "owned_by": "fireside",
            "name": r.name,
            "format": r.format,
            "context_length": r.context_length,
        }
        info = host.info(r)
        if info is not None:  # what a request really gets now (per slot, after the split)
            entry["loaded"] = {
                "backend": info.backend,
                "context_length": info.context_length,
                "parallel": info.parallel,
            }
        return entry

    @api.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [model_entry(r) for r in catalog.list()]}

    @api.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str):
        return model_entry(lookup(model_id))

    @api.get("/health")
    async def health():
        return {"status": "ok", "version": __version__}

    async def answer(request: Request, op: str):
        body = await read_json(request)
        req = parse_request(body, op, lookup)
        hreq = (
            host.chat(req.record, req.payload, req.params)
            if op == "chat"
            else host.complete(req.record, req.payload, req.params)
        )
        feed = _Feed(hreq)
        feed.start()
        try:
            first = await feed.next(request)
        except BaseException:
            feed.cancel()
            raise
        if isinstance(first, BaseException):
            raise_for(first, op)
        # What the engine says about this answer (a base model continuing text, turns left
        # out of the context, a broken chat template replaced): a header, as the body's
        # shape is the OpenAI API's.
        notice = {"X-Fireside-Notice": _header_text(first.notice)} if first.notice else {}
        if req.stream:
            return StreamingResponse(
                _sse(feed, first, req, op),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **notice},
            )
        try:
            chunks, item = [], first
            while item is not _END:
                if isinstance(item, BaseException):
                    raise_for(item, op)
                chunks.append(item)
                if item.finish_reason is not None:
                    break
                item = await feed.next(request)
            response = _collect(chunks, req, op)
            response.headers.update(notice)
            return response
        finally:
            feed.cancel()

    def raise_for(exc: BaseException, op: str) -> None:
        from models.errors import InvalidModelFile, UnsupportedModel
        from runtime import (
            BackendUnavailable,
            ContextOverflow,
            InvalidParameters,
            ModelLoadError,
            RemoteError,
            TemplateError,
        )

        if isinstance(exc, ContextOverflow | InvalidParameters | TemplateError):
            raise BadRequest(str(exc), "messages" if op == "chat" else "prompt")
        if isinstance(exc, RemoteError):
            raise BadRequest(str(exc), status=502)
        if isinstance(
            exc, ModelLoadError | BackendUnavailable | InvalidModelFile | UnsupportedModel
        ):
            raise BadRequest(str(exc), "model", status=503)
        if isinstance(exc, FiresideError):
            raise BadRequest(str(exc), status=500)
        raise exc

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await answer(request, "chat")

    @api.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, "complete")

    app: ASGIApp = api
    if config.api_key:
        app = ApiKeyGuard(app, config.api_key)
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app = CORSMiddleware(
            app,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    return HostOriginGuard(app, config)


class _Feed:
    """Runs a HostRequest on its own thread and hands its chunks to the event loop."""

    def __init__(self, hreq: Any) -> None:
        self.hreq = hreq
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.done = False

    def start(self) -> None:
        threading.Thread(target=self._produce, name="fireside-http-answer", daemon=True).start()

    def _put(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the server is shutting down and its loop is gone
            self.hreq.cancel()

    def _produce(self) -> None:
        try:
            for chunk in self.hreq:
                self._put(chunk)
        except BaseException as exc:
            self._put(exc)
        else:
            self._put(_END)

    async def next(self, request: Any = None) -> Any:
        """The next chunk, exception or _END; cancels the answer if the client went away."""
        if request is None:
            item = await self.queue.get()
        else:
            while True:
                try:
                    item = await asyncio.wait_for(self.queue.get(), DISCONNECT_POLL_S)
                    break
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        self.cancel()
                        raise ClientGone() from None
        finished = getattr(item, "finish_reason", None) is not None
        if item is _END or isinstance(item, BaseException) or finished:
            self.done = True
        return item

    def cancel(self) -> None:
        if not self.done:
            self.hreq.cancel()


def _usage(last: Any) -> dict[str, int]:
    p = last.prompt_tokens if last else 0
    c = last.completion_tokens if last else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _timings(last: Any) -> dict[str, float] | None:
    t = getattr(last, "timings", None)
    if t is None:
        return None
    return {
        "time_to_first_token_s": round(t.time_to_first_token_s, 4),
        "prompt_tokens_per_s": round(t.prompt_tokens_per_s, 2),
        "generation_tokens_per_s": round(t.generation_tokens_per_s, 2),
        "total_s": round(t.total_s, 4),
    }


def _header_text(text: str) -> str:
    """One line of Latin-1, as an HTTP header value must be."""
    line = " ".join(text.split())
    return line.encode("latin-1", "replace").decode("latin-1")


def _collect(chunks: list[Any], req: ParsedRequest, op: str) -> Any:
    from fastapi.responses import JSONResponse

    last = chunks[-1] if chunks else None
    if last is not None and last.finish_reason == "error":
        return JSONResponse(
            error_body(last.error or "the engine failed", kind="server_error"), status_code=500
        )
    text = "".join(c.text for c in chunks)
    created = int(time.time())
    reason = _finish(last.finish_reason if last else None)
    if op == "chat":
        body = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": reason,
                }
            ],
        }
    else:
        body = {
            "id": f"cmpl-{secrets.token_hex(12)}",
            "object": "text_completion",
            "created": created,
            "model": req.model,
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}],
        }
    body["usage"] = _usage(last)
    if (timings := _timings(last)) is not None:
        body["timings"] = timings
    return JSONResponse(body)


async def _sse(feed: _Feed, first: Any, req: ParsedRequest, op: str) -> AsyncIterator[bytes]:
    """The answer as server-sent events; if the client goes away, the answer is cancelled."""
    chat = op == "chat"
    ident = f"{'chatcmpl' if chat else 'cmpl'}-{secrets.token_hex(12)}"
    created = int(time.time())
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(choices: list[dict], **more: Any) -> bytes:
        data = {"id": ident, "object": obj, "created": created, "model": req.model}
        data["choices"] = choices
        data.update(more)
        return f"data: {json.dumps(data)}\n\n".encode()

    def piece(text: str, reason: str | None = None) -> dict:
        if chat:
            return {"index": 0, "delta": {"content": text} if text else {}, "logprobs": None,
                    "finish_reason": reason}  # fmt: skip
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": reason}

    try:
        if chat:
            yield event(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]  # fmt: skip
            )
        item, last = first, None
        while True:
            if isinstance(item, BaseException):
                message = str(item) if isinstance(item, FiresideError) else repr(item)
                yield f"data: {json.dumps(error_body(message, kind='server_error'))}\n\n".encode()
                break
            if item is _END:
                break
            last = item
            if item.finish_reason == "error":
                body = error_body(item.error or "the engine failed", kind="server_error")
                yield f"data: {json.dumps(body)}\n\n".encode()
                break
            if item.text:
                yield event([piece(item.text)])
            if item.finish_reason is not None:
                yield event([piece("", _finish(item.finish_reason))])
                if req.include_usage:
                    yield event([], usage=_usage(last))
                break
            item = await feed.next()
        yield b"data: [DONE]\n\n"
    finally:
        feed.cancel()  # a no-op once the answer is complete


# -- running it --------------------------------------------------------------------------
def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


class LocalServer:
    """The server on a background thread (the window's switch) or in the foreground (CLI).

        server = LocalServer(ServerConfig(port=0))
        base_url = server.start()        # "http://127.0.0.1:PORT/v1", once it accepts requests
        print(server.snippet())          # curl and Python examples, ready to paste
        server.stop()

    Pass ``host=`` to share a ModelHost with the window (the server then leaves it open);
    otherwise the server makes its own and closes it on stop.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        host: Any = None,
        catalog: Any = None,
    ) -> None:
        self.config = config or ServerConfig()
        self._own_host = host is None
        self._host = host
        self._catalog = catalog
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port: int | None = None

    # -- addresses ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None and self._server.started and not self._server.should_exit

    @property
    def base_url(self) -> str:
        port = self.port if self.port is not None else self.config.port
        return f"http://{_url_host(self.config.host)}:{port}/v1"

    def snippet(self, model_id: str | None = None, *, reveal_key: bool = True) -> str:
        """curl and Python (openai package) examples for this server, ready to paste.

        With ``reveal_key=False`` the key is written as ``$FIRESIDE_API_KEY`` (for logs).
        """
        if model_id is None:
            from models import BUNDLED_ID

            model_id = BUNDLED_ID
        key = self.config.api_key
        py_key = f'"{key or "fireside"}"'
        py_import = ""
        if key and not reveal_key:
            key, py_key = "$FIRESIDE_API_KEY", 'os.environ["FIRESIDE_API_KEY"]'
            py_import = "import os\n"
        auth = f' \\\n  -H "Authorization: Bearer {key}"' if key else ""
        body = json.dumps({"model": model_id, "messages": [{"role": "user", "content": "Hello!"}]})
        # Short lines: it is shown in the window's dialog and printed by ``fireside serve``.
        return (
            f"curl {self.base_url}/chat/completions \\\n"
            f'  -H "Content-Type: application/json"{auth} \\\n'
            f"  -d '{body}'\n\n"
            f"{py_import}from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{self.base_url}", api_key={py_key})\n'
            f"reply = client.chat.completions.create(\n"
            f'    model="{model_id}",\n'
            f'    messages=[{{"role": "user", "content": "Hello!"}}],\n'
            f")\n"
            f"print(reply.choices[0].message.content)\n"
        )

    # -- lifecycle ----------------------------------------------------------------------
    def _bind(self) -> socket.socket:
        cfg = self.config
        try:
            infos = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ServerConfigError(f"cannot serve on {cfg.host!r}: {exc.strerror}") from None
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ServerConfigError(
                f"cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); is another "
                f"server using that port? pick another with --port"
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    def _prepare(self) -> Any:
        import uvicorn

        from models import Catalog
        from runtime import ModelHost

        if self._catalog is None:
            self._catalog = Catalog()
        if self._host is None:
            self._host = ModelHost(idle_unload_s=self.config.idle_unload_s)
        self._sock = self._bind()
        app = create_app(self.config, self._host, self._catalog)
        uv_config = uvicorn.Config(
            app,
            log_level="info" if self.config.access_log else "warning",
            access_log=self.config.access_log,
            lifespan="off",
            timeout_graceful_shutdown=3,
            server_header=False,
        )
        self._server = uvicorn.Server(uv_config)
        return self._server

    def start(self, timeout: float = 15.0) -> str:
        """Start on a background thread; returns the base URL once requests are accepted."""
        if self._thread is not None and self._thread.is_alive():
            return self.base_url
        server = self._prepare()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=[self._sock])
            except BaseException as exc:  # reported by start()
                errors.append(exc)

        self._thread = threading.Thread(target=run, name="fireside-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if errors or not self._thread.is_alive():
                self._cleanup()
                raise ServerConfigError(f"the server did not start: {errors[:1] or 'it exited'}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerConfigError("the server did not start in time")
            time.sleep(0.02)
        return self.base_url

    def serve_forever(self, ready: Callable[[LocalServer], None] | None = None) -> None:
        """Serve until Ctrl-C or SIGTERM (call from the main thread); then stop cleanly.

        ``ready(self)`` is called once the server accepts requests.
        """
        import signal

        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            if ready is not None:
                ready(self)
            while not stop.wait(0.25):
                if self._thread is None or not self._thread.is_alive():
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests, cancel running answers, and wait for the thread."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if self._host is not None and self._own_host:
            self._host.close()  # running answers end now, so the shutdown is quick
        if thread is not None:
            thread.join(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._own_host and self._host is not None:
            self._host.close()
            self._host = None
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
