"""OpenAI tool calling on ``/v1/chat/completions``: ``tools``, ``tool_choice`` and
``parallel_tool_calls`` read into GenerationParams; the history's tool parts (an
assistant's ``tool_calls``, ``role: "tool"`` results) into runtime messages; and the
answer's calls written back as ``message.tool_calls`` or streamed ``delta.tool_calls``.

The format knowledge (the template's call syntax, forcing a call) is the runtime's
(runtime.tools); this module is only the API's shape of it.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import BadRequest

MAX_TOOLS = 128


def read_tools(body: dict[str, Any]) -> dict[str, Any]:
    """``tools`` / ``tool_choice`` / ``parallel_tool_calls`` for GenerationParams."""
    from runtime import InvalidParameters
    from runtime.structured import check_schema
    from runtime.tools import NAME

    if body.get("functions") is not None or body.get("function_call") is not None:
        raise BadRequest(
            "functions and function_call are OpenAI's old names: send tools and tool_choice",
            "functions",
        )
    tools, choice = body.get("tools"), body.get("tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise BadRequest("parallel_tool_calls must be true or false", "parallel_tool_calls")
    if tools is None or tools == []:
        if choice not in (None, "none", "auto"):
            raise BadRequest("tool_choice needs tools to choose from", "tool_choice")
        return {}
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise BadRequest(f"tools must be a list of at most {MAX_TOOLS} functions", "tools")
    clean, names = [], []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise BadRequest(f"{where} must be {{'type': 'function', 'function': {{...}}}}", where)
        name = fn.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise BadRequest(
                f"{where}.function.name must be 1-64 letters, digits, '_', '.' or '-'",
                f"{where}.function.name",
            )
        if name in names:
            raise BadRequest(f"two tools are called {name!r}", f"{where}.function.name")
        params = fn.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict):
            raise BadRequest(
                f"{where}.function.parameters must be a JSON schema",
                f"{where}.function.parameters",
            )
        description = fn.get("description")
        if description is not None and not isinstance(description, str):
            raise BadRequest(
                f"{where}.function.description must be text", f"{where}.function.description"
            )
        names.append(name)
        entry = {"name": name, "parameters": params}
        if description:
            entry["description"] = description
        clean.append({"type": "function", "function": entry})
    if choice is None:
        choice = "auto"
    elif isinstance(choice, dict):
        fn = choice.get("function") if choice.get("type") == "function" else None
        choice = fn.get("name") if isinstance(fn, dict) else None
        if choice not in names:
            raise BadRequest(
                "tool_choice must name one of the tools: "
                "{'type': 'function', 'function': {'name': ...}}",
                "tool_choice",
            )
    elif choice not in ("auto", "none", "required"):
        raise BadRequest("tool_choice must be auto, none, required or a function", "tool_choice")
    if choice not in ("auto", "none"):  # the call is held to these schemas: check them now
        for i, tool in enumerate(clean):
            if choice in ("required", tool["function"]["name"]):
                try:
                    check_schema(tool["function"]["parameters"], "parameters")
                except InvalidParameters as exc:
                    raise BadRequest(str(exc), f"tools[{i}].function.parameters") from None
    values: dict[str, Any] = {"tools": json.dumps(clean), "tool_choice": choice}
    if parallel is not None:
        values["parallel_tool_calls"] = parallel
    return values


def read_tool_calls(value: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls`` (arguments parsed, as templates expect)."""
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be a list of calls", where)
    calls = []
    for j, call in enumerate(value):
        at = f"{where}[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest(f"{at} must have a function with a name", at)
        args = fn.get("arguments", "{}")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise BadRequest(f"{at}.function.arguments is not JSON", at) from None
        calls.append(
            {
                "id": str(call.get("id") or ""),
                "type": "function",
                "function": {"name": fn["name"], "arguments": args},
            }
        )
    return calls


def tool_names(params: Any) -> set[str] | None:
    """The functions a reply may call (None: tools are off for this request)."""
    if params.tools is None or params.tool_choice == "none":
        return None
    return {t["function"]["name"] for t in json.loads(params.tools)}


def reader_for(req: Any) -> ToolDeltas | None:
    """The call reader of one chat request: the model's tool format; a forced call (held
    to its schema by the engine) is read incrementally."""
    from runtime.tools import HERMES, template_of, tool_format

    names = tool_names(req.params)
    if names is None:
        return None
    fmt = tool_format(template_of(req.record)) or HERMES
    forced = req.params.tool_choice not in ("auto", "none")
    return ToolDeltas(names, req.params.parallel_tool_calls, fmt, forced)


def call_entry(call: Any, index: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }
    if index is not None:
        entry = {"index": index, **entry}
    return entry


def split_reply(text: str, reader: ToolDeltas) -> tuple[str, list[Any], bool]:
    """(plain text, calls, whether something that looked like a call was not one)."""
    from runtime.tools import ToolCall

    parts, calls = [], []
    for item in (*reader.feed(text), *reader.finish()):
        if isinstance(item, str):
            parts.append(item)
        elif isinstance(item[1], ToolCall):
            calls.append(item[1])
    return "".join(parts), calls, reader.malformed


def notice_for(malformed: bool) -> str | None:
    from runtime.tools import MALFORMED_NOTICE

    return MALFORMED_NOTICE if malformed else None


class ToolDeltas:
    """The streamed side: text pieces in; plain text and (index, event) out, each call as
    its start, argument pieces and the whole call (runtime.tool_reader); past the first
    call when parallel calls are off, the rest are dropped."""

    def __init__(self, names: set[str], parallel: bool, fmt: str, incremental: bool) -> None:
        from runtime.tools import CallReader

        self.reader = CallReader(names, fmt, incremental)
        self.parallel = parallel
        self.count = 0
        self.dropping = False

    @property
    def malformed(self) -> bool:
        return self.reader.malformed

    def _out(self, items: Any) -> list[Any]:
        from runtime.tools import CallStart, ToolCall

        out: list[Any] = []
        for item in items:
            if isinstance(item, str):
                out.append(item)
                continue
            if isinstance(item, CallStart):
                self.dropping = bool(self.count) and not self.parallel
                if not self.dropping:
                    self.count += 1
            if not self.dropping:
                out.append((self.count - 1, item))
            if isinstance(item, ToolCall):
                self.dropping = False
        return out

    def feed(self, text: str) -> list[Any]:
        return self._out(self.reader.feed(text)) if text else []

    def finish(self) -> list[Any]:
        return self._out(self.reader.finish())


def tool_piece(indexed: tuple[int, Any]) -> dict[str, Any] | None:
    """One streamed choice of a call: its start (id, name, no arguments yet), then its
    argument pieces (the openai client joins them by index); None for the whole call."""
    from runtime.tools import ArgsPiece, CallStart

    index, event = indexed
    if isinstance(event, CallStart):
        call = {"index": index, "id": event.id, "type": "function",
                "function": {"name": event.name, "arguments": ""}}  # fmt: skip
    elif isinstance(event, ArgsPiece):
        call = {"index": index, "function": {"arguments": event.text}}
    else:
        return None
    return {"index": 0, "delta": {"tool_calls": [call]}, "logprobs": None, "finish_reason": None}
