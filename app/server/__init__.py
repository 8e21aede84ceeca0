"""The OpenAI-compatible HTTP API: ``fireside serve``, and the server switch of the window.

Endpoints: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions`` and
``POST /v1/completions`` (streaming as server-sent events, and not), ``POST /v1/embeddings``,
``POST /v1/messages`` (Anthropic's Messages API) and ``POST /v1/responses`` (OpenAI's
Responses API), on FastAPI + uvicorn.
Models come from the library and run in a shared :class:`runtime.ModelHost` (loaded on the
first request, unloaded when idle, one answer at a time per model, in arrival order).

Safe by default:
- binds to loopback; any other address needs an API key, checked on every request
  (``Authorization: Bearer KEY`` or ``x-api-key: KEY``, constant-time comparison);
- on loopback, requests whose ``Host`` is not a loopback name or address are refused, which
  closes DNS rebinding (a web page whose name suddenly resolves to 127.0.0.1);
- no CORS unless origins are configured, and a browser request from any other ``Origin`` is
  refused; POST bodies must be JSON (a page cannot send one without a CORS preflight);
- bad requests get a 400 naming the wrong field, never a 500.

Qt-free: the window uses :class:`LocalServer` (start/stop on a background thread, the
address and a ready-to-paste snippet).

The package, one thing a module: ``config`` (settings), ``guards`` (Host, Origin, key, body
limits), ``context`` (what every endpoint shares), ``feed`` (answers to the event loop),
``openai_request`` / ``openai_response`` / ``openai_api`` (the OpenAI shape),
``structured``, ``tools`` and ``reasoning`` (response_format/grammar, tool calls, the
thinking switch of each shape), ``embeddings``,
``anthropic_map`` / ``anthropic_api`` (the Anthropic shape), ``responses_api``, ``pieces``
(an answer as thought, text and call pieces, for the shapes other than OpenAI chat), ``app`` (the ASGI
assembly) and ``local`` (the handle). A new API shape is one module with ``register(api,
ctx)`` listed in ``app.API_SHAPES``.
"""

from .app import create_app
from .config import (
    DEFAULT_HOST,
    DEFAULT_IDLE_UNLOAD_S,
    DEFAULT_PORT,
    ServerConfig,
    ServerConfigError,
)
from .errors import BadRequest, ClientGone, error_body
from .guards import MAX_BODY_BYTES, ApiKeyGuard, HostOriginGuard, read_json, split_host_header
from .local import LocalServer
from .openai_request import ParsedRequest, parse_request

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_IDLE_UNLOAD_S",
    "DEFAULT_PORT",
    "MAX_BODY_BYTES",
    "ApiKeyGuard",
    "BadRequest",
    "ClientGone",
    "HostOriginGuard",
    "LocalServer",
    "ParsedRequest",
    "ServerConfig",
    "ServerConfigError",
    "create_app",
    "error_body",
    "parse_request",
    "read_json",
    "split_host_header",
]
