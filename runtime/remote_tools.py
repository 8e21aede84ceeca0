"""What a remote OpenAI-compatible server is passed beyond text, and how its answer's tool
calls come back: ``tools``, ``tool_choice``, ``parallel_tool_calls`` and thinking on/off go
through as the OpenAI API spells them (the remote server applies its own template, so the
model's tool format is its business); an earlier answer's calls go back with their
arguments as JSON text; and the streamed ``delta.tool_calls`` are written as Fireside's
own call markup (Hermes ``<tool_call>`` text), which the faces read like any local model's
calls, arguments streamed as they come."""

from __future__ import annotations

import json
from typing import Any

from .params import GenerationParams
from .tool_reader import HERMES_CLOSE, HERMES_OPEN


def request_fields(params: GenerationParams) -> dict[str, Any]:
    """The tool and reasoning fields of the remote request."""
    body: dict[str, Any] = {}
    if params.tools is not None:
        body["tools"] = json.loads(params.tools)
        choice = params.tool_choice
        if choice in ("auto", "none", "required"):
            body["tool_choice"] = choice
        else:
            body["tool_choice"] = {"type": "function", "function": {"name": choice}}
        if not params.parallel_tool_calls:
            body["parallel_tool_calls"] = False
    if params.thinking is not None:
        body["chat_template_kwargs"] = {"enable_thinking": params.thinking}
    return body


def remote_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as the OpenAI API carries them (a call's arguments as JSON text)."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function") or {})
                if not isinstance(fn.get("arguments"), str):
                    fn["arguments"] = json.dumps(fn.get("arguments") or {})
                calls.append({**c, "function": fn})
            m = {**m, "tool_calls": calls, "content": m.get("content") or None}
        out.append(m)
    return out


class CallMarkup:
    """A remote stream's ``delta.tool_calls`` (by index, name first, arguments in pieces)
    written as ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` text."""

    def __init__(self) -> None:
        self.index: int | None = None
        self.args = False  # whether the open call has any argument text yet

    def feed(self, deltas: Any) -> str:
        text = ""
        for d in deltas if isinstance(deltas, list) else ():
            if not isinstance(d, dict):
                continue
            fn: dict[str, Any] = d["function"] if isinstance(d.get("function"), dict) else {}
            index = d.get("index", 0)
            if index != self.index:
                text += self.close()
                name = json.dumps(str(fn.get("name") or ""))
                text += f'{HERMES_OPEN}\n{{"name": {name}, "arguments": '
                self.index, self.args = index, False
            piece = fn.get("arguments")
            if isinstance(piece, str) and piece:
                text += piece
                self.args = True
        return text

    def close(self) -> str:
        if self.index is None:
            return ""
        self.index = None
        return ("" if self.args else "{}") + f"}}\n{HERMES_CLOSE}"
