"""The small frozen records generation speaks in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from models.work import Progress as Progress  # the runtime's modules take it from here

FinishReason = Literal["stop", "length", "cancelled", "error"]
Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
Messages = Sequence[Message]
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Timings:
    time_to_first_token_s: float
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    total_s: float
    # Speculative decoding (0 when off): tokens proposed, and how many the model accepted.
    draft_tokens: int = 0
    accepted_tokens: int = 0

    @property
    def acceptance(self) -> float | None:
        """The share of proposed tokens the model accepted (None: nothing was proposed)."""
        return self.accepted_tokens / self.draft_tokens if self.draft_tokens else None


@dataclass(frozen=True)
class Chunk:
    """One step of a stream. The last chunk has a finish_reason, and timings unless it failed."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | None = None
    timings: Timings | None = None
    error: str | None = None
    notice: str | None = None  # something the user should be told (base model, dropped turns)
    reasoning: str = ""  # a reasoning model's thinking, apart from the answer (runtime.reasoning)


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model tells its users."""

    model_id: str
    backend: str
    context_length: int
    has_chat_template: bool
    device: str = "cpu"
    parallel: int = 1  # requests the engine serves at once (each gets context_length)
    speculation: str = "off"  # llama.cpp: "off", "ngram" or "draft" (runtime.speculative)


class CancelToken:
    """Anything with ``is_set()``: a threading.Event, a multiprocessing Event, or this."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set
