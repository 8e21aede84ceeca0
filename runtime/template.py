"""Chat templates: the model's own Jinja template, rendered in a sandbox.

A template comes from a downloaded file, so it is untrusted code: it runs in Jinja's
immutable sandbox, which refuses attribute access to Python internals (``__class__``,
``__globals__``, ``mro`` ...), and any attempt is reported as a TemplateError. The sandbox
also bounds what arithmetic may build (``'x' * 10**10``, a power of a huge exponent), so a
hostile template cannot exhaust memory or time either; anything a template breaks on is a
TemplateError in words.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .errors import TemplateError
from .types import ROLES, Message

MAX_TEMPLATE_LENGTH = 256 * 1024
MAX_BUILT = 1_000_000  # characters or items one repetition in a template may build
MAX_EXPONENT = 1_000


def _bounded_binop(op: str, left: Any, right: Any) -> Any:
    """``*`` and ``**`` in a template, refusing results no chat prompt needs."""
    if op == "**":
        if isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise TemplateError(f"the model's chat template computes a power of {right}")
        return left**right
    for seq, times in ((left, right), (right, left)):
        built = isinstance(seq, str | list | tuple) and isinstance(times, int)
        if built and len(seq) * times > MAX_BUILT:
            raise TemplateError(
                "the model's chat template repeats something into more than "
                f"{MAX_BUILT:,} characters or items"
            )
    return left * right


def validate_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Plain ``{"role", "content"}`` dicts, or a clear error. Tool use keeps its parts: an
    assistant's ``tool_calls``, a ``tool`` result's ``tool_call_id`` and ``name``."""
    from .errors import InvalidParameters

    if not messages:
        raise InvalidParameters("there are no messages to answer")
    clean = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ROLES and role != "tool":
            raise InvalidParameters(f"message {i} has role {role!r}; use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise InvalidParameters(f"message {i} has no text content")
        message: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and isinstance(m.get("tool_calls"), list | tuple):
            message["tool_calls"] = list(m["tool_calls"])
        if role == "tool":
            for key in ("tool_call_id", "name"):
                if isinstance(m.get(key), str):
                    message[key] = m[key]
        clean.append(message)
    return clean


@functools.lru_cache(maxsize=8)
def _compile(source: str) -> Any:
    from jinja2 import StrictUndefined, TemplateSyntaxError  # noqa: F401
    from jinja2.exceptions import TemplateError as JinjaError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    if len(source) > MAX_TEMPLATE_LENGTH:
        raise TemplateError("the model's chat template is implausibly large; refusing to run it")

    def raise_exception(message: str) -> None:
        raise TemplateError(f"the model's chat template refused the conversation: {message}")

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator in ("*", "**"):
                return _bounded_binop(operator, left, right)
            return super().call_binop(context, operator, left, right)

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(source)
    except JinjaError as exc:
        raise TemplateError(f"the model's chat template is broken: {exc}") from None


# For a model whose own template cannot be compiled: ChatML, the most common chat format.
GENERIC_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.lru_cache(maxsize=8)
def usable_template(source: str) -> tuple[str, str | None]:
    """The template to chat with, and a notice when the model's own is broken: such a model
    is not unusable, it chats through :data:`GENERIC_TEMPLATE` and the user is told so."""
    try:
        _compile(source)
    except TemplateError as exc:
        why = str(exc).removeprefix("the model's chat template is broken: ")
        return GENERIC_TEMPLATE, (
            f"the model's chat template is broken ({why}); Fireside chats with it using a "
            f"generic template (ChatML), which may not be the one it was trained on"
        )
    return source, None


def render_chat(
    template: str,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Render ``messages`` with the model's template, in the sandbox (``tools``: the
    OpenAI-shaped function list a tool-capable template shows the model; ``extra``: more
    template variables, such as ``enable_thinking``)."""
    from jinja2.exceptions import SecurityError
    from jinja2.exceptions import TemplateError as JinjaError

    compiled = _compile(template)
    try:
        return compiled.render(
            messages=list(messages),
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            **({"tools": tools} if tools else {}),
            **(extra or {}),
        )
    except SecurityError as exc:
        raise TemplateError(
            f"the model's chat template tried to do something unsafe and was stopped ({exc})"
        ) from None
    except TemplateError:
        raise
    except RecursionError:
        raise TemplateError("the model's chat template calls itself without end") from None
    except MemoryError:
        raise TemplateError("the model's chat template needs more memory than there is") from None
    except (JinjaError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
        raise TemplateError(f"the model's chat template failed: {exc}") from None


def render_plain(messages: Sequence[Message]) -> str:
    """For a base model (no chat template): the conversation as plain text to continue."""
    return "\n\n".join(m["content"] for m in messages if m["content"])
