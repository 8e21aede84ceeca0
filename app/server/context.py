"""What every endpoint shares: the library lookup, starting an answer on the model host,
and the runtime's errors turned into the API's (the status code and the field to blame).

An API shape (OpenAI chat/completions today; Anthropic Messages, OpenAI Responses or
embeddings later) is one module with a ``register(api, ctx)`` that adds its routes and
uses this context: its own request and response mapping, these shared parts.
"""

from __future__ import annotations

from typing import Any

from models.errors import FiresideError

from .errors import BadRequest
from .feed import Feed


class Context:
    def __init__(self, host: Any, catalog: Any, client_timeout_s: float | None = None) -> None:
        self.host, self.catalog = host, catalog  # a runtime.ModelHost, a models.Catalog
        self.client_timeout_s = client_timeout_s  # see ServerConfig.client_timeout_s

    def lookup(self, model_id: str) -> Any:
        """The library record of ``model_id``, or a 400 listing what there is."""
        from models.errors import ModelNotFound

        try:
            return self.catalog.get(model_id)
        except ModelNotFound:
            known = [r.id for r in self.catalog.list()]
            raise BadRequest(
                f"model {model_id!r} is not in the library; available: "
                f"{', '.join(known[:20]) or 'none'}",
                "model",
            ) from None

    async def start(self, hreq: Any, request: Any) -> tuple[Feed, Any]:
        """Run ``hreq`` (a HostRequest) and wait for its first chunk; a failure before it
        (a model that will not load, a prompt too long) is raised as it came (the caller
        knows which field to blame: see :func:`raise_for`)."""
        feed = Feed(hreq, self.client_timeout_s)
        feed.start()
        try:
            first = await feed.next(request)
        except BaseException:
            feed.cancel()
            raise
        if isinstance(first, BaseException):
            feed.cancel()
            raise first
        return feed, first


def raise_for(exc: BaseException, param: str | None = None) -> None:
    """The runtime's error as a BadRequest with the right status; ``param`` names the field
    a refused request is blamed on (the messages or the prompt)."""
    from models.errors import InvalidModelFile, UnsupportedModel
    from runtime import (
        BackendUnavailable,
        ContextOverflow,
        InvalidParameters,
        ModelLoadError,
        RemoteError,
        TemplateError,
    )

    if isinstance(exc, BadRequest):
        raise exc
    if isinstance(exc, ContextOverflow | InvalidParameters | TemplateError):
        raise BadRequest(str(exc), getattr(exc, "param", None) or param)
    if isinstance(exc, RemoteError):
        raise BadRequest(str(exc), status=502)
    if isinstance(exc, ModelLoadError | BackendUnavailable | InvalidModelFile | UnsupportedModel):
        raise BadRequest(str(exc), "model", status=503)
    if isinstance(exc, FiresideError):
        raise BadRequest(str(exc), status=500)
    raise exc
