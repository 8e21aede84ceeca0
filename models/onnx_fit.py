"""The memory-fit estimate's view of an ONNX Runtime GenAI folder (models.fit asks here).

Measured with SmolLM2-135M int8 (onnxruntime-genai 0.18, CPU) through Fireside's backend:

- **KV cache**: the folder's config shares the past/present buffers, so the generator
  allocates keys and values for its whole ``max_length`` (Fireside sets it to the context)
  up front: ``layers x KV heads x head size x 2 x context`` values, in the graph's own
  input type (float32 for the builder's CPU models): 94.4 MB at 2,048 tokens, 377.5 MB at
  8,192, to the megabyte;
- **weights**: the graph and its ``.onnx.data``, memory-mapped. A token-embedding table
  that is only looked up (the output layer has its own weights: the builder's int8/int4
  keep the table float32) is read a row per token, so it is counted at worst, not typically;
- **runtime**: the ONNX Runtime session, its arena and tokenizer, about 105 MB;
- **worst**: Fireside's backend reads a prompt 256 tokens per pass, each pass adding its
  logits (``256 x vocabulary`` floats), its attention scores against the context (``heads x
  256 x context``) and activations; plus the whole looked-up embedding table. (Read at once,
  as onnxruntime-genai does when given a whole prompt, 1,500 tokens added 376 MB.)
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

from .errors import InvalidModelFile, UnsupportedModel
from .onnx_folder import _Damaged, _fields, read_onnx_folder

MB = 1_000_000
RUNTIME_BASE = 105 * MB
PROMPT_CHUNK = 256  # prompt tokens per pass in runtime.onnx_backend (the same number)
# ONNX TensorProto.DataType -> bytes per value (FLOAT, FLOAT16, BFLOAT16)
_ELEM_BYTES = {1: 4, 10: 2, 16: 2}
KV_NAMES = {4: "f32", 2: "f16"}


def _input_types(graph_file: Path) -> dict[str, int]:
    """Each graph input's element type (ModelProto.graph.input[].type.tensor_type.elem_type)."""
    found: dict[str, int] = {}
    try:
        with (
            open(graph_file, "rb") as fh,
            mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf,
        ):
            for number, wire, value in _fields(buf, 0, len(buf)):
                if number != 7 or wire != 2:
                    continue
                for n2, w2, v2 in _fields(buf, *value):
                    if n2 != 11 or w2 != 2:  # GraphProto.input: ValueInfoProto
                        continue
                    name, elem = "", None
                    for n3, w3, v3 in _fields(buf, *v2):
                        if n3 == 1 and w3 == 2:
                            name = bytes(buf[v3[0] : v3[1]]).decode("utf-8", "replace")
                        elif n3 == 2 and w3 == 2:  # TypeProto -> tensor_type -> elem_type
                            for n4, w4, v4 in _fields(buf, *v3):
                                if n4 == 1 and w4 == 2:
                                    for n5, w5, v5 in _fields(buf, *v4):
                                        if n5 == 1 and w5 == 0:
                                            elem = v5
                    if elem is not None:
                        found[name] = elem
    except (_Damaged, OSError, ValueError):
        raise InvalidModelFile(f"{graph_file.name} is damaged; its inputs cannot be read") from None
    return found


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def onnx_shape(path: Path) -> tuple[Any, int, int | None, str, int]:
    """(fit.Architecture, resident weight bytes, context length, KV type, bytes counted
    only at worst: a looked-up embedding table)."""
    from .fit import Architecture

    folder = read_onnx_folder(path)
    model = folder.model
    decoder = model.get("decoder")
    dec: dict[str, Any] = decoder if isinstance(decoder, dict) else {}
    n_layers, n_embd = _int(dec.get("num_hidden_layers")), _int(dec.get("hidden_size"))
    n_head = _int(dec.get("num_attention_heads"))
    if not n_layers or not n_embd or not n_head:
        raise UnsupportedModel(
            "genai_config.json lacks num_hidden_layers, hidden_size or num_attention_heads"
        )
    n_kv = _int(dec.get("num_key_value_heads")) or n_head
    head = _int(dec.get("head_size")) or n_embd // n_head
    inits = {i.name: i for i in folder.initializers}
    n_vocab = _int(model.get("vocab_size")) or 32000
    gate = next((i for n, i in inits.items() if ".mlp." in n and "gate" in n and i.dims), None)
    n_ff = gate.dims[0] if gate is not None else 4 * n_embd
    key_name = str((dec.get("inputs") or {}).get("past_key_names") or "past_key_values.%d.key")
    elem = _input_types(folder.graph_file).get(key_name.replace("%d", "0"), 1)
    kv_type = KV_NAMES.get(_ELEM_BYTES.get(elem, 4), "f32")
    table = inits.get("model.embed_tokens.weight")
    has_head = any(n.startswith("lm_head") for n in inits)
    lookup = table.length if table is not None and has_head and table.location else 0
    arch = Architecture(n_layers, n_embd, n_head, (n_kv,) * n_layers, head, head, n_vocab, n_ff)
    return arch, folder.weight_bytes - lookup, folder.context_length, kv_type, lookup


def onnx_overheads(a: Any, n_ctx: int, lookup: int) -> tuple[int, int]:
    """(typical overhead, extra at worst): the runtime and one step; one pass of a long
    prompt against a full context, and the whole looked-up embedding table."""
    step = 4 * (3 * a.n_ff + 12 * a.n_embd + a.n_vocab)
    chunk = min(PROMPT_CHUNK, n_ctx)
    prompt = chunk * 4 * (a.n_vocab + 3 * a.n_ff + 12 * a.n_embd) + a.n_head * chunk * n_ctx * 4
    return RUNTIME_BASE + step, prompt + lookup
