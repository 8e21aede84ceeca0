"""A reader for Hugging Face model folders: config, weights, tokenizer. No torch, no Qt.

It answers, cheaply and before any heavy work, "what is in this folder and can it be used":
the config (and the architecture it names), the weight files (one or sharded ``*.safetensors``
with their index, or PyTorch ``.bin``/``.pt`` pickles), the tokenizer files. Safetensors
headers are parsed and checked against the file (length, JSON, data types, offsets inside the
file), reading only the header, so a corrupt or hostile file gives a plain
:class:`InvalidModelFile` and never an allocation the file merely asks for.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import InvalidModelFile, UnsupportedModel

CONFIG_FILE = "config.json"
SAFETENSORS_SINGLE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_SINGLE = "pytorch_model.bin"
PYTORCH_INDEX = "pytorch_model.bin.index.json"
PYTORCH_SUFFIXES = (".bin", ".pt", ".pth")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the safetensors library itself applies
MAX_DIMS = 8

# Safetensors data types and their item sizes in bytes.
SAFETENSORS_DTYPES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_U64 = struct.Struct("<Q")

WeightFormat = Literal["safetensors", "pytorch"]


@dataclass(frozen=True)
class SafetensorsTensor:
    """Where one tensor's bytes lie: ``file`` from byte ``start`` (absolute), ``n_bytes`` long."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path
    start: int
    n_bytes: int

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    file_size: int
    data_start: int
    metadata: dict[str, str]
    tensors: dict[str, SafetensorsTensor] = field(repr=False)


@dataclass(frozen=True)
class HFCheckpoint:
    """A validated Hugging Face model folder (nothing loaded but headers and small JSON files)."""

    path: Path
    config: dict[str, Any] = field(repr=False)
    weight_format: WeightFormat
    weight_files: tuple[Path, ...]
    # Safetensors only: every tensor by name (PyTorch pickles are not opened here).
    tensors: dict[str, SafetensorsTensor] = field(repr=False, default_factory=dict)
    tokenizer_files: tuple[str, ...] = ()

    @property
    def architectures(self) -> tuple[str, ...]:
        value = self.config.get("architectures")
        if isinstance(value, list):
            return tuple(a for a in value if isinstance(a, str))
        return ()

    @property
    def architecture(self) -> str | None:
        """The first architecture class named by the config (``LlamaForCausalLM`` ...)."""
        return self.architectures[0] if self.architectures else None

    @property
    def model_type(self) -> str | None:
        value = self.config.get("model_type")
        return value if isinstance(value, str) else None

    @property
    def weight_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.weight_files)

    @property
    def parameter_count(self) -> int | None:
        return sum(t.n_elements for t in self.tensors.values()) if self.tensors else None

    @property
    def has_tokenizer(self) -> bool:
        names = set(self.tokenizer_files)
        return (
            bool({"tokenizer.json", "tokenizer.model"} & names)
            or {
                "vocab.json",
                "merges.txt",
            }
            <= names
        )

    @property
    def format(self) -> str:
        """The library's format label: ``hf-safetensors`` or ``hf-pytorch``."""
        return "hf-safetensors" if self.weight_format == "safetensors" else "hf-pytorch"


def _read_json(path: Path, limit: int, what: str) -> Any:
    try:
        size = path.stat().st_size
        if size > limit:
            raise InvalidModelFile(f"{path.name} is too large for {what} ({size} bytes)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidModelFile(f"{path} does not exist") from None
    except PermissionError:
        raise InvalidModelFile(f"Fireside is not allowed to read {path}") from None
    except IsADirectoryError:
        raise InvalidModelFile(f"{path} is a folder, not {what}") from None
    except OSError as exc:
        raise InvalidModelFile(f"{path} could not be read: {exc.strerror or exc}") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidModelFile(
            f"{path.name} is not valid JSON ({exc}); the folder looks damaged"
        ) from None


def read_safetensors_header(path: str | os.PathLike[str]) -> SafetensorsHeader:
    """Parse and check one ``.safetensors`` file's header; the tensor data is not read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        fh = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except FileNotFoundError:
        raise InvalidModelFile(f"{path} does not exist") from None
    except PermissionError:
        raise InvalidModelFile(f"Fireside is not allowed to read {path}") from None
    except OSError as exc:
        raise InvalidModelFile(f"{path} could not be opened: {exc.strerror or exc}") from None
    name = path.name
    with fh:
        if size < 8:
            raise InvalidModelFile(f"{name} is not a safetensors file (only {size} bytes)")
        (header_len,) = _U64.unpack(fh.read(8))
        if header_len > MAX_HEADER_BYTES or header_len > size - 8:
            raise InvalidModelFile(
                f"{name} is truncated or corrupt: its header claims {header_len} bytes, "
                f"but the file has {size} bytes"
            )
        raw = fh.read(header_len)
    if len(raw) != header_len:
        raise InvalidModelFile(f"{name} could not be read completely")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InvalidModelFile(f"{name} is corrupt: its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise InvalidModelFile(f"{name} is corrupt: its header is not a JSON object")

    data_start = 8 + header_len
    data_size = size - data_start
    metadata: dict[str, str] = {}
    tensors: dict[str, SafetensorsTensor] = {}
    spans: list[tuple[int, int, str]] = []
    for key, entry in header.items():
        if key == "__metadata__":
            if isinstance(entry, dict):
                metadata = {str(k): str(v) for k, v in entry.items()}
            continue
        if not isinstance(entry, dict):
            raise InvalidModelFile(f"{name} is corrupt: the entry for {key!r} is not an object")
        dtype = entry.get("dtype")
        shape = entry.get("shape")
        offsets = entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
            raise InvalidModelFile(
                f"{name}: tensor {key!r} has data type {dtype!r}, which Fireside does not know"
            )
        if (
            not isinstance(shape, list)
            or len(shape) > MAX_DIMS
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape)
        ):
            raise InvalidModelFile(f"{name} is corrupt: tensor {key!r} has a bad shape {shape!r}")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or any(isinstance(o, bool) or not isinstance(o, int) or o < 0 for o in offsets)
        ):
            raise InvalidModelFile(f"{name} is corrupt: tensor {key!r} has bad data offsets")
        begin, end = offsets
        expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype]
        if end < begin or end - begin != expected:
            raise InvalidModelFile(
                f"{name} is corrupt: tensor {key!r} of shape {shape} needs {expected} bytes, "
                f"its offsets give {end - begin}"
            )
        if end > data_size:
            raise InvalidModelFile(
                f"{name} is truncated: tensor {key!r} ends at byte {data_start + end}, "
                f"but the file has {size} bytes"
            )
        tensors[key] = SafetensorsTensor(
            key, dtype, tuple(shape), path, data_start + begin, expected
        )
        if expected:
            spans.append((begin, end, key))
    spans.sort()
    for (_, prev_end, prev), (begin, _, cur) in zip(spans, spans[1:], strict=False):
        if begin < prev_end:
            raise InvalidModelFile(f"{name} is corrupt: tensors {prev!r} and {cur!r} overlap")
    return SafetensorsHeader(path, size, data_start, metadata, tensors)


def _inside(folder: Path, name: Any, index_name: str) -> Path:
    """A shard named by an index: a plain file name inside ``folder``, nothing else."""
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise InvalidModelFile(
            f"{index_name} names a weight file {name!r} outside the model folder"
        )
    return folder / name


def _weight_map(folder: Path, index_name: str) -> dict[str, Path]:
    index = _read_json(folder / index_name, MAX_INDEX_BYTES, "a weight index")
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(wmap, dict) or not wmap:
        raise InvalidModelFile(f"{index_name} has no weight_map; the folder looks damaged")
    return {str(k): _inside(folder, v, index_name) for k, v in wmap.items()}


def _safetensors_weights(folder: Path) -> tuple[tuple[Path, ...], dict[str, SafetensorsTensor]]:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        wmap = _weight_map(folder, SAFETENSORS_INDEX)
        files = tuple(sorted(set(wmap.values())))
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InvalidModelFile(
                f"weight file(s) missing from {folder}: {', '.join(missing)} "
                f"(named by {SAFETENSORS_INDEX}); the download may be incomplete"
            )
    elif (folder / SAFETENSORS_SINGLE).is_file():
        wmap = None
        files = (folder / SAFETENSORS_SINGLE,)
    else:
        wmap = None
        files = tuple(sorted(folder.glob("*.safetensors")))
    tensors: dict[str, SafetensorsTensor] = {}
    for f in files:
        for key, t in read_safetensors_header(f).tensors.items():
            if wmap is not None and wmap.get(key) != f:
                continue  # the index decides which shard owns a name
            if key in tensors:
                raise InvalidModelFile(
                    f"tensor {key!r} appears in both {tensors[key].file.name} and {f.name}"
                )
            tensors[key] = t
    if wmap is not None:
        absent = [k for k in wmap if k not in tensors]
        if absent:
            raise InvalidModelFile(
                f"{len(absent)} tensor(s) listed in {SAFETENSORS_INDEX} are not in their shard "
                f"(first: {absent[0]!r} in {wmap[absent[0]].name}); the folder looks damaged"
            )
    return files, tensors


def _pytorch_weights(folder: Path) -> tuple[Path, ...]:
    if (folder / PYTORCH_INDEX).is_file():
        files = tuple(sorted(set(_weight_map(folder, PYTORCH_INDEX).values())))
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InvalidModelFile(
                f"weight file(s) missing from {folder}: {', '.join(missing)} "
                f"(named by {PYTORCH_INDEX}); the download may be incomplete"
            )
        return files
    if (folder / PYTORCH_SINGLE).is_file():
        return (folder / PYTORCH_SINGLE,)
    return tuple(
        sorted(
            p
            for p in folder.iterdir()
            if p.is_file()
            and p.suffix.lower() in PYTORCH_SUFFIXES
            and not p.name.startswith("training_args")
        )
    )


def is_hf_folder(path: str | os.PathLike[str]) -> bool:
    """Cheap test: a folder with a config.json (whether it is usable is for read_hf_folder)."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG_FILE).is_file()


def read_hf_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's config.json as a dict, with plain errors when it is missing or unreadable."""
    folder = Path(path)
    config_path = folder / CONFIG_FILE
    if not folder.is_dir():
        raise InvalidModelFile(f"{folder} is not a folder")
    if not config_path.is_file():
        raise InvalidModelFile(
            f"{folder} has no config.json, so it is not a Hugging Face model folder"
        )
    config = _read_json(config_path, MAX_CONFIG_BYTES, "a model config")
    if not isinstance(config, dict):
        raise InvalidModelFile(f"{config_path} is not a JSON object; the folder looks damaged")
    return config


def read_hf_folder(path: str | os.PathLike[str]) -> HFCheckpoint:
    """Validate a Hugging Face model folder and say what is in it (headers only, no weights)."""
    folder = Path(path).expanduser()
    config = read_hf_config(folder)
    st_files, tensors = _safetensors_weights(folder)
    if st_files:
        fmt: WeightFormat = "safetensors"
        files = st_files
        if not tensors:
            raise InvalidModelFile(f"the safetensors files in {folder} hold no tensors")
    else:
        files = _pytorch_weights(folder)
        fmt = "pytorch"
        if not files:
            raise InvalidModelFile(
                f"{folder} has a config.json but no weights (*.safetensors, pytorch_model.bin, "
                f"*.pt); the download may be incomplete"
            )
    tokenizer = tuple(n for n in TOKENIZER_FILES if (folder / n).is_file())
    return HFCheckpoint(folder, config, fmt, files, tensors, tokenizer)


def require_architecture(ckpt: HFCheckpoint, supported: Mapping[str, Any] | tuple[str, ...]) -> str:
    """The first of the checkpoint's architectures found in ``supported``, or UnsupportedModel."""
    names = ckpt.architectures
    for name in names:
        if name in supported:
            return name
    listed = ", ".join(sorted(supported))
    what = ", ".join(names) if names else "no architecture (config.json lacks 'architectures')"
    raise UnsupportedModel(f"{ckpt.path.name} is {what}; Fireside can convert: {listed}")
