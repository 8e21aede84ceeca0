"""The OpenAI Responses route: ``POST /v1/responses`` with text, streaming (response.created
... response.completed events) and function tools. The body is mapped onto the chat reader
(instructions, input items, function_call / function_call_output items, tools, text.format),
so models, guards, parameters and tool calling are the chat API's. Nothing is stored: a
``previous_response_id`` is refused; send the whole conversation as ``input``."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from starlette.requests import Request

from .context import Context, raise_for
from .errors import BadRequest
from .guards import read_json
from .openai_request import parse_request
from .pieces import pieces
from .reasoning import responses_reasoning


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a string or a list of text parts", where)
    parts = []
    for j, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text", "text") or not isinstance(
            part.get("text"), str
        ):
            raise BadRequest(f"{where}[{j}] is {kind!r}; only text parts are supported", where)
        parts.append(part["text"])
    return "".join(parts)


def _input(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise BadRequest("input must be a string or a non-empty list of items", "input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message":
            content = _content(item.get("content"), f"{where}.content")
            out.append({"role": item.get("role"), "content": content})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")}}  # fmt: skip
            if out and out[-1]["role"] == "assistant" and not out[-1]["content"]:
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            out.append({"role": "tool", "tool_call_id": item.get("call_id"),
                        "content": output if isinstance(output, str) else json.dumps(output)})  # fmt: skip
        elif kind == "reasoning":
            continue
        else:
            raise BadRequest(
                f"{where}.type is {kind!r}; supported: message, function_call, "
                "function_call_output",
                f"{where}.type",
            )
    return out


def to_chat_body(body: dict[str, Any]) -> dict[str, Any]:
    if body.get("previous_response_id") is not None:
        raise BadRequest(
            "this server keeps no responses: send the whole conversation in 'input' instead "
            "of previous_response_id",
            "previous_response_id",
        )
    if "input" not in body:
        raise BadRequest("input is required", "input")
    messages = _input(body["input"])
    if body.get("instructions") is not None:
        if not isinstance(body["instructions"], str):
            raise BadRequest("instructions must be a string", "instructions")
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for name in ("temperature", "top_p", "stream", "parallel_tool_calls", "grammar"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise BadRequest("tools must be a list", "tools")
        chat["tools"] = []
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or t.get("type") != "function":
                raise BadRequest(
                    f"tools[{i}] must be a function tool; built-in tools are not available here",
                    f"tools[{i}]",
                )
            fn = {k: t[k] for k in ("name", "description", "parameters") if t.get(k) is not None}
            chat["tools"].append({"type": "function", "function": fn})
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    if choice is not None:
        chat["tool_choice"] = choice
    chat.update(responses_reasoning(body.get("reasoning")))
    fmt = (body.get("text") or {}).get("format") if isinstance(body.get("text"), dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
    return chat


def _usage(chunk: Any) -> dict[str, Any]:
    p, c = chunk.prompt_tokens, chunk.completion_tokens
    return {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": c, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": p + c}  # fmt: skip


def _message(text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{secrets.token_hex(12)}", "status": status,
            "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}  # fmt: skip


def _thought(text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "reasoning", "id": f"rs_{secrets.token_hex(12)}", "status": status,
            "summary": [], "content": [{"type": "reasoning_text", "text": text}]}  # fmt: skip


def _call(call: Any) -> dict[str, Any]:
    """A call (or a call's start, with no arguments yet) as a function_call item."""
    return {"type": "function_call", "id": f"fc_{secrets.token_hex(12)}", "call_id": call.id,
            "name": call.name, "arguments": getattr(call, "arguments", ""),
            "status": "completed"}  # fmt: skip


class _Answer:
    """The response object, filled in as the answer comes."""

    def __init__(self, req: Any, body: dict[str, Any]) -> None:
        self.obj: dict[str, Any] = {
            "id": f"resp_{secrets.token_hex(12)}", "object": "response",
            "created_at": int(time.time()), "status": "in_progress", "model": req.model,
            "output": [], "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"),
            "parallel_tool_calls": req.params.parallel_tool_calls,
            "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
            "usage": None,
        }  # fmt: skip

    def finish(self, finish: str | None, last: Any) -> None:
        cut = finish == "length"
        self.obj["status"] = "incomplete" if cut else "completed"
        if cut:
            self.obj["incomplete_details"] = {"reason": "max_output_tokens"}
        self.obj["usage"] = _usage(last)


async def _collect(feed: Any, first: Any, req: Any, answer: _Answer) -> Any:
    from fastapi.responses import JSONResponse

    text, calls, thought = [], [], []
    async for piece in pieces(feed, first, req):
        if piece[0] == "thinking":
            thought.append(piece[1])
        elif piece[0] == "text":
            text.append(piece[1])
        elif piece[0] == "tool":
            calls.append(_call(piece[1]))
        elif piece[0] in ("tool_start", "tool_args"):
            continue  # the whole call comes with "tool"
        elif piece[0] == "error":
            raise BadRequest(piece[1], status=500)
        else:
            _, finish, last, notice = piece
    joined = "".join(text)
    if thought:
        answer.obj["output"].append(_thought("".join(thought)))
    if joined.strip() or not calls:
        answer.obj["output"].append(_message(joined))
    answer.obj["output"].extend(calls)
    answer.finish(finish, last)
    headers = {"X-Fireside-Notice": notice} if notice else None
    return JSONResponse(answer.obj, headers=headers)


async def _stream(feed: Any, first: Any, req: Any, answer: _Answer):
    seq = 0

    def event(kind: str, **data: Any) -> bytes:
        nonlocal seq
        seq += 1
        payload = {"type": kind, "sequence_number": seq - 1, **data}
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    output = answer.obj["output"]
    message: dict[str, Any] | None = None
    thought: dict[str, Any] | None = None

    def close_text() -> list[bytes]:
        nonlocal message
        if message is None:
            return []
        at, part = output.index(message), message["content"][0]
        message["status"] = "completed"
        where = {"item_id": message["id"], "output_index": at, "content_index": 0}
        done = [
            event("response.output_text.done", **where, text=part["text"], logprobs=[]),
            event("response.content_part.done", **where, part=part),
            event("response.output_item.done", output_index=at, item=message),
        ]
        message = None
        return done

    try:
        yield event("response.created", response=answer.obj)
        yield event("response.in_progress", response=answer.obj)
        async for piece in pieces(feed, first, req):
            if piece[0] == "thinking":
                if thought is None:
                    thought = _thought("", "in_progress")
                    output.append(thought)
                    yield event("response.output_item.added", output_index=len(output) - 1,
                                item={**thought, "content": []})  # fmt: skip
                thought["content"][0]["text"] += piece[1]
                yield event("response.reasoning_text.delta", item_id=thought["id"],
                            output_index=output.index(thought), content_index=0,
                            delta=piece[1])  # fmt: skip
                continue
            if thought is not None and thought["status"] == "in_progress":
                thought["status"] = "completed"
                at = output.index(thought)
                yield event("response.reasoning_text.done", item_id=thought["id"],
                            output_index=at, content_index=0,
                            text=thought["content"][0]["text"])  # fmt: skip
                yield event("response.output_item.done", output_index=at, item=thought)
            if piece[0] == "text":
                if message is None:
                    message = _message("", "in_progress")
                    output.append(message)
                    at = len(output) - 1
                    yield event("response.output_item.added", output_index=at, item=message)
                    empty = {"type": "output_text", "text": "", "annotations": []}
                    yield event("response.content_part.added", item_id=message["id"],
                                output_index=at, content_index=0, part=empty)  # fmt: skip
                message["content"][0]["text"] += piece[1]
                yield event("response.output_text.delta", item_id=message["id"],
                            output_index=output.index(message), content_index=0,
                            delta=piece[1], logprobs=[])  # fmt: skip
            elif piece[0] == "tool_start":
                for done in close_text():
                    yield done
                call = _call(piece[1])
                item = {**call, "arguments": "", "status": "in_progress"}
                output.append(item)
                yield event("response.output_item.added", output_index=len(output) - 1,
                            item=item)  # fmt: skip
            elif piece[0] == "tool_args":  # the arguments as the model writes them
                item = output[-1]
                item["arguments"] += piece[1]
                yield event("response.function_call_arguments.delta", item_id=item["id"],
                            output_index=len(output) - 1, delta=piece[1])  # fmt: skip
            elif piece[0] == "tool":
                item, at = output[-1], len(output) - 1
                item.update(arguments=piece[1].arguments, status="completed")
                yield event("response.function_call_arguments.done", item_id=item["id"],
                            output_index=at, name=item["name"], arguments=item["arguments"])  # fmt: skip
                yield event("response.output_item.done", output_index=at, item=item)
            elif piece[0] == "error":
                answer.obj["status"] = "failed"
                answer.obj["error"] = {"code": "server_error", "message": piece[1]}
                yield event("response.failed", response=answer.obj)
                return
            else:
                for done in close_text():
                    yield done
                _, finish, last, _notice = piece
                answer.finish(finish, last)
                kind = "response.incomplete" if finish == "length" else "response.completed"
                yield event(kind, response=answer.obj)
    finally:
        feed.cancel()


def register(api: Any, ctx: Context) -> None:
    from fastapi.responses import StreamingResponse

    @api.post("/v1/responses")
    async def responses(request: Request):
        body = await read_json(request)
        req = parse_request(to_chat_body(body), "chat", ctx.lookup)
        hreq = ctx.host.chat(req.record, req.payload, req.params)
        try:
            feed, first = await ctx.start(hreq, request)
        except BaseException as exc:
            raise_for(exc, "input")
        answer = _Answer(req, body)
        if req.stream:
            return StreamingResponse(
                _stream(feed, first, req, answer),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        try:
            return await _collect(feed, first, req, answer)
        finally:
            feed.cancel()
