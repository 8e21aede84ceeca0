"""The OpenAI routes: ``POST /v1/chat/completions`` and ``POST /v1/completions``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from .context import Context, raise_for
from .feed import END
from .guards import read_json
from .openai_request import parse_request
from .openai_response import collect, header_text, sse


def register(api: Any, ctx: Context) -> None:
    from fastapi.responses import StreamingResponse

    async def answer(request: Request, op: str):
        body = await read_json(request)
        req = parse_request(body, op, ctx.lookup)
        hreq = (
            ctx.host.chat(req.record, req.payload, req.params)
            if op == "chat"
            else ctx.host.complete(req.record, req.payload, req.params)
        )
        blame = "messages" if op == "chat" else "prompt"
        if req.params.grammar is not None:
            blame = "grammar"  # the engine's own refusals of a request are of its grammar
        try:
            feed, first = await ctx.start(hreq, request)
        except BaseException as exc:
            raise_for(exc, blame)
        # What the engine says about this answer (a base model continuing text, turns left
        # out of the context, a broken chat template replaced): a header, as the body's
        # shape is the OpenAI API's.
        notice = {"X-Fireside-Notice": header_text(first.notice)} if first.notice else {}
        if req.stream:
            return StreamingResponse(
                sse(feed, first, req, op),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **notice},
            )
        try:
            chunks, item = [], first
            while item is not END:
                if isinstance(item, BaseException):
                    raise_for(item, blame)
                chunks.append(item)
                if item.finish_reason is not None:
                    break
                item = await feed.next(request)
            return collect(chunks, req, op, first.notice)
        finally:
            feed.cancel()

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await answer(request, "chat")

    @api.post("/v1/completions")
    async def completions(request: Request):
        return await answer(request, "complete")
