"""A bounded, validating reader for GGUF headers.

Every count, length, type and offset is checked against the file before it is trusted, so a
corrupt or hostile file raises :class:`InvalidModelFile` with a plain message, never an
exception from deep inside native code, and never an allocation the file merely asks for.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import InvalidModelFile

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4
MAX_KEY_LENGTH = 65_535
MAX_STRING_LENGTH = 64 * 1024 * 1024  # a chat template or a long description, never more
KEEP_ARRAY_ITEMS = 256  # longer arrays (vocabularies, merges) are walked but summarised

# GGUF value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
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


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.0f} {unit}"
        n /= 1000
    return str(n)


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

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str | None:
        return self.metadata.get("general.architecture")

    @property
    def name(self) -> str | None:
        return self.metadata.get("general.name")

    @property
    def context_length(self) -> int | None:
        arch = self.architecture
        value = self.metadata.get(f"{arch}.context_length") if arch else None
        return int(value) if isinstance(value, int) else None

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    @property
    def split_count(self) -> int:
        value = self.metadata.get("split.count", 1)
        return int(value) if isinstance(value, int) else 1

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def file_type(self) -> str | None:
        """The quantization label (``Q4_K_M``, ``Q8_0``, ``F16`` ...) from ``general.file_type``."""
        value = self.metadata.get("general.file_type")
        if not isinstance(value, int):
            return None
        from gguf import LlamaFileType

        try:
            label = LlamaFileType(value).name
        except ValueError:
            return f"type {value}"
        return label.removeprefix("MOSTLY_").removeprefix("ALL_")

    @property
    def bits_per_weight(self) -> float | None:
        params = self.parameter_count
        return round(8 * self.tensor_bytes / params, 2) if params else None


class _Reader:
    """Reads little-endian values from a file, refusing to read past its end."""

    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh = fh
        self.size = size
        self.pos = 0

    def remaining(self) -> int:
        return self.size - self.pos

    def read(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.remaining():
            raise InvalidModelFile(
                f"this GGUF file is truncated or corrupt: {what} needs {n} bytes at offset "
                f"{self.pos}, but the file ends at {self.size}"
            )
        data = self.fh.read(n)
        if len(data) != n:
            raise InvalidModelFile(f"could not read {what} at offset {self.pos}")
        self.pos += n
        return data

    def skip(self, n: int, what: str) -> None:
        if n < 0 or n > self.remaining():
            raise InvalidModelFile(
                f"this GGUF file is truncated or corrupt: {what} needs {n} bytes at offset "
                f"{self.pos}, but the file ends at {self.size}"
            )
        self.fh.seek(n, os.SEEK_CUR)
        self.pos += n

    def u32(self, what: str) -> int:
        return _U32.unpack(self.read(4, what))[0]

    def u64(self, what: str) -> int:
        return _U64.unpack(self.read(8, what))[0]

    def string(self, what: str, limit: int = MAX_STRING_LENGTH, keep: bool = True) -> str | None:
        length = self.u64(f"the length of {what}")
        if length > limit:
            raise InvalidModelFile(f"this GGUF file is corrupt: {what} claims {length} bytes")
        if not keep:
            self.skip(length, what)
            return None
        raw = self.read(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")


def _read_value(r: _Reader, vtype: int, key: str, *, in_array: bool = False) -> Any:
    if vtype in _SCALARS:
        s = _SCALARS[vtype]
        return s.unpack(r.read(s.size, f"the value of {key!r}"))[0]
    if vtype == STRING:
        return r.string(f"the value of {key!r}")
    if vtype == ARRAY:
        if in_array:
            raise InvalidModelFile(f"this GGUF file is corrupt: {key!r} holds nested arrays")
        item_type = r.u32(f"the item type of {key!r}")
        count = r.u64(f"the length of {key!r}")
        if item_type == ARRAY:
            raise InvalidModelFile(f"this GGUF file is corrupt: {key!r} holds nested arrays")
        if item_type in _SCALARS:
            item_size = _SCALARS[item_type].size
        elif item_type == STRING:
            item_size = 8  # at least a length per string
        else:
            raise InvalidModelFile(
                f"this GGUF file is corrupt: {key!r} has items of unknown type {item_type}"
            )
        if count > r.remaining() // item_size:
            raise InvalidModelFile(
                f"this GGUF file is truncated or corrupt: {key!r} claims {count} items, "
                f"more than the file can hold"
            )
        if item_type in _SCALARS and count > KEEP_ARRAY_ITEMS:
            r.skip(count * item_size, f"the items of {key!r}")
            return ArraySummary(item_type, count)
        if item_type == STRING and count > KEEP_ARRAY_ITEMS:
            for _ in range(count):
                r.string(f"an item of {key!r}", keep=False)
            return ArraySummary(item_type, count)
        return [_read_value(r, item_type, key, in_array=True) for _ in range(count)]
    raise InvalidModelFile(f"this GGUF file is corrupt: {key!r} has unknown value type {vtype}")


def _ggml_sizes(ggml_type: int, name: str) -> tuple[int, int]:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        return GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        raise InvalidModelFile(
            f"tensor {name!r} uses data type {ggml_type}, which this version of Fireside does not know"
        ) from None


def read_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse and validate the header of one GGUF file (one part of a split model)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = open(path, "rb")
    except FileNotFoundError:
        raise InvalidModelFile(f"{path} does not exist") from None
    except IsADirectoryError:
        raise InvalidModelFile(f"{path} is a folder, not a GGUF file") from None
    except PermissionError:
        raise InvalidModelFile(f"Fireside is not allowed to read {path}") from None
    except OSError as exc:
        raise InvalidModelFile(f"{path} could not be opened: {exc.strerror or exc}") from None
    with fh:
        r = _Reader(fh, size)
        if size < 24:
            raise InvalidModelFile(f"{path.name} is not a GGUF file (only {size} bytes)")
        if r.read(4, "the magic number") != MAGIC:
            raise InvalidModelFile(f"{path.name} is not a GGUF file (wrong magic number)")
        version = r.u32("the version")
        if version not in SUPPORTED_VERSIONS:
            raise InvalidModelFile(
                f"{path.name} is GGUF version {version}; Fireside reads versions 2 and 3"
            )
        n_tensors = r.u64("the tensor count")
        n_kv = r.u64("the metadata count")
        # Each key/value needs at least 12 bytes, each tensor info at least 24.
        if n_kv > r.remaining() // 12:
            raise InvalidModelFile(
                f"this GGUF file is corrupt: it claims {n_kv} metadata entries, more than fit in it"
            )
        if n_tensors > r.remaining() // 24:
            raise InvalidModelFile(
                f"this GGUF file is corrupt: it claims {n_tensors} tensors, more than fit in it"
            )
        metadata: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string("a metadata key", limit=MAX_KEY_LENGTH)
            vtype = r.u32(f"the type of {key!r}")
            metadata[key] = _read_value(r, vtype, key)

        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if "general.alignment" in metadata and (
            isinstance(alignment, bool) or not isinstance(alignment, int)
        ):
            raise InvalidModelFile("this GGUF file is corrupt: general.alignment is not an integer")
        if alignment <= 0 or alignment & (alignment - 1) or alignment > 1 << 20:
            raise InvalidModelFile(
                f"this GGUF file is corrupt: alignment {alignment} is not a power of two"
            )

        raw_tensors = []
        for _ in range(n_tensors):
            name = r.string("a tensor name", limit=MAX_KEY_LENGTH)
            n_dims = r.u32(f"the dimension count of {name!r}")
            if n_dims == 0 or n_dims > MAX_DIMS:
                raise InvalidModelFile(
                    f"this GGUF file is corrupt: tensor {name!r} has {n_dims} dimensions"
                )
            shape = tuple(r.u64(f"a dimension of {name!r}") for _ in range(n_dims))
            ggml_type = r.u32(f"the type of {name!r}")
            offset = r.u64(f"the offset of {name!r}")
            raw_tensors.append((name, shape, ggml_type, offset))

        data_offset = (r.pos + alignment - 1) // alignment * alignment
        tensors = []
        expected_end = data_offset
        for name, shape, ggml_type, offset in raw_tensors:
            n_elements = math.prod(shape)
            if n_elements >= 1 << 62 or any(d == 0 for d in shape):
                raise InvalidModelFile(
                    f"this GGUF file is corrupt: tensor {name!r} has an impossible shape {shape}"
                )
            block, type_size = _ggml_sizes(ggml_type, name)
            if shape[0] % block:
                raise InvalidModelFile(
                    f"this GGUF file is corrupt: tensor {name!r} rows of {shape[0]} do not "
                    f"divide into blocks of {block}"
                )
            n_bytes = n_elements // block * type_size
            if offset % alignment:
                raise InvalidModelFile(
                    f"this GGUF file is corrupt: tensor {name!r} is not aligned to {alignment} bytes"
                )
            end = data_offset + offset + n_bytes
            expected_end = max(expected_end, end)
            tensors.append(TensorInfo(name, shape, ggml_type, offset, n_elements, n_bytes))
        if expected_end > size:
            raise InvalidModelFile(
                f"this GGUF file is truncated: expected {_human(expected_end)}, "
                f"found {_human(size)}"
            )
        return GGUFInfo(path, version, size, alignment, data_offset, metadata, tuple(tensors))
