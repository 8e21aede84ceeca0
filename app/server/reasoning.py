"""Reasoning on the API: how each request shape asks a thinking model to think or not, read
into ``GenerationParams.thinking``. The split of thinking from the answer is the runtime's
(runtime.reasoning); each API writes the ``reasoning`` of the chunks in its own shape.

OpenAI chat: ``chat_template_kwargs: {"enable_thinking": false}`` (llama-server's and
vLLM's field) or ``reasoning_effort`` ("none"/"minimal" off, "low"/"medium"/"high" on).
Anthropic: ``thinking: {"type": "disabled"}`` or ``{"type": "enabled", ...}``. Responses:
``reasoning: {"effort": ...}``. A model whose template has no thinking ignores them all.
"""

from __future__ import annotations

from typing import Any

from .errors import BadRequest

EFFORTS = {"none": False, "minimal": False, "low": True, "medium": True, "high": True}


def _effort(value: Any, where: str) -> bool:
    if value not in EFFORTS:
        raise BadRequest(f"{where} must be one of {', '.join(EFFORTS)}", where)
    return EFFORTS[value]


def read_thinking(body: dict[str, Any]) -> dict[str, Any]:
    """``{"thinking": bool}`` for GenerationParams, or ``{}`` (the template's default)."""
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, dict):
            raise BadRequest("chat_template_kwargs must be an object", "chat_template_kwargs")
        unknown = set(kwargs) - {"enable_thinking"}
        if unknown:
            raise BadRequest(
                f"chat_template_kwargs: only enable_thinking is supported, not "
                f"{', '.join(sorted(unknown))}",
                "chat_template_kwargs",
            )
        value = kwargs.get("enable_thinking")
        if value is not None:
            if not isinstance(value, bool):
                raise BadRequest(
                    "chat_template_kwargs.enable_thinking must be true or false",
                    "chat_template_kwargs",
                )
            return {"thinking": value}
    if body.get("reasoning_effort") is not None:
        return {"thinking": _effort(body["reasoning_effort"], "reasoning_effort")}
    return {}


def anthropic_thinking(value: Any) -> dict[str, Any]:
    """Anthropic's ``thinking`` as the chat body's ``chat_template_kwargs``."""
    if value is None:
        return {}
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in ("enabled", "disabled", "adaptive"):
        raise BadRequest("thinking.type must be enabled or disabled", "thinking")
    return {"chat_template_kwargs": {"enable_thinking": kind != "disabled"}}


def responses_reasoning(value: Any) -> dict[str, Any]:
    """The Responses API's ``reasoning`` as the chat body's ``reasoning_effort``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("reasoning must be an object such as {'effort': 'low'}", "reasoning")
    effort = value.get("effort")
    if effort is None:
        return {}
    _effort(effort, "reasoning.effort")
    return {"reasoning_effort": effort}
