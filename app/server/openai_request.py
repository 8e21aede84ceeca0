"""Reading OpenAI-shaped requests (``/v1/chat/completions``, ``/v1/completions``) into
what the runtime takes: messages or a prompt, and validated generation parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest
from .reasoning import read_thinking
from .structured import read_structured
from .tools import read_tool_calls, read_tools

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


@dataclass
class ParsedRequest:
    record: Any
    op: str  # "chat" | "complete"
    payload: Any  # messages or prompt
    params: Any  # runtime.GenerationParams
    stream: bool
    include_usage: bool
    model: str


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("messages must be a non-empty list of messages", "messages")
    clean = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(f"{where} must be an object with role and content", where)
        role = m.get("role")
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        answers_calls = bool(clean) and (
            clean[-1]["role"] == "tool" or bool(clean[-1].get("tool_calls"))
        )
        if role == "tool" and not answers_calls:
            raise BadRequest(
                f"{where} is a tool result, but the message before it made no tool call",
                f"{where}.role",
            )
        if role not in ROLES and role != "tool":
            raise BadRequest(
                f"{where}.role is {m.get('role')!r}; use one of {', '.join(ROLES)} (or tool)",
                f"{where}.role",
            )
        extra: dict[str, Any] = {}
        if role == "assistant" and m.get("tool_calls"):
            extra["tool_calls"] = read_tool_calls(m["tool_calls"], f"{where}.tool_calls")
        if role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str):
                raise BadRequest(f"{where}.tool_call_id must be a string", f"{where}.tool_call_id")
            extra["tool_call_id"] = call_id
            if isinstance(m.get("name"), str):
                extra["name"] = m["name"]
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
        clean.append({"role": role, "content": content, **extra})
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
    if op != "chat" and (body.get("tools") or body.get("functions")):
        raise BadRequest("tools are for /v1/chat/completions", "tools")
    if body.get("logprobs") not in (None, False, 0):
        raise BadRequest("logprobs are not supported", "logprobs")
    if body.get("echo"):
        raise BadRequest("echo is not supported", "echo")
    # OpenAI has no repetition penalty: neutral unless asked for, so temperature 0 is greedy.
    values: dict[str, Any] = {"repeat_penalty": 1.0, **read_structured(body)}
    if op == "chat":
        values.update(read_thinking(body))
        values.update(read_tools(body))
        tools_on = values.get("tools") and values["tool_choice"] != "none"
        if tools_on and ("json_schema" in values or "grammar" in values):
            raise BadRequest(
                "tools cannot be combined with response_format JSON or a grammar (a "
                "forced call is already held to its function's schema)",
                "response_format" if "json_schema" in values else "grammar",
            )
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
