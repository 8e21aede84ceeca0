"""Sampling and generation parameters, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from .errors import InvalidParameters

OverflowPolicy = Literal["error", "drop-oldest"]
MAX_STOP_STRINGS = 16


def _check_range(name: str, value: Any, low: float, high: float, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidParameters(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidParameters(f"{name} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise InvalidParameters(f"{name} must be between {low:g} and {high:g}, got {value!r}")


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    max_tokens: int | None = 512  # None: until the context is full
    stop: tuple[str, ...] = ()
    context_overflow: OverflowPolicy = "drop-oldest"
    # Structured output (engines with ``structured_output``; see runtime.structured): the
    # answer constrained to a JSON schema (given as a dict or JSON text, kept as JSON text)
    # or to a GBNF grammar. At most one of them.
    json_schema: str | None = None
    grammar: str | None = None
    # Tool calling (runtime.tools): the functions as JSON text (OpenAI's ``tools`` list) and
    # "auto", "none", "required" or the name of the one function to call.
    tools: str | None = None
    tool_choice: str = "auto"
    parallel_tool_calls: bool = True
    # Reasoning models (runtime.reasoning): None as the template does by default, False to
    # answer without thinking, True to think where the template can.
    thinking: bool | None = None

    def __post_init__(self) -> None:
        _check_range("temperature", self.temperature, 0.0, 5.0)
        _check_range("top_p", self.top_p, 0.0, 1.0)
        if self.top_p == 0:
            raise InvalidParameters("top_p must be above 0 (use temperature 0 for greedy decoding)")
        _check_range("top_k", self.top_k, 0, 1_000_000, integer=True)
        _check_range("min_p", self.min_p, 0.0, 1.0)
        _check_range("repeat_penalty", self.repeat_penalty, 0.0, 10.0)
        if self.repeat_penalty == 0:
            raise InvalidParameters("repeat_penalty must be above 0 (1 means no penalty)")
        if self.seed is not None:
            _check_range("seed", self.seed, 0, 2**32 - 1, integer=True)
        if self.max_tokens is not None:
            _check_range("max_tokens", self.max_tokens, 1, 10_000_000, integer=True)
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if len(stop) > MAX_STOP_STRINGS:
            raise InvalidParameters(f"at most {MAX_STOP_STRINGS} stop strings, got {len(stop)}")
        if any(not isinstance(s, str) or not s for s in stop):
            raise InvalidParameters("stop strings must be non-empty text")
        object.__setattr__(self, "stop", stop)
        _check_structured(self)
        if self.context_overflow not in ("error", "drop-oldest"):
            raise InvalidParameters(
                f"context_overflow must be 'error' or 'drop-oldest', got {self.context_overflow!r}"
            )

    def replace(self, **changes: Any) -> GenerationParams:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GenerationParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidParameters(
                f"unknown generation parameter(s): {', '.join(sorted(unknown))}"
            )
        return cls(**data)


def _check_structured(p: GenerationParams) -> None:
    import json

    for name in ("json_schema", "tools"):
        value = getattr(p, name)
        if value is not None and not isinstance(value, str):
            try:
                object.__setattr__(p, name, json.dumps(value))
            except (TypeError, ValueError):
                raise InvalidParameters(f"{name} must be JSON data") from None
    if p.json_schema is not None and p.grammar is not None:
        raise InvalidParameters("give a JSON schema or a grammar, not both")
    if p.grammar is not None and (not isinstance(p.grammar, str) or not p.grammar.strip()):
        raise InvalidParameters("grammar must be non-empty text (a GBNF grammar)")
    if not isinstance(p.tool_choice, str) or not p.tool_choice:
        raise InvalidParameters("tool_choice must be auto, none, required or a function's name")
    if not isinstance(p.parallel_tool_calls, bool):
        raise InvalidParameters("parallel_tool_calls must be true or false")
    if p.thinking is not None and not isinstance(p.thinking, bool):
        raise InvalidParameters("thinking must be true, false or left out")


GREEDY = GenerationParams(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
