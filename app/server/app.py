"""The ASGI app: FastAPI with the API's error handling, the model list, each API shape's
routes (one ``register`` per module), all behind the guards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from app import __version__

from . import anthropic_api, embeddings, openai_api, responses_api
from .config import ServerConfig
from .context import Context
from .errors import BadRequest, ClientGone, error_body
from .guards import ASGIApp, guarded

# Each API shape is a module with ``register(api, ctx)``; a new one is added here.
API_SHAPES = (openai_api, embeddings, anthropic_api, responses_api)


def create_app(config: ServerConfig, host: Any, catalog: Any) -> ASGIApp:
    """The ASGI app, guards included. ``host`` is a runtime.ModelHost; ``catalog`` a Catalog."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    api = FastAPI(
        title="Fireside",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    ctx = Context(host, catalog, config.client_timeout_s)

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
        return model_entry(ctx.lookup(model_id))

    @api.get("/health")
    async def health():
        return {"status": "ok", "version": __version__}

    for shape in API_SHAPES:
        shape.register(api, ctx)
    return guarded(api, config)
