"""GGUF's building blocks, bounded: the value types, the limits every count and length is held
to, and a reader that checks each one against the file before trusting it (so a corrupt or
hostile file raises :class:`InvalidModelFile` in words, never an allocation it merely asks
for). :mod:`models.gguf` reads headers with them; :mod:`models.gguf_vocab` reads vocabularies."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
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
CHUNK = 1 << 20

# GGUF value types.
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = (
    range(13)
)
TYPE_NAMES = (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool",
    "string", "array", "uint64", "int64", "float64",
)  # fmt: skip
INTEGER_TYPES = frozenset({UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64})
SCALARS: dict[int, struct.Struct] = {
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
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")


def corrupt(name: str, what: str) -> InvalidModelFile:
    return InvalidModelFile(f"{name} is corrupt: {what}")


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array that was walked and checked but not kept in memory."""

    item_type: int
    count: int


class Reader:
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
            self._buf = self.fh.read(max(n, CHUNK))
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
        unpack_from = U64.unpack_from
        for _ in range(count):
            start = self.pos - self._buf_start
            if start >= 0 and start + 8 <= len(self._buf):
                length = unpack_from(self._buf, start)[0]
                if length <= MAX_STRING_LENGTH and length + 8 <= self.remaining():
                    self.pos += 8 + length
                    continue
            self.string(what, keep=False)

    def u32(self, what: str) -> int:
        return U32.unpack(self.read(4, what))[0]

    def u64(self, what: str) -> int:
        return U64.unpack(self.read(8, what))[0]

    def string(self, what: str, limit: int = MAX_STRING_LENGTH, keep: bool = True) -> str | None:
        length = self.u64(f"the length of {what}")
        if length > limit:
            raise corrupt(self.name, f"{what} claims to be {length} bytes long")
        if not keep:
            self.skip(length, what)
            return None
        return self.read(length, what).decode("utf-8", errors="replace")


class Budget:
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


def read_value(r: Reader, vtype: int, key: str, budget: Budget) -> Any:
    if vtype in SCALARS:
        s = SCALARS[vtype]
        return s.unpack(r.read(s.size, f"the value of {key!r}"))[0]
    if vtype == STRING:
        value = r.string(f"the value of {key!r}")
        budget.take(len(value or ""))
        return value
    raise corrupt(r.name, f"{key!r} has unknown value type {vtype}")


def read_array(r: Reader, key: str, budget: Budget) -> tuple[Any, int]:
    """An array value and its item type; long arrays are checked and summarised, not kept."""
    item_type = r.u32(f"the item type of {key!r}")
    count = r.u64(f"the length of {key!r}")
    if item_type == ARRAY:
        raise corrupt(r.name, f"{key!r} holds nested arrays, which Fireside does not accept")
    if item_type in SCALARS:
        item_size = SCALARS[item_type].size
    elif item_type == STRING:
        item_size = 8  # at least a length per string
    else:
        raise corrupt(r.name, f"{key!r} has items of unknown type {item_type}")
    if count > MAX_ARRAY_ITEMS or count > r.remaining() // item_size:
        raise InvalidModelFile(
            f"{r.name} is truncated or corrupt: {key!r} claims {count} items, "
            "more than the file can hold"
        )
    if item_type in SCALARS:
        if count > KEEP_ARRAY_ITEMS:
            r.skip(count * item_size, f"the items of {key!r}")
            return ArraySummary(item_type, count), item_type
        s = SCALARS[item_type]
        raw = r.read(count * item_size, f"the items of {key!r}")
        return [s.unpack_from(raw, i * item_size)[0] for i in range(count)], item_type
    if count > KEEP_ARRAY_ITEMS:
        r.skip_strings(count, f"an item of {key!r}")
        return ArraySummary(item_type, count), item_type
    items = [r.string(f"an item of {key!r}") for _ in range(count)]
    budget.take(sum(len(s or "") for s in items))
    return items, item_type


def open_gguf(path: Path) -> tuple[BinaryIO, int]:
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
