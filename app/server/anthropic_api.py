"""The Anthropic Messages route: ``POST /v1/messages``, streamed (message_start,
content_block_start/delta/stop, message_delta, message_stop) and not, with tool use on the
server's tool-calling machinery and errors in Anthropic's shape. The request is mapped onto
the OpenAI reader (anthropic_map), so models, guards, parameters and tools are the same."""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.requests import Request

from models.errors import FiresideError

from .anthropic_map import error_body, stop_reason, to_chat_body, tool_block
from .context import Context, raise_for
from .errors import BadRequest
from .guards import read_json
from .openai_request import parse_request
from .pieces import StopWatcher, pieces


def _usage(chunk: Any) -> dict[str, int]:
    return {"input_tokens": chunk.prompt_tokens, "output_tokens": chunk.completion_tokens}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


async def _stream(feed: Any, first: Any, req: Any, watch: StopWatcher, ident: str):
    message = {"id": ident, "type": "message", "role": "assistant", "content": [],
               "model": req.model, "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": first.prompt_tokens, "output_tokens": 0}}  # fmt: skip
    index, text_open, used_tools = 0, False, False
    thinking_open = False
    try:
        yield _sse("message_start", {"message": message})
        async for piece in pieces(feed, first, req, watch):
            if piece[0] == "thinking":
                if not thinking_open:
                    block = {"type": "thinking", "thinking": "", "signature": ""}
                    yield _sse("content_block_start", {"index": index, "content_block": block})
                    thinking_open = True
                delta = {"type": "thinking_delta", "thinking": piece[1]}
                yield _sse("content_block_delta", {"index": index, "delta": delta})
                continue
            if thinking_open:  # the thought ends where the answer begins
                yield _sse("content_block_stop", {"index": index})
                index, thinking_open = index + 1, False
            if piece[0] == "text":
                if not text_open:
                    block = {"type": "text", "text": ""}
                    yield _sse("content_block_start", {"index": index, "content_block": block})
                    text_open = True
                delta = {"type": "text_delta", "text": piece[1]}
                yield _sse("content_block_delta", {"index": index, "delta": delta})
            elif piece[0] == "tool_start":
                if text_open:
                    yield _sse("content_block_stop", {"index": index})
                    index, text_open = index + 1, False
                start = tool_block(piece[1])
                yield _sse("content_block_start", {"index": index, "content_block": start})
            elif piece[0] == "tool_args":  # the arguments as the model writes them
                delta = {"type": "input_json_delta", "partial_json": piece[1]}
                yield _sse("content_block_delta", {"index": index, "delta": delta})
            elif piece[0] == "tool":
                yield _sse("content_block_stop", {"index": index})
                index, used_tools = index + 1, True
            elif piece[0] == "error":
                yield _sse("error", {"error": error_body(piece[1], 500)["error"]})
                return
            else:
                _, finish, last, notice = piece
                if text_open:
                    yield _sse("content_block_stop", {"index": index})
                delta = {"stop_reason": stop_reason(finish, used_tools, watch.matched),
                         "stop_sequence": watch.matched}  # fmt: skip
                more = {"fireside_notice": notice} if notice else {}
                usage = {"output_tokens": last.completion_tokens}
                yield _sse("message_delta", {"delta": delta, "usage": usage, **more})
                yield _sse("message_stop", {})
    finally:
        feed.cancel()


async def _collect(feed: Any, first: Any, req: Any, watch: StopWatcher, ident: str) -> Any:
    from fastapi.responses import JSONResponse

    content: list[dict[str, Any]] = []
    try:
        async for piece in pieces(feed, first, req, watch):
            if piece[0] == "thinking":
                if content and content[-1]["type"] == "thinking":
                    content[-1]["thinking"] += piece[1]
                else:
                    content.append({"type": "thinking", "thinking": piece[1], "signature": ""})
            elif piece[0] == "text":
                if content and content[-1]["type"] == "text":
                    content[-1]["text"] += piece[1]
                else:
                    content.append({"type": "text", "text": piece[1]})
            elif piece[0] == "tool":
                content.append(tool_block(piece[1]))
            elif piece[0] in ("tool_start", "tool_args"):
                continue  # the whole call comes with "tool"
            elif piece[0] == "error":
                return JSONResponse(error_body(piece[1], 500), status_code=500)
            else:
                _, finish, last, notice = piece
    finally:
        feed.cancel()
    used_tools = any(b["type"] == "tool_use" for b in content)
    if used_tools:  # the text around calls is only the template's whitespace, mostly
        content = [b for b in content if b["type"] != "text" or b["text"].strip()]
    body = {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": req.model,
        "content": content,
        "stop_reason": stop_reason(finish, used_tools, watch.matched),
        "stop_sequence": watch.matched,
        "usage": _usage(last),
    }
    headers = {"X-Fireside-Notice": notice} if notice else None
    return JSONResponse(body, headers=headers)


def register(api: Any, ctx: Context) -> None:
    from fastapi.responses import JSONResponse, StreamingResponse

    async def answer(request: Request):
        body = await read_json(request)
        chat, stops = to_chat_body(body)
        req = parse_request(chat, "chat", ctx.lookup)
        try:
            feed, first = await ctx.start(
                ctx.host.chat(req.record, req.payload, req.params), request
            )
        except BaseException as exc:
            raise_for(exc, "messages")
        watch, ident = StopWatcher(stops), f"msg_{secrets.token_hex(12)}"
        if req.stream:
            return StreamingResponse(
                _stream(feed, first, req, watch, ident),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _collect(feed, first, req, watch, ident)

    async def count(request: Request):
        body = await read_json(request)
        chat, _ = to_chat_body({"max_tokens": 1, **body, "stream": False})
        chat["max_tokens"] = 1
        req = parse_request(chat, "chat", ctx.lookup)
        try:  # the prompt as the model reads it: its first chunk counts it
            feed, first = await ctx.start(
                ctx.host.chat(req.record, req.payload, req.params), request
            )
        except BaseException as exc:
            raise_for(exc, "messages")
        feed.cancel()
        return {"input_tokens": first.prompt_tokens}

    @api.post("/v1/messages/count_tokens")
    async def count_tokens(request: Request):
        try:
            return await count(request)
        except BadRequest as exc:
            return JSONResponse(error_body(str(exc), exc.status), status_code=exc.status)

    @api.post("/v1/messages")
    async def messages(request: Request):
        try:
            return await answer(request)
        except BadRequest as exc:
            return JSONResponse(error_body(str(exc), exc.status), status_code=exc.status)
        except FiresideError as exc:
            return JSONResponse(error_body(str(exc), 500), status_code=500)
