"""Hugging Face tokenizer helpers shared by the PyTorch and MLX backends.

No heavy imports: these work on whatever tokenizer object the backend already loaded
(a ``transformers`` tokenizer, or the one inside mlx-lm's wrapper).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

CONTEXT_TOKENS = 6  # prompt tokens kept as left context so the first piece keeps its spaces


def chat_template_of(tokenizer: Any) -> str | None:
    """The tokenizer's chat template (from tokenizer_config.json or chat_template.jinja)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one
        template = template.get("default") or next(iter(template.values()), None)
    return template if isinstance(template, str) and template.strip() else None


def adds_bos(tokenizer: Any) -> bool:
    """Whether the tokenizer puts its BOS token in front when asked for special tokens."""
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    try:
        with_special = tokenizer.encode("a", add_special_tokens=True)
        plain = tokenizer.encode("a", add_special_tokens=False)
    except Exception:  # a tokenizer that cannot encode a test string: trust its own flag
        return bool(getattr(tokenizer, "add_bos_token", False))
    return len(with_special) > len(plain) and with_special[0] == bos_id


def template_vars(tokenizer: Any) -> dict[str, Any]:
    return {
        "chat_template": chat_template_of(tokenizer),
        "bos_token": getattr(tokenizer, "bos_token", None) or "",
        "eos_token": getattr(tokenizer, "eos_token", None) or "",
        "add_bos": adds_bos(tokenizer),
    }


def encode(tokenizer: Any, text: str, *, add_bos: bool) -> list[int]:
    """Token ids of ``text``; special-token text (``<|im_start|>``) becomes its special id."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if add_bos and bos_id is not None and (not ids or ids[0] != bos_id):
        ids.insert(0, bos_id)
    return ids


def end_ids(*sources: Any) -> frozenset[int]:
    """Every end-of-turn id named by the configs and tokenizer given (ints or lists of ints)."""
    found: set[int] = set()
    for value in sources:
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
            found.update(v for v in value if isinstance(v, int) and not isinstance(v, bool))
    return frozenset(found)


class IncrementalDetokenizer:
    """Turns sampled ids into text pieces, one call per token, never splitting a character.

    Decodes a small sliding window (a few tokens of left context plus the new ones) and
    emits only what the newest token added; while the text ends in an incomplete UTF-8
    sequence (U+FFFD) it waits for the next token.
    """

    def __init__(self, tokenizer: Any, context: list[int] | None = None) -> None:
        self._tok = tokenizer
        self._ids: list[int] = list(context or [])[-CONTEXT_TOKENS:]
        self._prefix = 0
        self._read = len(self._ids)

    def _decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def add(self, token_id: int) -> str:
        self._ids.append(int(token_id))
        before = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        if len(text) > len(before) and not text.endswith("\ufffd"):
            piece = text[len(before) :]
            self._prefix, self._read = self._read, len(self._ids)
            return piece
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character shows as U+FFFD)."""
        before = self._decode(self._ids[self._prefix : self._read])
        text = self._decode(self._ids[self._prefix :])
        self._prefix = self._read = len(self._ids)
        return text[len(before) :] if len(text) > len(before) else ""
