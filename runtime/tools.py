"""Tool calls: which chat templates can offer tools and in which format, and the schema
that forces a call. Reading the calls back out of the answer's text is runtime.tool_reader.

The template shows the model the functions (rendered with ``tools=``) and how to call
them; the model answers with calls in the template's format. Fireside reads three, told
apart by the template's own markers: Hermes/Qwen ``<tool_call>`` (Qwen 2.5/3, Hermes,
SmolLM3 and many fine-tunes), Llama 3.x JSON (``<|start_header_id|>`` templates: a bare
``{"name", "parameters"}`` object) and Mistral ``[TOOL_CALLS]`` (v3's JSON list, or the
newer ``name[ARGS]{...}``, whose forced call can name one function only). A template that
offers tools in another format is refused by name rather than half-understood.

``tool_choice`` "required" or a named function must really give a call: the prompt is
ended with the format's opening marker and the answer is held (a JSON schema, on engines
with structured output) to calls of the allowed functions.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from .errors import InvalidParameters
from .tool_reader import (  # noqa: F401  (the runtime's face for tool calls)
    ARGS,
    HERMES,
    HERMES_CLOSE,
    HERMES_OPEN,
    LLAMA3,
    MISTRAL,
    MISTRAL_ARGS,
    MISTRAL_OPEN,
    ArgsPiece,
    CallReader,
    CallStart,
    ToolCall,
    new_call_id,
)

OPEN, CLOSE = HERMES_OPEN, HERMES_CLOSE
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MALFORMED_NOTICE = (
    "the model wrote a tool call Fireside could not read (not JSON, or not one of the "
    "functions offered); it is returned as plain text"
)
FORMAT_WORDS = {
    HERMES: "Hermes/Qwen format, <tool_call>",
    LLAMA3: "Llama 3.x JSON format",
    MISTRAL: "Mistral format, [TOOL_CALLS]",
    MISTRAL_ARGS: "Mistral format, [TOOL_CALLS]name[ARGS]",
}


def tool_format(template: str | None) -> str | None:
    """The tool-call format of a chat template: "hermes", "llama3", "mistral", "other"
    (offers tools in a format Fireside does not read yet), or None (no tool support)."""
    if not template or "tools" not in template:
        return None
    if HERMES_OPEN in template:
        return HERMES
    if MISTRAL_OPEN in template:  # the newer name[ARGS]{...}, or v3's JSON list
        return MISTRAL_ARGS if "[ARGS]" in template else MISTRAL
    if "<|start_header_id|>" in template:
        return LLAMA3
    return "other"


def describe_support(template: str | None) -> str:
    """For ``fireside models show``: whether and how the model takes tools."""
    fmt = tool_format(template)
    if fmt in FORMAT_WORDS:
        return f"yes ({FORMAT_WORDS[fmt]})"
    if fmt == "other":
        return "its template offers tools in a format Fireside does not read yet"
    return "no (its chat template has no tool support)"


def require_support(template: str | None) -> str:
    """The template's tool format, or a refusal in words."""
    fmt = tool_format(template)
    if fmt is None:
        raise InvalidParameters(
            "this model's chat template has no tool support, so it cannot be offered tools; "
            "use a model whose template takes tools (Qwen 2.5, Hermes, Llama 3.1, ...)"
        )
    if fmt not in FORMAT_WORDS:
        raise InvalidParameters(
            "this model's chat template offers tools in a format Fireside does not read yet "
            "(it reads the Hermes/Qwen <tool_call>, Llama 3.x JSON and Mistral [TOOL_CALLS] "
            "formats)"
        )
    return fmt


def template_of(record: Any) -> str | None:
    """The chat template of a library record (read once per file version)."""
    import os

    if record.format == "remote":
        return None
    try:
        stamp = os.stat(record.path).st_mtime_ns
    except OSError:
        return None
    return _template_at(record.format, record.path, stamp)


@functools.lru_cache(maxsize=32)
def _template_at(fmt: str, path: str, stamp: int) -> str | None:
    from models.errors import FiresideError
    from models.recognize import model_details
    from models.records import ModelRecord

    record = ModelRecord(id="-", name="-", format=fmt, path=path, source="local")
    try:
        return model_details(record).get("chat_template")
    except (OSError, ValueError, FiresideError):
        return None  # unreadable: the engine refuses it in words when it loads


def functions(tools_json: str) -> list[dict[str, Any]]:
    """The ``function`` objects of an OpenAI ``tools`` list (already checked by the face)."""
    return [t["function"] for t in json.loads(tools_json)]


def forced_call(
    tools_json: str, choice: str, fmt: str = HERMES, parallel: bool = True
) -> tuple[str, dict[str, Any], str]:
    """(the text that opens the answer, the JSON schema of what follows, the text that
    closes a call that ended by itself) for a forced call in the format ``fmt``."""
    fns = functions(tools_json)
    if choice != "required":
        fns = [f for f in fns if f["name"] == choice]
        if not fns:
            raise InvalidParameters(f"tool_choice names {choice!r}, which is not among the tools")
    key = "parameters" if fmt == LLAMA3 else "arguments"

    def one(f: dict[str, Any]) -> dict[str, Any]:
        params = f.get("parameters") or {"type": "object"}
        return {
            "type": "object",
            "properties": {"name": {"const": f["name"]}, key: params},
            "required": ["name", key],
            "additionalProperties": False,
        }

    if fmt == MISTRAL_ARGS:  # the name is text before [ARGS]: only one can be held to
        if len(fns) != 1:
            raise InvalidParameters(
                "this model writes calls as name[ARGS]{...}, which Fireside can hold to one "
                "function only: name it in tool_choice ({'type': 'function', 'function': "
                "{'name': ...}}), or offer a single tool"
            )
        name, params = fns[0]["name"], fns[0].get("parameters") or {"type": "object"}
        return f"{MISTRAL_OPEN}{name}{ARGS}", params, ""
    call = one(fns[0]) if len(fns) == 1 else {"anyOf": [one(f) for f in fns]}
    if fmt == MISTRAL:
        many = {"type": "array", "items": call, "minItems": 1}
        return MISTRAL_OPEN, many if parallel else {**many, "maxItems": 1}, ""
    if fmt == LLAMA3:
        return "", call, ""
    return HERMES_OPEN + "\n", call, "\n" + HERMES_CLOSE
