"""The Anthropic Messages shape mapped onto the OpenAI one the server already reads: a
``/v1/messages`` body becomes a chat body for :func:`parse_request` (system prompt, text,
``tool_use`` / ``tool_result`` blocks, tools, ``tool_choice``), and the answer's pieces come
back as Anthropic content blocks, stop reasons and errors.

Stop sequences are watched by the API (pieces.StopWatcher) rather than the engine, because
Anthropic's answer says which one ended the text (``stop_sequence``).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import BadRequest
from .reasoning import anthropic_thinking

# Anthropic's error types by HTTP status (the official clients pick an exception by status).
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(message: str, status: int) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def _text(value: Any, where: str) -> str:
    """A string, or a list of text blocks joined."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a string or a list of text blocks", where)
    parts = []
    for j, block in enumerate(value):
        if not isinstance(block, dict) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise BadRequest(f"{where}[{j}] is {kind!r}; only text blocks are supported", where)
        if not isinstance(block.get("text"), str):
            raise BadRequest(f"{where}[{j}].text must be a string", where)
        parts.append(block["text"])
    return "".join(parts)


def _message(m: Any, i: int) -> list[dict[str, Any]]:
    """One Anthropic message as OpenAI chat messages (tool results become tool turns)."""
    where = f"messages[{i}]"
    if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
        raise BadRequest(f"{where}.role must be user or assistant", f"{where}.role")
    role, content = m["role"], m.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content must be a string or a list of blocks", where)
    text, calls, results = [], [], []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif kind == "tool_use" and role == "assistant":
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
                raise BadRequest(f"{at} needs an id and a name", at)
            args = block.get("input") or {}
            calls.append(
                {"id": block["id"], "type": "function",
                 "function": {"name": block["name"], "arguments": json.dumps(args)}}
            )  # fmt: skip
        elif kind == "tool_result" and role == "user":
            if not isinstance(block.get("tool_use_id"), str):
                raise BadRequest(f"{at}.tool_use_id must be a string", at)
            result = _text(block.get("content") or "", f"{at}.content")
            if block.get("is_error"):
                result = f"Error: {result}"
            results.append(
                {"role": "tool", "tool_call_id": block["tool_use_id"], "content": result}
            )
        elif kind == "thinking" and role == "assistant":
            continue  # an earlier answer's reasoning is not shown to the model again
        else:
            raise BadRequest(
                f"{at} is {kind!r}; supported blocks: text, tool_use (assistant), "
                "tool_result (user)",
                at,
            )
    out: list[dict[str, Any]] = list(results)
    if role == "assistant":
        out.append(
            {
                "role": "assistant",
                "content": "".join(text),
                **({"tool_calls": calls} if calls else {}),
            }
        )
    elif text or not results:
        out.append({"role": "user", "content": "".join(text)})
    return out


def _tools(tools: Any, choice: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("tools must be a list", "tools")
        converted = []
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or t.get("type") not in (None, "custom"):
                raise BadRequest(
                    f"tools[{i}] is not a client tool (name, description, input_schema); "
                    "server tools are not supported",
                    f"tools[{i}]",
                )
            fn = {"name": t.get("name"), "parameters": t.get("input_schema")}
            if fn["parameters"] is None:
                raise BadRequest(f"tools[{i}].input_schema is required", f"tools[{i}]")
            if t.get("description") is not None:
                fn["description"] = t["description"]
            converted.append({"type": "function", "function": fn})
        out["tools"] = converted
    if choice is not None:
        if not isinstance(choice, dict) or choice.get("type") not in (
            "auto",
            "any",
            "tool",
            "none",
        ):
            raise BadRequest("tool_choice.type must be auto, any, tool or none", "tool_choice")
        kind = choice["type"]
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        else:
            out["tool_choice"] = {"any": "required"}.get(kind, kind)
        if choice.get("disable_parallel_tool_use"):
            out["parallel_tool_calls"] = False
    return out


def to_chat_body(body: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(an OpenAI chat body, the stop sequences to watch for)."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: the id of a model in the library", "model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("max_tokens is required: a whole number of 1 or more", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list of messages", "messages")
    chat: list[dict[str, Any]] = []
    if body.get("system") is not None:
        chat.append({"role": "system", "content": _text(body["system"], "system")})
    for i, m in enumerate(messages):
        chat.extend(_message(m, i))
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise BadRequest("stop_sequences must be a list of non-empty strings", "stop_sequences")
    out: dict[str, Any] = {"model": model, "messages": chat, "max_tokens": max_tokens}
    # grammar: Fireside's own field, as on the OpenAI routes (a GBNF the answer is held to)
    for name in ("temperature", "top_p", "top_k", "stream", "grammar"):
        if body.get(name) is not None:
            out[name] = body[name]
    out.update(_tools(body.get("tools"), body.get("tool_choice")))
    out.update(anthropic_thinking(body.get("thinking")))
    return out, tuple(stops)


def stop_reason(finish: str | None, used_tools: bool, matched: str | None) -> str:
    if used_tools:
        return "tool_use"
    if matched is not None:
        return "stop_sequence"
    return "max_tokens" if finish == "length" else "end_turn"


def tool_block(call: Any) -> dict[str, Any]:
    """A call (or a call's start, whose input is still empty) as a tool_use block."""
    ident = call.id.removeprefix("call_")
    try:
        text = getattr(call, "arguments", "")
        args = json.loads(text) if text else {}
    except ValueError:
        args = {}
    return {"type": "tool_use", "id": f"toolu_{ident}", "name": call.name, "input": args}
