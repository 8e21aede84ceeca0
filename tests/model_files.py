"""Model files for the tests, built byte by byte: GGUF (valid or hostile), split GGUF,
safetensors, Hugging Face and MLX folders. Small enough to build in every test."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from models.gguf_values import INT32, STRING, UINT32

U32, U64 = struct.Struct("<I"), struct.Struct("<Q")
F32_TYPE = 0  # ggml type F32


def gstr(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return U64.pack(len(raw)) + raw


def kv_str(key: str, value: str) -> bytes:
    return gstr(key) + U32.pack(STRING) + gstr(value)


def kv_u32(key: str, value: int) -> bytes:
    return gstr(key) + U32.pack(UINT32) + U32.pack(value)


def tensor_info(
    name: str, shape: tuple[int, ...], ggml_type: int = F32_TYPE, offset: int = 0
) -> bytes:
    out = gstr(name) + U32.pack(len(shape))
    for d in shape:
        out += U64.pack(d)
    return out + U32.pack(ggml_type) + U64.pack(offset)


def build(
    kvs: list[bytes] | None = None,
    tensors: list[bytes] | None = None,
    data: bytes | None = None,
    *,
    magic: bytes = b"GGUF",
    version: int = 3,
    n_tensors: int | None = None,
    n_kv: int | None = None,
    alignment: int = 32,
) -> bytes:
    """A GGUF file; by default a valid one with one 32-float tensor."""
    if kvs is None:
        kvs = [kv_str("general.architecture", "llama"), kv_str("general.name", "tiny")]
    if tensors is None:
        tensors = [tensor_info("w", (32,))]
    head = magic + U32.pack(version)
    head += U64.pack(len(tensors) if n_tensors is None else n_tensors)
    head += U64.pack(len(kvs) if n_kv is None else n_kv)
    head += b"".join(kvs) + b"".join(tensors)
    pad = (-len(head)) % alignment
    if data is None:
        data = b"\0" * 128
    return head + b"\0" * pad + data


def write(tmp_path: Path, raw: bytes, name: str = "m.gguf") -> Path:
    p = tmp_path / name
    p.write_bytes(raw)
    return p


def split_part(no: int, count: int, tname: str, n_total: int) -> bytes:
    # split.no / split.count are uint16 (type 2) in llama.cpp's gguf-split
    kvs = [
        kv_str("general.architecture", "llama"),
        gstr("split.no") + U32.pack(2) + struct.pack("<H", no),
        gstr("split.count") + U32.pack(2) + struct.pack("<H", count),
        gstr("split.tensors.count") + U32.pack(INT32) + struct.pack("<i", n_total),
    ]
    return build(kvs, [tensor_info(tname, (32,))])


def make_split(folder: Path, count: int = 3, prefix: str = "tiny") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        p = folder / f"{prefix}-{i + 1:05d}-of-{count:05d}.gguf"
        p.write_bytes(split_part(i, count, f"t{i}", count))
        out.append(p)
    return out


def llama_gguf(path: Path, *, n_ctx: int = 2048, data_bytes: int = 128, name: str = "tiny") -> Path:
    """A valid GGUF with llama shape keys (enough for describe and the memory estimate)."""
    n = data_bytes // 4
    kvs = [
        kv_str("general.architecture", "llama"),
        kv_str("general.name", name),
        kv_u32("llama.context_length", n_ctx),
        kv_u32("llama.block_count", 2),
        kv_u32("llama.embedding_length", 64),
        kv_u32("llama.feed_forward_length", 128),
        kv_u32("llama.attention.head_count", 4),
        kv_u32("llama.attention.head_count_kv", 2),
        kv_str("tokenizer.chat_template", "{{ messages }}"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(build(kvs, [tensor_info("w", (n,))], b"\0" * (n * 4)))
    return path


# -- safetensors, Hugging Face and MLX folders ------------------------------------------------
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2, "U32": 4}


def safetensors_bytes(
    tensors: dict[str, tuple[str, tuple[int, ...]]], *, writer: str = "pt"
) -> bytes:
    header: dict = {"__metadata__": {"format": writer}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = DTYPE_SIZE[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * ((-len(raw)) % 8)
    return U64.pack(len(raw)) + raw + b"\0" * offset


LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 100,
    "max_position_embeddings": 4096,
    "dtype": "bfloat16",
}
TOKENIZER_CONFIG = {"chat_template": "{% for m in messages %}{{ m.content }}{% endfor %}"}


def hf_tensors(dtype: str = "BF16") -> dict[str, tuple[str, tuple[int, ...]]]:
    return {
        "model.embed_tokens.weight": (dtype, (100, 64)),
        "model.layers.0.self_attn.q_proj.weight": (dtype, (64, 64)),
        "model.norm.weight": (dtype, (64,)),
    }


def make_hf_folder(
    folder: Path, *, weights: str = "safetensors", config: dict | None = None
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or LLAMA_CONFIG))
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    (folder / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG))
    if weights == "safetensors":
        (folder / "model.safetensors").write_bytes(safetensors_bytes(hf_tensors()))
    elif weights == "pytorch":
        (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + b"\0" * 64)
    return folder


def make_mlx_folder(folder: Path, *, bits: int = 4, packed: bool = True) -> Path:
    """An MLX 4-bit folder: uint32 packed weights with bf16 scales and biases (group 32)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(LLAMA_CONFIG, quantization={"group_size": 32, "bits": bits})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE"}}))
    per = 32 // bits
    if packed:
        tensors = {
            "model.embed_tokens.weight": ("U32", (100, 64 // per)),
            "model.embed_tokens.scales": ("BF16", (100, 2)),
            "model.embed_tokens.biases": ("BF16", (100, 2)),
            "model.norm.weight": ("BF16", (64,)),
        }
    else:
        tensors = hf_tensors()
    (folder / "model.safetensors").write_bytes(safetensors_bytes(tensors))
    return folder
