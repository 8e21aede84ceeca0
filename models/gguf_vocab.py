"""A GGUF file's vocabulary (its tokenizer model and every token's text), read from the header
alone: what a draft model for speculative decoding must share with the model it drafts for.

:func:`models.gguf.read_gguf` walks long arrays without keeping them; this reader keeps the
one array that matters here and skips the rest, through the same bounded reader.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidModelFile
from .gguf_values import (
    ARRAY,
    MAGIC,
    MAX_ARRAY_ITEMS,
    MAX_KEY_LENGTH,
    SCALARS,
    STRING,
    Reader,
    open_gguf,
)

TOKENS_KEY = "tokenizer.ggml.tokens"
MODEL_KEY = "tokenizer.ggml.model"


@dataclass(frozen=True)
class Vocabulary:
    model: str | None  # llama.cpp's tokenizer kind ("gpt2", "llama", ...)
    tokens: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.tokens)


def read_vocabulary(path: str | os.PathLike[str]) -> Vocabulary:
    """The tokenizer kind and token texts of one GGUF file (checked like any header)."""
    path = Path(path)
    fh, size = open_gguf(path)
    with fh:
        try:
            return _walk(Reader(fh, size, f"the GGUF file {path.name}"), path.name)
        except OSError as exc:
            raise InvalidModelFile(f"{path} could not be read: {exc.strerror or exc}") from None


def _walk(r: Reader, name: str) -> Vocabulary:
    if r.remaining() < 24 or r.read(4, "the magic number") != MAGIC:
        raise InvalidModelFile(f"{name} is not a GGUF file")
    r.u32("the version")
    r.u64("the tensor count")
    n_kv = r.u64("the metadata count")
    if n_kv > r.remaining() // 12:
        raise InvalidModelFile(f"{r.name} is truncated or corrupt")
    model: str | None = None
    tokens: tuple[str, ...] = ()
    for _ in range(n_kv):
        key = r.string("a metadata key", limit=MAX_KEY_LENGTH) or ""
        vtype = r.u32(f"the type of {key!r}")
        if vtype == ARRAY:
            items = _array(r, key, keep=key == TOKENS_KEY)
            if key == TOKENS_KEY:
                tokens = tuple(items)
        elif vtype == STRING:
            text = r.string(f"the value of {key!r}", keep=key == MODEL_KEY)
            if key == MODEL_KEY:
                model = text
        elif vtype in SCALARS:
            r.skip(SCALARS[vtype].size, f"the value of {key!r}")
        else:
            raise InvalidModelFile(f"{r.name} is corrupt: {key!r} has unknown value type {vtype}")
    return Vocabulary(model, tokens)


def _array(r: Reader, key: str, *, keep: bool) -> list[str]:
    item_type = r.u32(f"the item type of {key!r}")
    count = r.u64(f"the length of {key!r}")
    if count > MAX_ARRAY_ITEMS or count > r.remaining() // 4:
        raise InvalidModelFile(f"{r.name} is truncated or corrupt: {key!r} claims {count} items")
    if item_type in SCALARS:
        r.skip(count * SCALARS[item_type].size, f"the items of {key!r}")
        return []
    if item_type != STRING:
        raise InvalidModelFile(f"{r.name} is corrupt: {key!r} has items of type {item_type}")
    if not keep:
        r.skip_strings(count, f"an item of {key!r}")
        return []
    return [r.string(f"an item of {key!r}") or "" for _ in range(count)]
