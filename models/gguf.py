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
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InvalidModelFile
from .sizes import human_size

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_ALIGNMENT = 1 << 20
MAX_DIMS = 4
MAX_TENSOR_NAME = 63  # llama.cpp's GGML_MAX_NAME is 64, terminating zero included
MAX_KEY_LENGTH = 65_535
MAX_STRING_LENGTH = 64 * 1024 * 1024  # a chat template or a long description, never more
MAX_KEPT_BYTES = 128 * 1024 * 1024  # all metadata strings kept in memory, together
MAX_KV = 1 << 20  # real files have a few dozen
MAX_TENSORS = 1 << 20  # real files have a few hundred to a few tens of thousands
MAX_ARRAY_ITEMS = 1 << 25  # vocabularies and merge lists: up to a few hundred thousand
KEEP_ARRAY_ITEMS = 256  # longer arrays (vocabularies, merges) are walked but summarised
INT64_MAX = (1 << 63) - 1
_CHUNK = 1 << 20

# GGUF value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = (
    range(13)
)
TYPE_NAMES = (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
    "string", "array", "uint64", "int64", "float64",
)  # fmt: skip
INTEGER_TYPES = frozenset({UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64})
_SCALARS: dict[int, struct.Struct] = {
    UINT8: struct.Struct("<B"),
    INT8: struct.Struct("<b"),
    UINT16: struct.Struct("<H"),
    INT16: struct.Struct("<h"),
    UINT32: struct.Struct("<I"),
    INT32: struct.Struct("<i"),
    FLOAT32: struct.Struct("<f"),
    BOOL: struct.Struct("<?"),
    UINT64: struct.Struct("<Q"),
    INT64: struct.Struct("<q"),
    FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

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


def _corrupt(name: str, what: str) -> InvalidModelFile:
    return InvalidModelFile(f"{name} is corrupt: {what}")


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array that was walked and checked but not kept in memory."""

    item_type: int
    count: int


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


class _Reader:
    """Reads little-endian values from a file through a bounded window, never past its end."""

    def __init__(self, fh: BinaryIO, size: int, name: str) -> None:
        self.fh = fh
        self.size = size
        self.name = name
        self.pos = 0
        self._buf = b""
        self._buf_start = 0

    def remaining(self) -> int:
        return self.size - self.pos

    def _need(self, n: int, what: str) -> None:
        if n < 0 or n > self.remaining():
            raise InvalidModelFile(
                f"{self.name} is truncated or corrupt: {what} needs {n} bytes at offset "
                f"{self.pos}, but the file ends at {self.size}"
            )

    def read(self, n: int, what: str) -> bytes:
        self._need(n, what)
        start = self.pos - self._buf_start
        if start < 0 or start + n > len(self._buf):
            self.fh.seek(self.pos)
            self._buf = self.fh.read(max(n, _CHUNK))
            self._buf_start = self.pos
            start = 0
            if len(self._buf) < n:
                raise InvalidModelFile(
                    f"{self.name} could not be read: it ended early at offset {self.pos + len(self._buf)}"
                    " (was it changed while Fireside read it?)"
                )
        self.pos += n
        return self._buf[start : start + n]

    def skip(self, n: int, what: str) -> None:
        self._need(n, what)
        self.pos += n

    def skip_strings(self, count: int, what: str) -> None:
        """Walk ``count`` length-prefixed strings without keeping them (vocabularies)."""
        unpack_from = _U64.unpack_from
        for _ in range(count):
            start = self.pos - self._buf_start
            if start >= 0 and start + 8 <= len(self._buf):
                length = unpack_from(self._buf, start)[0]
                if length <= MAX_STRING_LENGTH and length + 8 <= self.remaining():
                    self.pos += 8 + length
                    continue
            self.string(what, keep=False)

    def u32(self, what: str) -> int:
        return _U32.unpack(self.read(4, what))[0]

    def u64(self, what: str) -> int:
        return _U64.unpack(self.read(8, what))[0]

    def string(self, what: str, limit: int = MAX_STRING_LENGTH, keep: bool = True) -> str | None:
        length = self.u64(f"the length of {what}")
        if length > limit:
            raise _corrupt(self.name, f"{what} claims to be {length} bytes long")
        if not keep:
            self.skip(length, what)
            return None
        return self.read(length, what).decode("utf-8", errors="replace")


class _Budget:
    def __init__(self, name: str) -> None:
        self.name = name
        self.kept = 0

    def take(self, n: int) -> None:
        self.kept += n
        if self.kept > MAX_KEPT_BYTES:
            raise InvalidModelFile(
                f"{self.name} has more metadata than Fireside accepts "
                f"(over {human_size(MAX_KEPT_BYTES)}); it is probably corrupt"
            )


def _read_value(r: _Reader, vtype: int, key: str, budget: _Budget) -> Any:
    if vtype in _SCALARS:
        s = _SCALARS[vtype]
        return s.unpack(r.read(s.size, f"the value of {key!r}"))[0]
    if vtype == STRING:
        value = r.string(f"the value of {key!r}")
        budget.take(len(value or ""))
        return value
    raise _corrupt(r.name, f"{key!r} has unknown value type {vtype}")


def _read_array(r: _Reader, key: str, budget: _Budget) -> tuple[Any, int]:
    """An array value and its item type; long arrays are checked and summarised, not kept."""
    item_type = r.u32(f"the item type of {key!r}")
    count = r.u64(f"the length of {key!r}")
    if item_type == ARRAY:
        raise _corrupt(r.name, f"{key!r} holds nested arrays, which Fireside does not accept")
    if item_type in _SCALARS:
        item_size = _SCALARS[item_type].size
    elif item_type == STRING:
        item_size = 8  # at least a length per string
    else:
        raise _corrupt(r.name, f"{key!r} has items of unknown type {item_type}")
    if count > MAX_ARRAY_ITEMS or count > r.remaining() // item_size:
        raise InvalidModelFile(
            f"{r.name} is truncated or corrupt: {key!r} claims {count} items, "
            "more than the file can hold"
        )
    if item_type in _SCALARS:
        if count > KEEP_ARRAY_ITEMS:
            r.skip(count * item_size, f"the items of {key!r}")
            return ArraySummary(item_type, count), item_type
        s = _SCALARS[item_type]
        raw = r.read(count * item_size, f"the items of {key!r}")
        return [s.unpack_from(raw, i * item_size)[0] for i in range(count)], item_type
    if count > KEEP_ARRAY_ITEMS:
        r.skip_strings(count, f"an item of {key!r}")
        return ArraySummary(item_type, count), item_type
    items = [r.string(f"an item of {key!r}") for _ in range(count)]
    budget.take(sum(len(s or "") for s in items))
    return items, item_type


def _check_known_keys(name: str, metadata: dict[str, Any], types: dict[str, int]) -> None:
    """Keys that native code reads with a fixed type must have that type."""
    for key, vtype in types.items():
        if key.endswith("[]"):
            continue
        allowed = _SCALAR_KEYS.get(key)
        if allowed is not None and vtype not in allowed:
            raise _corrupt(
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
                raise _corrupt(
                    name,
                    f"{key!r} is stored as {got}, but must be an array of "
                    + " or ".join(sorted(TYPE_NAMES[t] for t in items_allowed)),
                )
        if key.endswith(_ARCH_INT_SUFFIXES):
            ok = vtype in INTEGER_TYPES or (
                vtype == ARRAY and types.get(key + "[]") in INTEGER_TYPES
            )
            if not ok:
                raise _corrupt(
                    name, f"{key!r} is stored as {TYPE_NAMES[vtype]}, not as a whole number"
                )
    tokens = metadata.get("tokenizer.ggml.tokens")
    n_tokens = _array_len(tokens)
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        n = _array_len(metadata.get(key))
        if n is not None and n_tokens is not None and n < n_tokens:
            raise _corrupt(name, f"{key!r} has {n} entries for {n_tokens} tokens")


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


def _open(path: Path) -> tuple[BinaryIO, int]:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise InvalidModelFile(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InvalidModelFile(f"{path} is a folder, not a GGUF file") from None
    except PermissionError:
        raise InvalidModelFile(f"Fireside is not allowed to read {path}") from None
    except OSError as exc:
        raise InvalidModelFile(f"{path} could not be opened: {exc.strerror or exc}") from None
    try:
        size = os.fstat(fh.fileno()).st_size
    except OSError as exc:  # pragma: no cover - fstat on an open file
        fh.close()
        raise InvalidModelFile(f"{path} could not be read: {exc.strerror or exc}") from None
    return fh, size


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
    fh, size = _open(path)
    with fh:
        try:
            return _parse(fh, size, path)
        except OSError as exc:
            raise InvalidModelFile(f"{path} could not be read: {exc.strerror or exc}") from None


def _parse(fh: BinaryIO, size: int, path: Path) -> GGUFInfo:
    name = path.name
    r = _Reader(fh, size, f"the GGUF file {name}")
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

    budget = _Budget(r.name)
    metadata: dict[str, Any] = {}
    types: dict[str, int] = {}
    for _ in range(n_kv):
        key = r.string("a metadata key", limit=MAX_KEY_LENGTH)
        assert key is not None
        if not key:
            raise _corrupt(r.name, "a metadata key is empty")
        if key in metadata:
            raise _corrupt(r.name, f"the metadata key {key!r} appears twice")
        budget.take(len(key))
        vtype = r.u32(f"the type of {key!r}")
        if vtype == ARRAY:
            metadata[key], types[key + "[]"] = _read_array(r, key, budget)
        else:
            metadata[key] = _read_value(r, vtype, key, budget)
        types[key] = vtype
    _check_known_keys(r.name, metadata, types)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if alignment <= 0 or alignment & (alignment - 1) or alignment > MAX_ALIGNMENT:
        raise _corrupt(r.name, f"alignment {alignment} is not a power of two up to {MAX_ALIGNMENT}")

    raw_tensors = []
    names: set[str] = set()
    for _ in range(n_tensors):
        tname = r.string("a tensor name", limit=MAX_KEY_LENGTH)
        assert tname is not None
        if not tname or len(tname.encode()) > MAX_TENSOR_NAME:
            raise _corrupt(r.name, f"a tensor name is empty or too long ({len(tname)} characters)")
        if tname in names:
            raise _corrupt(r.name, f"the tensor name {tname!r} appears twice")
        names.add(tname)
        n_dims = r.u32(f"the dimension count of {tname!r}")
        if n_dims > MAX_DIMS:
            raise _corrupt(r.name, f"tensor {tname!r} has {n_dims} dimensions (at most {MAX_DIMS})")
        shape = tuple(r.u64(f"a dimension of {tname!r}") for _ in range(n_dims))
        ggml_type = r.u32(f"the type of {tname!r}")
        offset = r.u64(f"the offset of {tname!r}")
        raw_tensors.append((tname, shape, ggml_type, offset))

    data_offset = (r.pos + alignment - 1) // alignment * alignment
    tensors = []
    expected = 0  # where the next tensor's data must start, relative to data_offset
    for tname, shape, ggml_type, offset in raw_tensors:
        if any(d > INT64_MAX for d in shape):
            raise _corrupt(r.name, f"tensor {tname!r} has an impossible shape {shape}")
        n_elements = math.prod(shape)
        if n_elements > INT64_MAX:
            raise _corrupt(
                r.name, f"tensor {tname!r} has a shape {shape} whose element count overflows"
            )
        block, type_size = _ggml_sizes(ggml_type, tname, r.name)
        if shape and shape[0] % block:
            raise _corrupt(
                r.name,
                f"tensor {tname!r} has rows of {shape[0]} values, which do not divide into "
                f"blocks of {block}",
            )
        n_bytes = n_elements // block * type_size
        if offset % alignment:
            raise _corrupt(r.name, f"tensor {tname!r} is not aligned to {alignment} bytes")
        if offset != expected:
            where = ", past the end of the file" if data_offset + offset > size else ""
            raise _corrupt(
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
