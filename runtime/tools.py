"""Tool calls: which chat templates can offer tools, the schema that forces a call, and
reading the calls back out of the answer's text.

The template shows the model the functions (rendered with ``tools=``) and how to call
them; the model answers with calls in the template's format. Fireside reads the
Hermes/Qwen format (``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, used by
Qwen 2.5/3, Hermes, SmolLM3 and many fine-tunes); a template that offers tools in another
format is refused by name rather than half-understood.

``tool_choice`` "required" or a named function must really give a call: the prompt is
ended with the opening tag and the answer is held (a JSON schema, on engines with
structured output) to one call of the allowed functions.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameters

HERMES = "hermes"
OPEN, CLOSE = "<tool_call>", "</tool_call>"
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MALFORMED_NOTICE = (
    "the model wrote a tool call Fireside could not read (not JSON, or not one of the "
    "functions offered); it is returned as plain text"
)


def tool_format(template: str | None) -> str | None:
    """The tool-call format of a chat template: "hermes", "other" (offers tools in a
    format Fireside does not read yet), or None (no tool support)."""
    if not template or "tools" not in template:
        return None
    return HERMES if OPEN in template else "other"


def describe_support(template: str | None) -> str:
    """For ``fireside models show``: whether and how the model takes tools."""
    fmt = tool_format(template)
    if fmt == HERMES:
        return "yes (Hermes/Qwen format, <tool_call>)"
    if fmt == "other":
        return "its template offers tools in a format Fireside does not read yet"
    return "no (its chat template has no tool support)"


def require_support(template: str | None) -> None:
    fmt = tool_format(template)
    if fmt is None:
        raise InvalidParameters(
            "this model's chat template has no tool support, so it cannot be offered tools; "
            "use a model whose template takes tools (Qwen 2.5, Hermes, Llama 3.1, ...)"
        )
    if fmt != HERMES:
        raise InvalidParameters(
            "this model's chat template offers tools in a format Fireside does not read yet "
            "(it reads the Hermes/Qwen <tool_call> format)"
        )


def functions(tools_json: str) -> list[dict[str, Any]]:
    """The ``function`` objects of an OpenAI ``tools`` list (already checked by the face)."""
    return [t["function"] for t in json.loads(tools_json)]


def forced_call_schema(tools_json: str, choice: str) -> dict[str, Any]:
    """The JSON schema of one call: of the function named ``choice``, or (``required``)
    of any offered function."""
    fns = functions(tools_json)
    if choice != "required":
        fns = [f for f in fns if f["name"] == choice]
        if not fns:
            raise InvalidParameters(f"tool_choice names {choice!r}, which is not among the tools")

    def one(f: dict[str, Any]) -> dict[str, Any]:
        params = f.get("parameters") or {"type": "object"}
        return {
            "type": "object",
            "properties": {"name": {"const": f["name"]}, "arguments": params},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }

    return one(fns[0]) if len(fns) == 1 else {"anyOf": [one(f) for f in fns]}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as OpenAI's API carries it


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


class CallReader:
    """Reads an answer's text as it streams: ``feed`` and ``finish`` yield plain text
    (``str``) and complete calls (:class:`ToolCall`). A block that is not a call of one of
    ``names`` comes back as the text it was, and ``malformed`` is set."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.buffer = ""
        self.in_call = False
        self.malformed = False

    def feed(self, text: str) -> Iterator[str | ToolCall]:
        self.buffer += text
        while True:
            if not self.in_call:
                at = self.buffer.find(OPEN)
                if at < 0:
                    keep = _partial_suffix(self.buffer, OPEN)
                    ready, self.buffer = (
                        self.buffer[: len(self.buffer) - keep],
                        self.buffer[len(self.buffer) - keep :],
                    )
                    if ready:
                        yield ready
                    return
                if at:
                    yield self.buffer[:at]
                self.buffer, self.in_call = self.buffer[at:], True
            end = self.buffer.find(CLOSE)
            if end < 0:
                return
            block = self.buffer[: end + len(CLOSE)]
            self.buffer, self.in_call = self.buffer[end + len(CLOSE) :], False
            yield self._read(block)

    def finish(self) -> Iterator[str | ToolCall]:
        if self.buffer:
            if self.in_call:  # an opened call never closed (cut off, or not a call at all)
                self.malformed = True
            yield self.buffer
        self.buffer, self.in_call = "", False

    def _read(self, block: str) -> str | ToolCall:
        inner = block[len(OPEN) : -len(CLOSE)].strip()
        try:
            data = json.loads(inner)
        except ValueError:
            data = None
        if (
            isinstance(data, dict)
            and data.get("name") in self.names
            and isinstance(data.get("arguments", {}), dict)
        ):
            return ToolCall(new_call_id(), data["name"], json.dumps(data.get("arguments", {})))
        self.malformed = True
        return block


def _partial_suffix(text: str, tag: str) -> int:
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-k:]):
            return k
    return 0
