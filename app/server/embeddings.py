"""``POST /v1/embeddings`` in the OpenAI shape: a string or a list of strings in, one vector
each out (floats, or base64 of little-endian float32), with the tokens counted. The work is
the runtime's :class:`runtime.embed.Embedder` (GGUF models, mean pooling)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from .context import Context, raise_for
from .errors import BadRequest
from .guards import read_json


def register(api: Any, ctx: Context) -> None:
    from runtime.embed import Embedder

    embedder = Embedder(ctx.host.options, idle_unload_s=ctx.host.idle_unload_s)

    @api.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await read_json(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("name the model to embed with in 'model'", "model")
        record = ctx.lookup(model)
        texts = body.get("input")
        if isinstance(texts, list) and texts and all(isinstance(t, int) for t in texts):
            raise BadRequest("input must be text; token ids are not accepted", "input")
        encoding = body.get("encoding_format") or "float"
        if body.get("dimensions") is not None:
            raise BadRequest(
                "this server cannot shorten vectors: leave out 'dimensions'", "dimensions"
            )
        try:
            result = await run_in_threadpool(embedder.embed, record, texts, encoding)
        except Exception as exc:
            raise_for(exc, "encoding_format" if encoding not in ("float", "base64") else "input")
        return {
            "object": "list",
            "model": record.id,
            "data": [{"object": "embedding", **d} for d in result["data"]],
            "usage": result["usage"],
        }
