"""Reasoning models: the thinking a model writes before its answer, kept apart from it.

Models trained to think (Qwen3, DeepSeek-R1 and its distillations, SmolLM3, QwQ...) write
``<think> ... </think>`` at the start of their answer; their chat templates say so. Fireside
renders the template itself (sandboxed) and reads the engine's raw text, so the split is
made here, once, for every engine: each :class:`~runtime.types.Chunk` carries the answer in
``text`` and the thinking in ``reasoning``. (llama.cpp's own ``reasoning_format`` parsing
lives in its chat endpoint, which renders the template itself; Fireside hands llama.cpp
prompt tokens instead, so that parser never sees our answers.)

Thinking can be turned off per request (``GenerationParams.thinking = False``): a template
that reads ``enable_thinking`` (Qwen3, SmolLM3) is rendered with it false; another thinking
template gets an empty ``<think></think>`` block at the start of the answer, which is how
those models are told to answer at once. A template with no thinking is a plain
continuation: nothing is split and nothing is added.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from .types import Chunk

OPEN, CLOSE = "<think>", "</think>"
EMPTY_THOUGHT = f"{OPEN}\n\n{CLOSE}\n\n"


def thinks(template: str | None) -> bool:
    """Whether a chat template is a thinking model's (it writes ``<think>`` blocks)."""
    return bool(template) and OPEN in template  # type: ignore[operator]


def switch_off_kwarg(template: str | None) -> bool:
    """Whether the template itself turns thinking off (reads ``enable_thinking``)."""
    return bool(template) and "enable_thinking" in template  # type: ignore[operator]


def describe_support(template: str | None) -> str:
    """For ``fireside models show``."""
    if not thinks(template):
        return "no (its chat template has no thinking)"
    how = "enable_thinking" if switch_off_kwarg(template) else "an empty <think> block"
    return f"yes (<think> blocks; can be turned off: {how})"


def opens_thought(prompt: str) -> bool:
    """Whether the prompt (the template's generation prompt) already opened ``<think>``."""
    return prompt.rstrip().endswith(OPEN)


class ThoughtSplitter:
    """Text pieces in, (thinking, answer) pieces out. A thought is read only at the start
    of the answer (after white space), or from the start when the prompt opened it; the
    end of a piece that could begin a tag is held until it is known."""

    def __init__(self, opened: bool = False) -> None:
        self.state = "thinking" if opened else "start"
        self.buffer = ""
        self.lead = True  # white space that opens a thought is not part of it

    def feed(self, text: str) -> tuple[str, str]:
        self.buffer += text
        thought = answer = ""
        if self.state == "start":
            head = self.buffer.lstrip()
            if head.startswith(OPEN):
                self.buffer, self.state = head[len(OPEN) :], "thinking"
            elif OPEN.startswith(head):
                return "", ""  # may still become <think>
            else:
                self.state = "answer"
        if self.state == "thinking" and self.lead:
            self.buffer = self.buffer.lstrip()
            if not self.buffer:
                return "", ""
            self.lead = False
        if self.state == "thinking":
            at = self.buffer.find(CLOSE)
            if at < 0:
                keep = _partial_suffix(self.buffer, CLOSE)
                cut = len(self.buffer) - keep
                thought, self.buffer = self.buffer[:cut], self.buffer[cut:]
                return thought, ""
            thought, self.buffer = self.buffer[:at], self.buffer[at + len(CLOSE) :]
            self.state = "after"
        if self.state == "after":
            self.buffer = self.buffer.lstrip()
            if not self.buffer:
                return thought, ""
            self.state = "answer"
        answer, self.buffer = self.buffer, ""
        return thought, answer

    def finish(self) -> tuple[str, str]:
        """What is held back: a thought cut off stays thinking; anything else is answer."""
        rest, self.buffer = self.buffer, ""
        return (rest, "") if self.state == "thinking" else ("", rest)


def split_thoughts(chunks: Iterator[Chunk], opened: bool) -> Iterator[Chunk]:
    """The chunks with each one's thinking moved from ``text`` into ``reasoning``."""
    splitter = ThoughtSplitter(opened)
    for chunk in chunks:
        if chunk.finish_reason is not None:
            thought, answer = splitter.feed(chunk.text)
            more, rest = splitter.finish()
            thought, answer = thought + more, answer + rest
        else:
            thought, answer = splitter.feed(chunk.text)
        if thought or answer or chunk.finish_reason is not None or chunk.notice or chunk.error:
            yield dataclasses.replace(chunk, text=answer, reasoning=thought)


def _partial_suffix(text: str, tag: str) -> int:
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-k:]):
            return k
    return 0
