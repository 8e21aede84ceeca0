"""ONNX Runtime GenAI model folders: what one is and whether it is whole.

A folder made by onnxruntime-genai's model builder holds ``genai_config.json`` (the model's
shape, its ``.onnx`` graph file, the search defaults), the graph (``model.onnx``), its
weights beside it (``model.onnx.data``, ONNX "external data"), and the tokenizer with the
chat template (``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``).

ONNX Runtime checks none of it well: a truncated weights file or a missing tokenizer gives a
generic error, and random bytes inside the weights load silently and produce garbage. So
this module reads the graph's own record of where each weight lives (a small protobuf walk,
no ``onnx`` package needed) and checks that the weights file holds every byte the graph asks
for, and the library records SHA-256 hashes of the files (models.file_hashes) so a load can
verify them first.
"""

from __future__ import annotations

import json
import mmap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile
from .records import ModelRecord, slugify

GENAI_CONFIG = "genai_config.json"
ONNX_FORMAT = "onnx"
MAX_CONFIG_BYTES = 4 * 1024 * 1024
_TEMPLATE_BYTES = 1024 * 1024


def is_onnx_folder(path: Path) -> bool:
    """Whether ``path`` is a folder with a ``genai_config.json`` (an ONNX GenAI model)."""
    try:
        return path.is_dir() and (path / GENAI_CONFIG).is_file()
    except OSError:
        return False


# -- the protobuf walk ------------------------------------------------------------------------
class _Damaged(Exception):
    pass


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Damaged
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: Any, pos: int, end: int):
    """(field number, wire type, value) of one message; LEN values are (start, stop) spans."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
        elif wire == 2:
            n, pos = _varint(buf, pos, end)
            if pos + n > end:
                raise _Damaged
            value, pos = (pos, pos + n), pos + n  # type: ignore[assignment]
        elif wire == 1:
            value, pos = None, pos + 8
        elif wire == 5:
            value, pos = None, pos + 4
        else:
            raise _Damaged
        if pos > end:
            raise _Damaged
        yield number, wire, value


@dataclass(frozen=True)
class Initializer:
    name: str
    dims: tuple[int, ...]
    location: str | None  # the external data file, None when stored inside the graph
    offset: int = 0
    length: int = 0


def _tensor(buf: Any, start: int, stop: int) -> Initializer:
    # TensorProto: dims=1, name=8, external_data=13 (key=1, value=2), data_location=14
    dims: list[int] = []
    name, external, is_external = "", {}, False
    for number, wire, value in _fields(buf, start, stop):
        if number == 1 and wire == 0:
            dims.append(value)
        elif number == 1 and wire == 2:  # packed dims
            p, q = value
            while p < q:
                d, p = _varint(buf, p, q)
                dims.append(d)
        elif number == 8 and wire == 2:
            name = bytes(buf[value[0] : value[1]]).decode("utf-8", "replace")
        elif number == 13 and wire == 2:
            entry = {}
            for n2, w2, v2 in _fields(buf, *value):
                if w2 == 2 and n2 in (1, 2):
                    entry[n2] = bytes(buf[v2[0] : v2[1]]).decode("utf-8", "replace")
            if 1 in entry:
                external[entry[1]] = entry.get(2, "")
        elif number == 14 and wire == 0:
            is_external = value == 1
    if not is_external:
        return Initializer(name, tuple(dims), None)
    try:
        offset = int(external.get("offset") or 0)
        length = int(external.get("length") or -1)
    except ValueError:
        raise _Damaged from None
    return Initializer(name, tuple(dims), external.get("location") or "", offset, length)


def read_initializers(graph_file: Path) -> list[Initializer]:
    """The weights a ``.onnx`` file names, and where each lives (raises InvalidModelFile)."""
    try:
        with open(graph_file, "rb") as fh:
            if graph_file.stat().st_size == 0:
                raise _Damaged
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                found = []
                for number, wire, value in _fields(buf, 0, len(buf)):
                    if number == 7 and wire == 2:  # ModelProto.graph
                        for n2, w2, v2 in _fields(buf, *value):
                            if n2 == 5 and w2 == 2:  # GraphProto.initializer
                                found.append(_tensor(buf, *v2))
                return found
    except _Damaged:
        raise InvalidModelFile(
            f"{graph_file.name} is damaged (truncated, or not an ONNX model); convert or "
            "download the model again"
        ) from None
    except OSError as exc:
        raise InvalidModelFile(f"{graph_file.name} cannot be read: {exc.strerror or exc}") from None


# -- the folder -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OnnxFolder:
    path: Path
    config: dict[str, Any]
    graph_file: Path
    data_files: tuple[Path, ...]
    initializers: tuple[Initializer, ...] = field(repr=False)
    chat_template: str | None

    @property
    def model(self) -> dict[str, Any]:
        return self.config.get("model") or {}

    @property
    def model_type(self) -> str | None:
        value = self.model.get("type")
        return value if isinstance(value, str) else None

    @property
    def context_length(self) -> int | None:
        value = self.model.get("context_length")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def weight_bytes(self) -> int:
        return sum(f.stat().st_size for f in (self.graph_file, *self.data_files))

    @property
    def quantization(self) -> str:
        names = [i.name for i in self.initializers]
        if any(n.endswith("_Q4") for n in names):
            return "ONNX int4"
        if any(n.endswith("_Q8") for n in names):
            return "ONNX int8"
        return "ONNX float"

    @property
    def parameter_count(self) -> int | None:
        total = 0
        for init in self.initializers:
            if init.name.endswith(("_scales", "_zero_points")) or init.name in (
                "cos_cache",
                "sin_cache",
            ):
                continue
            n = 1
            for d in init.dims:
                n *= d
            total += n * 2 if init.name.endswith("_Q4") else n  # two 4-bit weights a byte
        return total or None

    def files(self) -> list[Path]:
        """Every file of the model (what a hash or a copy covers)."""
        return sorted(f for f in self.path.iterdir() if f.is_file() and not f.name.startswith("."))


def _read_config(folder: Path) -> dict[str, Any]:
    f = folder / GENAI_CONFIG
    try:
        if f.stat().st_size > MAX_CONFIG_BYTES:
            raise InvalidModelFile(f"{folder.name}: {GENAI_CONFIG} is too large to be a config")
        data = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidModelFile(
            f"{folder.name}: {GENAI_CONFIG} cannot be read as JSON; the folder is damaged"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise InvalidModelFile(f"{folder.name}: {GENAI_CONFIG} does not describe a model")
    return data


def _template(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    try:
        if jinja.is_file() and jinja.stat().st_size <= _TEMPLATE_BYTES:
            text = jinja.read_text(encoding="utf-8", errors="replace")
            if text.strip():
                return text
        cfg = folder / "tokenizer_config.json"
        if cfg.is_file():
            value = json.loads(cfg.read_text(encoding="utf-8")).get("chat_template")
            if isinstance(value, str) and value.strip():
                return value
    except (OSError, ValueError, AttributeError):
        return None
    return None


def read_onnx_folder(folder: str | Path) -> OnnxFolder:
    """Validate an ONNX GenAI folder: config, graph, every weight byte, tokenizer."""
    folder = Path(folder).expanduser()
    config = _read_config(folder)
    decoder = config["model"].get("decoder")
    name = decoder.get("filename") if isinstance(decoder, dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name:
        raise InvalidModelFile(f"{folder.name}: {GENAI_CONFIG} names no model file (.onnx)")
    graph = folder / name
    if not graph.is_file():
        raise InvalidModelFile(f"{folder.name} is incomplete: its model file {name} is missing")
    if not (folder / "tokenizer.json").is_file():
        raise InvalidModelFile(
            f"{folder.name} has no tokenizer (tokenizer.json); copy the tokenizer files into "
            "the folder or convert the model again"
        )
    inits = read_initializers(graph)
    needed: dict[str, int] = {}
    for init in inits:
        if init.location is None:
            continue
        if not init.location or Path(init.location).name != init.location or init.length < 0:
            raise InvalidModelFile(f"{graph.name} points at its weights in a way Fireside refuses")
        end = init.offset + init.length
        needed[init.location] = max(needed.get(init.location, 0), end)
    data_files = []
    for loc, end in sorted(needed.items()):
        f = folder / loc
        try:
            size = f.stat().st_size
        except OSError:
            raise InvalidModelFile(
                f"{folder.name} is incomplete: the weights file {loc} is missing"
            ) from None
        if size < end:
            raise InvalidModelFile(
                f"{loc} is truncated: it holds {size:,} bytes but the model needs {end:,}; "
                "the copy or download stopped early, so convert or copy it again"
            )
        data_files.append(f)
    return OnnxFolder(folder, config, graph, tuple(data_files), tuple(inits), _template(folder))


def describe_onnx_folder(folder: Path, source: str, origin: str) -> ModelRecord:
    """The library record of an ONNX GenAI folder (validated; not registered)."""
    onnx = read_onnx_folder(folder)
    params = onnx.parameter_count
    weight_bytes = onnx.weight_bytes
    return ModelRecord(
        id=slugify(folder.name),
        name=folder.name,
        format=ONNX_FORMAT,
        path=origin,
        source=source,
        architecture=onnx.model_type,
        parameters=params,
        quantization=onnx.quantization,
        bits_per_weight=round(8 * weight_bytes / params, 2) if params else None,
        size_bytes=sum(f.stat().st_size for f in onnx.files()),
        context_length=onnx.context_length,
        has_chat_template=onnx.chat_template is not None,
        provenance={"origin": origin},
        extra={"model_type": onnx.model_type, "graph": onnx.graph_file.name},
    )
