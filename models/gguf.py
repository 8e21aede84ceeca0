"""A bounded, validating reader for GGUF headers (single files and split models).

Every count, length, type and offset is checked against the file before it is trusted, so a
corrupt or hostile file raises :class:`InvalidModelFile` with a plain message, never an
exception from deep inside native code, and never an allocation the file merely asks for:
counts are capped, long arrays are walked without being kept, and the bytes of metadata kept
in memory have a budget.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InvalidModelFile
from .gguf_values import (
    ARRAY,
    DEFAULT_ALIGNMENT,
    FLOAT32,
    INT32,
    INT64_MAX,
    INTEGER_TYPES,
    MAGIC,
    MAX_ALIGNMENT,
    MAX_DIMS,
    MAX_KEY_LENGTH,
    MAX_KV,
    MAX_TENSOR_NAME,
    MAX_TENSORS,
    STRING,
    SUPPORTED_VERSIONS,
    TYPE_NAMES,
    UINT32,
    ArraySummary,
    Budget,
    Reader,
    corrupt,
    open_gguf,
    read_array,
    read_value,
)
from .sizes import human_size

# Keys whose type native code relies on (llama.cpp asserts or reads raw arrays): the allowed
# value types, and for arrays the allowed item types.
_SCALAR_KEYS: dict[str, frozenset[int]] = {
    "general.architecture": frozenset({STRING}),
    "general.alignment": frozenset({UINT32}),
    "general.file_type": INTEGER_TYPES,
    "general.quantization_version": INTEGER_TYPES,
    "general.name": frozenset({STRING}),
    "tokenizer.ggml.model": frozenset({STRING}),
    "tokenizer.chat_template": frozenset({STRING}),
    "split.no": INTEGER_TYPES,
    "split.count": INTEGER_TYPES,
    "split.tensors.count": INTEGER_TYPES,
}
_ARRAY_KEYS: dict[str, frozenset[int]] = {
    "tokenizer.ggml.tokens": frozenset({STRING}),
    "tokenizer.ggml.merges": frozenset({STRING}),
    "tokenizer.ggml.scores": frozenset({FLOAT32, INT32}),
    "tokenizer.ggml.token_type": frozenset({INT32}),
}
# Architecture keys ("llama.block_count" ...): integers, or per-layer integer arrays.
_ARCH_INT_SUFFIXES = (
    ".context_length",
    ".block_count",
    ".embedding_length",
    ".feed_forward_length",
    ".attention.head_count",
    ".attention.head_count_kv",
    ".attention.key_length",
    ".attention.value_length",
    ".attention.sliding_window",
)
SPLIT_PATTERN = re.compile(
    r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE
)


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    file_size: int
    alignment: int
    data_offset: int
    metadata: dict[str, Any] = field(repr=False)
    tensors: tuple[TensorInfo, ...] = field(repr=False)
    value_types: dict[str, int] = field(default_factory=dict, repr=False)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    def arch_value(self, suffix: str, default: Any = None) -> Any:
        """``{architecture}.{suffix}``, e.g. ``arch_value("block_count")``."""
        arch = self.architecture
        return self.metadata.get(f"{arch}.{suffix}", default) if arch else default

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def name(self) -> str | None:
        value = self.metadata.get("general.name")
        return value if isinstance(value, str) and value.strip() else None

    @property
    def context_length(self) -> int | None:
        value = self.arch_value("context_length")
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    @property
    def split_count(self) -> int:
        value = self.metadata.get("split.count", 1)
        return int(value) if isinstance(value, int) else 1

    @property
    def split_no(self) -> int:
        value = self.metadata.get("split.no", 0)
        return int(value) if isinstance(value, int) else 0

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def file_type(self) -> str | None:
        """The quantization label (``Q4_K_M``, ``Q8_0``, ``F16`` ...) from ``general.file_type``."""
        return file_type_label(self.metadata.get("general.file_type"))

    @property
    def bits_per_weight(self) -> float | None:
        params = self.parameter_count
        return round(8 * self.tensor_bytes / params, 2) if params else None


def file_type_label(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    from .ggml_types import file_type_name

    return file_type_name(value) or f"type {value}"


def _check_known_keys(name: str, metadata: dict[str, Any], types: dict[str, int]) -> None:
    """Keys that native code reads with a fixed type must have that type."""
    for key, vtype in types.items():
        if key.endswith("[]"):
            continue
        allowed = _SCALAR_KEYS.get(key)
        if allowed is not None and vtype not in allowed:
            raise corrupt(
                name,
                f"{key!r} is stored as {TYPE_NAMES[vtype]}, but must be "
                + " or ".join(sorted(TYPE_NAMES[t] for t in allowed)),
            )
        items_allowed = _ARRAY_KEYS.get(key)
        if items_allowed is not None:
            item_type = types.get(key + "[]")
            if vtype != ARRAY or item_type not in items_allowed:
                got = (
                    TYPE_NAMES[vtype]
                    if vtype != ARRAY
                    else f"an array of {TYPE_NAMES[item_type or 0]}"
                )
                raise corrupt(
                    name,
                    f"{key!r} is stored as {got}, but must be an array of "
                    + " or ".join(sorted(TYPE_NAMES[t] for t in items_allowed)),
                )
        if key.endswith(_ARCH_INT_SUFFIXES):
            ok = vtype in INTEGER_TYPES or (
                vtype == ARRAY and types.get(key + "[]") in INTEGER_TYPES
            )
            if not ok:
                raise corrupt(
                    name, f"{key!r} is stored as {TYPE_NAMES[vtype]}, not as a whole number"
                )
    tokens = metadata.get("tokenizer.ggml.tokens")
    n_tokens = _array_len(tokens)
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        n = _array_len(metadata.get(key))
        if n is not None and n_tokens is not None and n < n_tokens:
            raise corrupt(name, f"{key!r} has {n} entries for {n_tokens} tokens")


def _array_len(value: Any) -> int | None:
    if isinstance(value, ArraySummary):
        return value.count
    if isinstance(value, list):
        return len(value)
    return None


def _ggml_sizes(ggml_type: int, tensor: str, name: str) -> tuple[int, int]:
    from .ggml_types import tensor_type

    known = tensor_type(ggml_type)
    if known is not None:
        return known[1], known[2]
    raise InvalidModelFile(
        f"{name}: tensor {tensor!r} uses data type {ggml_type}, which this version of "
        "Fireside does not know (the file is corrupt or newer than Fireside)"
    ) from None


def is_gguf_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts with the GGUF magic (for files without the .gguf suffix)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse and validate the header of one GGUF file (one part of a split model)."""
    path = Path(path)
    fh, size = open_gguf(path)
    with fh:
        try:
            return _parse(fh, size, path)
        except OSError as exc:
            raise InvalidModelFile(f"{path} could not be read: {exc.strerror or exc}") from None


def _parse(fh: BinaryIO, size: int, path: Path) -> GGUFInfo:
    name = path.name
    r = Reader(fh, size, f"the GGUF file {name}")
    if size < 4 or r.read(4, "the magic number") != MAGIC:
        raise InvalidModelFile(f"{name} is not a GGUF file (it does not start with 'GGUF')")
    if size < 24:
        raise InvalidModelFile(f"{name} is truncated: a GGUF header needs 24 bytes, found {size}")
    version = r.u32("the version")
    if version not in SUPPORTED_VERSIONS:
        if version & 0xFFFF == 0 and (version >> 16) in (0x0200, 0x0300):
            raise InvalidModelFile(
                f"{name} is a big-endian GGUF file; Fireside reads little-endian ones"
            )
        raise InvalidModelFile(
            f"{name} is GGUF version {version}; Fireside reads versions 2 and 3 "
            "(the file is corrupt, or too old or too new)"
        )
    n_tensors = r.u64("the tensor count")
    n_kv = r.u64("the metadata count")
    # Each key/value needs at least 12 bytes, each tensor info at least 24.
    if n_kv > MAX_KV or n_kv > r.remaining() // 12:
        raise InvalidModelFile(
            f"{r.name} is truncated or corrupt: it claims {n_kv} metadata entries, "
            "more than fit in it"
        )
    if n_tensors > MAX_TENSORS or n_tensors > r.remaining() // 24:
        raise InvalidModelFile(
            f"{r.name} is truncated or corrupt: it claims {n_tensors} tensors, more than fit in it"
        )

    budget = Budget(r.name)
    metadata: dict[str, Any] = {}
    types: dict[str, int] = {}
    for _ in range(n_kv):
        key = r.string("a metadata key", limit=MAX_KEY_LENGTH)
        assert key is not None
        if not key:
            raise corrupt(r.name, "a metadata key is empty")
        if key in metadata:
            raise corrupt(r.name, f"the metadata key {key!r} appears twice")
        budget.take(len(key))
        vtype = r.u32(f"the type of {key!r}")
        if vtype == ARRAY:
            metadata[key], types[key + "[]"] = read_array(r, key, budget)
        else:
            metadata[key] = read_value(r, vtype, key, budget)
        types[key] = vtype
    _check_known_keys(r.name, metadata, types)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if alignment <= 0 or alignment & (alignment - 1) or alignment > MAX_ALIGNMENT:
        raise corrupt(r.name, f"alignment {alignment} is not a power of two up to {MAX_ALIGNMENT}")

    raw_tensors = []
    names: set[str] = set()
    for _ in range(n_tensors):
        tname = r.string("a tensor name", limit=MAX_KEY_LENGTH)
        assert tname is not None
        if not tname or len(tname.encode()) > MAX_TENSOR_NAME:
            raise corrupt(r.name, f"a tensor name is empty or too long ({len(tname)} characters)")
        if tname in names:
            raise corrupt(r.name, f"the tensor name {tname!r} appears twice")
        names.add(tname)
        n_dims = r.u32(f"the dimension count of {tname!r}")
        if n_dims > MAX_DIMS:
            raise corrupt(r.name, f"tensor {tname!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = tuple(r.u64(f"a dimension of {tname!r}") for _ in range(n_dims))
        ggml_type = r.u32(f"the type of {tname!r}")
        offset = r.u64(f"the offset of {tname!r}")
        raw_tensors.append((tname, shape, ggml_type, offset))

    data_offset = (r.pos + alignment - 1) // alignment * alignment
    tensors = []
    expected = 0  # where the next tensor's data must start, relative to data_offset
    for tname, shape, ggml_type, offset in raw_tensors:
        if any(d > INT64_MAX for d in shape):
            raise corrupt(r.name, f"tensor {tname!r} has an impossible shape {shape}")
        n_elements = math.prod(shape)
        if n_elements > INT64_MAX:
            raise corrupt(
                r.name, f"tensor {tname!r} has a shape {shape} whose element count overflows"
            )
        block, type_size = _ggml_sizes(ggml_type, tname, r.name)
        if shape and shape[0] % block:
            raise corrupt(
                r.name,
                f"tensor {tname!r} has rows of {shape[0]} values, which do not divide into "
                f"blocks of {block}",
            )
        n_bytes = n_elements // block * type_size
        if offset % alignment:
            raise corrupt(r.name, f"tensor {tname!r} is not aligned to {alignment} bytes")
        if offset != expected:
            where = ", past the end of the file" if data_offset + offset > size else ""
            raise corrupt(
                r.name,
                f"tensor {tname!r} claims its data at offset {offset}{where}; "
                f"it should be at {expected}",
            )
        expected = offset + (n_bytes + alignment - 1) // alignment * alignment
        tensors.append(TensorInfo(tname, shape, ggml_type, offset, n_elements, n_bytes))
    end = data_offset + (tensors[-1].offset + tensors[-1].n_bytes if tensors else 0)
    if end > size:
        raise InvalidModelFile(
            f"{r.name} is truncated: expected {human_size(end)} ({end} bytes), "
            f"found {human_size(size)} ({size} bytes). Download or copy it again."
        )
    return GGUFInfo(path, version, size, alignment, data_offset, metadata, tuple(tensors), types)
