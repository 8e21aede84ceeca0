"""Writing runtime chunks back in OpenAI's shapes: one JSON body, or server-sent events."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from models.errors import FiresideError

from .errors import error_body
from .feed import END, Feed
from .openai_request import ParsedRequest
from .tools import call_entry, notice_for, reader_for, split_reply, tool_piece


def finish_reason(reason: str | None) -> str:
    return "length" if reason == "length" else "stop"


def _usage(last: Any) -> dict[str, int]:
    p = last.prompt_tokens if last else 0
    c = last.completion_tokens if last else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _timings(last: Any) -> dict[str, float] | None:
    t = getattr(last, "timings", None)
    if t is None:
        return None
    out = {
        "time_to_first_token_s": round(t.time_to_first_token_s, 4),
        "prompt_tokens_per_s": round(t.prompt_tokens_per_s, 2),
        "generation_tokens_per_s": round(t.generation_tokens_per_s, 2),
        "total_s": round(t.total_s, 4),
    }
    if t.draft_tokens:  # speculative decoding: tokens proposed, accepted, and the share
        out["draft_tokens"] = t.draft_tokens
        out["accepted_tokens"] = t.accepted_tokens
        out["acceptance"] = round(t.acceptance or 0.0, 4)
    return out


def header_text(text: str) -> str:
    """One line of Latin-1, as an HTTP header value must be."""
    line = " ".join(text.split())
    return line.encode("latin-1", "replace").decode("latin-1")


def collect(chunks: list[Any], req: ParsedRequest, op: str, notice: str | None = None) -> Any:
    """The whole answer as one body; ``notice`` (the engine's) goes in X-Fireside-Notice."""
    from fastapi.responses import JSONResponse

    last = chunks[-1] if chunks else None
    if last is not None and last.finish_reason == "error":
        return JSONResponse(
            error_body(last.error or "the engine failed", kind="server_error"), status_code=500
        )
    text = "".join(c.text for c in chunks)
    thought = "".join(c.reasoning for c in chunks)
    created = int(time.time())
    reason = finish_reason(last.finish_reason if last else None)
    if op == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if (reader := reader_for(req)) is not None:
            content, calls, malformed = split_reply(text, reader)
            if calls:
                message = {
                    "role": "assistant",
                    "content": content.strip() or None,
                    "tool_calls": [call_entry(c) for c in calls],
                }
                reason = "tool_calls" if reason == "stop" else reason
            notice = "; ".join(n for n in (notice, notice_for(malformed)) if n) or None
        if thought:
            message["reasoning_content"] = thought
        body = {
            "id": f"chatcmpl-{secrets.token_hex(12)}",
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
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
    headers = {"X-Fireside-Notice": header_text(notice)} if notice else None
    return JSONResponse(body, headers=headers)


async def sse(feed: Feed, first: Any, req: ParsedRequest, op: str) -> AsyncIterator[bytes]:
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

    calls = reader_for(req) if chat else None

    def written(parts: list[Any]) -> list[dict]:
        out = [piece(p) if isinstance(p, str) else tool_piece(p) for p in parts if p]
        return [p for p in out if p is not None]

    def pieces(text: str) -> list[dict]:
        if calls is None:
            return [piece(text)] if text else []
        return written(calls.feed(text))

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
            if item is END:
                break
            last = item
            if item.finish_reason == "error":
                body = error_body(item.error or "the engine failed", kind="server_error")
                yield f"data: {json.dumps(body)}\n\n".encode()
                break
            if chat and item.reasoning:
                yield event([{"index": 0, "delta": {"reasoning_content": item.reasoning},
                              "logprobs": None, "finish_reason": None}])  # fmt: skip
            for choice in pieces(item.text):
                yield event([choice])
            if item.finish_reason is not None:
                reason = finish_reason(item.finish_reason)
                more: dict[str, Any] = {}
                if calls is not None:
                    for choice in written(calls.finish()):
                        yield event([choice])
                    if calls.count and reason == "stop":
                        reason = "tool_calls"
                    if calls.malformed:
                        more["fireside_notice"] = notice_for(True)
                yield event([piece("", reason)], **more)
                if req.include_usage:
                    timed = {"timings": t} if (t := _timings(last)) is not None else {}
                    yield event([], usage=_usage(last), **timed)
                break
            item = await feed.next()
        yield b"data: [DONE]\n\n"
    finally:
        feed.cancel()  # a no-op once the answer is complete
