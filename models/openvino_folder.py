"""OpenVINO IR model folders: what one is, whether it is whole, and GGUF files OpenVINO reads.

An OpenVINO GenAI folder holds the model graph (``openvino_model.xml``) and its weights
(``openvino_model.bin``), the tokenizer and detokenizer as graphs of their own
(``openvino_tokenizer.xml/.bin``, ``openvino_detokenizer.xml/.bin``, the chat template kept
in the tokenizer's ``rt_info``), and usually ``config.json`` / ``generation_config.json``.

OpenVINO checks little of it: a truncated ``.bin`` or a missing tokenizer gives a generic
error, and random bytes inside the weights load silently. So this module reads where each
constant of the graph lives in the ``.bin`` (the ``offset``/``size`` of every ``Const``
layer) and checks that the file holds every byte the graph asks for; the library records
SHA-256 hashes of the files at import (models.file_hashes) so a load can verify them first.

OpenVINO GenAI also reads a GGUF file itself, but only some tensor types, and it loads some
others silently wrong: :func:`openvino_gguf_refusal` says before a load why a file would not
run (measured with openvino-genai 2026.4 against llama.cpp on SmolLM2, the same file on both,
OpenVINO's next token along llama.cpp's answer: F16 39 times in 40, Q8_0 37, Q4_0 36; Q4_1
loads but agrees 23 times; Q4_K_M and BF16 are refused by OpenVINO. The measurement is
tests/perf/test_openvino_bench.py::test_which_gguf_types_openvino_reads_faithfully).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile
from .ggml_types import TENSOR_TYPES
from .records import ModelRecord, slugify

OPENVINO_FORMAT = "openvino"
MODEL_XML = "openvino_model.xml"
TOKENIZER_FILES = ("openvino_tokenizer.xml", "openvino_tokenizer.bin")
DETOKENIZER_FILES = ("openvino_detokenizer.xml", "openvino_detokenizer.bin")
MAX_XML_BYTES = 512 * 1024 * 1024
# GGUF tensor types OpenVINO GenAI runs faithfully (F32, F16, Q4_0, Q8_0).
OPENVINO_GGUF_TYPES = frozenset({0, 1, 2, 8})
OPENVINO_GGUF_WORDS = "F16, Q8_0 or Q4_0"


def is_openvino_folder(path: Path) -> bool:
    """Whether ``path`` is a folder with an ``openvino_model.xml`` (an OpenVINO IR model)."""
    try:
        return path.is_dir() and (path / MODEL_XML).is_file()
    except OSError:
        return False


@dataclass(frozen=True)
class OpenVinoFolder:
    path: Path
    graph: Path
    weights: Path
    weight_bytes_needed: int
    weight_types: tuple[str, ...]  # element types of the graph's constants, most bytes first
    config: dict[str, Any]
    chat_template: str | None

    @property
    def model_type(self) -> str | None:
        value = self.config.get("model_type")
        return value if isinstance(value, str) else None

    @property
    def context_length(self) -> int | None:
        value = self.config.get("max_position_embeddings")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def quantization(self) -> str:
        kinds = set(self.weight_types)
        if kinds & {"u4", "i4", "nf4"}:
            return "OpenVINO int4"
        if kinds & {"u8", "i8"}:
            return "OpenVINO int8"
        return f"OpenVINO {self.weight_types[0] if self.weight_types else 'float'}"

    def files(self) -> list[Path]:
        return sorted(f for f in self.path.iterdir() if f.is_file() and not f.name.startswith("."))


def _damaged(name: str) -> InvalidModelFile:
    return InvalidModelFile(
        f"{name} is damaged (truncated, or not an OpenVINO model); convert or copy the model again"
    )


def _read_graph(graph: Path) -> tuple[int, tuple[str, ...], dict[str, str]]:
    """The bytes of the .bin the graph needs, its constants' element types, and its rt_info
    values (where the tokenizer keeps the chat template)."""
    try:
        if graph.stat().st_size > MAX_XML_BYTES:
            raise _damaged(graph.name)
        needed = 0
        sizes: dict[str, int] = {}
        info: dict[str, str] = {}
        in_rt = False
        for event, el in ET.iterparse(graph, events=("start", "end")):
            if event == "start":
                in_rt = in_rt or el.tag == "rt_info"
                continue
            if el.tag == "rt_info":
                in_rt = False
            elif in_rt and "value" in el.attrib:
                info[el.tag] = el.attrib["value"]
            elif el.tag == "data" and "offset" in el.attrib and "size" in el.attrib:
                offset, size = int(el.attrib["offset"]), int(el.attrib["size"])
                needed = max(needed, offset + size)
                kind = el.attrib.get("element_type", "?")
                sizes[kind] = sizes.get(kind, 0) + size
            if el.tag == "layer":
                el.clear()
    except (ET.ParseError, ValueError):
        raise _damaged(graph.name) from None
    except OSError as exc:
        raise InvalidModelFile(f"{graph.name} cannot be read: {exc.strerror or exc}") from None
    kinds = tuple(sorted(sizes, key=lambda k: -sizes[k]))
    return needed, kinds, info


def _check_bin(folder: Path, xml_name: str, needed: int) -> Path:
    weights = folder / (xml_name[: -len(".xml")] + ".bin")
    try:
        size = weights.stat().st_size
    except OSError:
        raise InvalidModelFile(
            f"{folder.name} is incomplete: the weights file {weights.name} is missing"
        ) from None
    if size < needed:
        raise InvalidModelFile(
            f"{weights.name} is truncated: it holds {size:,} bytes but the model needs "
            f"{needed:,}; the copy or download stopped early, so convert or copy it again"
        )
    return weights


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        raise InvalidModelFile(
            f"{path.parent.name}: {path.name} cannot be read as JSON; the folder is damaged"
        ) from None
    return data if isinstance(data, dict) else {}


def read_openvino_folder(folder: str | Path) -> OpenVinoFolder:
    """Validate an OpenVINO IR folder: graph, every weight byte, tokenizer and detokenizer."""
    folder = Path(folder).expanduser()
    missing = [n for n in (*TOKENIZER_FILES, *DETOKENIZER_FILES) if not (folder / n).is_file()]
    if missing:
        raise InvalidModelFile(
            f"{folder.name} has no tokenizer ({', '.join(missing)} missing); copy the "
            "tokenizer files into the folder or convert the model again"
        )
    graph = folder / MODEL_XML
    needed, kinds, _ = _read_graph(graph)
    weights = _check_bin(folder, MODEL_XML, needed)
    template: str | None = None
    for xml_name in (TOKENIZER_FILES[0], DETOKENIZER_FILES[0]):
        tok_needed, _, info = _read_graph(folder / xml_name)
        _check_bin(folder, xml_name, tok_needed)
        template = template or info.get("chat_template") or None
    if template is None:
        value = _json(folder / "tokenizer_config.json").get("chat_template")
        template = value if isinstance(value, str) and value.strip() else None
    config = _json(folder / "config.json")
    return OpenVinoFolder(folder, graph, weights, needed, kinds, config, template)


def describe_openvino_folder(folder: Path, source: str, origin: str) -> ModelRecord:
    """The library record of an OpenVINO IR folder (validated; not registered)."""
    ov = read_openvino_folder(folder)
    return ModelRecord(
        id=slugify(folder.name),
        name=folder.name,
        format=OPENVINO_FORMAT,
        path=origin,
        source=source,
        architecture=ov.model_type,
        parameters=None,
        quantization=ov.quantization,
        bits_per_weight=None,
        size_bytes=sum(f.stat().st_size for f in ov.files()),
        context_length=ov.context_length,
        has_chat_template=ov.chat_template is not None,
        provenance={"origin": origin},
        extra={"model_type": ov.model_type, "graph": ov.graph.name},
    )


_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)


def openvino_gguf_refusal(path: str | Path) -> str | None:
    """Why OpenVINO GenAI cannot run this GGUF file faithfully, in plain words (None: it can)."""
    from .gguf import read_gguf

    path = Path(path)
    if _SPLIT.search(path.name):
        return "OpenVINO GenAI reads a GGUF model in one file, not split into parts"
    info = read_gguf(path)
    bad = sorted(
        {TENSOR_TYPES.get(t.ggml_type, (str(t.ggml_type),))[0] for t in info.tensors}
        - {TENSOR_TYPES[t][0] for t in OPENVINO_GGUF_TYPES}
    )
    if bad:
        return (
            f"OpenVINO GenAI cannot run {path.name}: it holds {', '.join(bad)} weights, which "
            f"OpenVINO refuses or reads wrongly; it runs GGUF files in {OPENVINO_GGUF_WORDS} "
            "(convert the model with --to gguf-q8_0), or use the llama.cpp engine"
        )
    return None
