"""models.hf: reading Hugging Face folders (config, weights, tokenizer) and safetensors headers."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import (
    FiresideError,
    InvalidModelFile,
    UnsupportedModel,
    is_hf_folder,
    read_hf_folder,
    read_safetensors_header,
    require_architecture,
)

CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8}


def write_safetensors(path: Path, header: dict | bytes, data: bytes) -> None:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def make_folder(folder: Path, tensors: dict[str, np.ndarray] | None = None, config=CONFIG) -> Path:
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    tensors = tensors or {
        "model.embed_tokens.weight": np.arange(32, dtype=np.float32).reshape(4, 8),
        "model.norm.weight": np.ones(8, dtype=np.float16),
    }
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "tokenizer.json").write_text("{}")
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


def test_single_safetensors_folder(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    ckpt = read_hf_folder(folder)
    assert is_hf_folder(folder)
    assert ckpt.architecture == "LlamaForCausalLM"
    assert ckpt.model_type == "llama"
    assert ckpt.weight_format == "safetensors" and ckpt.format == "hf-safetensors"
    assert ckpt.weight_files == (folder / "model.safetensors",)
    assert set(ckpt.tensors) == {"model.embed_tokens.weight", "model.norm.weight"}
    emb = ckpt.tensors["model.embed_tokens.weight"]
    assert emb.dtype == "F32" and emb.shape == (4, 8) and emb.n_bytes == 128
    # The recorded offset points at the real bytes.
    with open(emb.file, "rb") as fh:
        fh.seek(emb.start)
        values = np.frombuffer(fh.read(emb.n_bytes), dtype=np.float32)
    assert values.tolist() == list(range(32))
    assert ckpt.parameter_count == 40
    assert ckpt.has_tokenizer
    assert ckpt.tokenizer_files == ("tokenizer.json", "tokenizer_config.json")


def test_sharded_folder_follows_its_index(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    save_file({"a": np.zeros((2, 2), np.float32)}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({"b": np.zeros(3, np.float16)}, str(folder / "model-00002-of-00002.safetensors"))
    index = {
        "metadata": {"total_size": 22},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        },
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    ckpt = read_hf_folder(folder)
    assert len(ckpt.weight_files) == 2
    assert ckpt.tensors["b"].file.name == "model-00002-of-00002.safetensors"
    assert not ckpt.has_tokenizer

    # A shard the index names but the folder lacks: a plain error.
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InvalidModelFile, match="missing.*model-00002-of-00002"):
        read_hf_folder(folder)


def test_index_naming_a_tensor_its_shard_lacks(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    index = {
        "weight_map": {
            "model.norm.weight": "model.safetensors",
            "lm_head.weight": "model.safetensors",
        }
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(InvalidModelFile, match="not in their shard"):
        read_hf_folder(folder)


def test_index_cannot_point_outside_the_folder(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    outside = make_folder(tmp_path / "other")
    index = {"weight_map": {"model.norm.weight": "../other/model.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    assert (outside / "model.safetensors").is_file()
    with pytest.raises(InvalidModelFile, match="outside the model folder"):
        read_hf_folder(folder)


def test_missing_and_broken_config(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m", config=None)
    assert not is_hf_folder(folder)
    with pytest.raises(InvalidModelFile, match="no config.json"):
        read_hf_folder(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(InvalidModelFile, match="config.json is not valid JSON"):
        read_hf_folder(folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(InvalidModelFile, match="not a JSON object"):
        read_hf_folder(folder)
    with pytest.raises(InvalidModelFile, match="not a folder"):
        read_hf_folder(tmp_path / "nowhere")


def test_folder_without_weights(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(InvalidModelFile, match="no weights"):
        read_hf_folder(folder)


def test_pytorch_weights_are_listed_not_opened(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    ckpt = read_hf_folder(folder)
    assert ckpt.weight_format == "pytorch" and ckpt.format == "hf-pytorch"
    assert ckpt.weight_files == (folder / "pytorch_model.bin",)
    assert ckpt.tensors == {}
    (folder / "pytorch_model.bin").rename(folder / "weights.pt")
    assert read_hf_folder(folder).weight_files == (folder / "weights.pt",)


def test_require_architecture_lists_what_is_supported(tmp_path: Path) -> None:
    ckpt = read_hf_folder(make_folder(tmp_path / "m"))
    assert (
        require_architecture(ckpt, ("LlamaForCausalLM", "Qwen2ForCausalLM")) == "LlamaForCausalLM"
    )
    with pytest.raises(
        UnsupportedModel, match="LlamaForCausalLM; Fireside can convert: Gemma2ForCausalLM"
    ):
        require_architecture(ckpt, ("Gemma2ForCausalLM",))
    ckpt = read_hf_folder(make_folder(tmp_path / "n", config={"model_type": "x"}))
    with pytest.raises(UnsupportedModel, match="lacks 'architectures'"):
        require_architecture(ckpt, ("LlamaForCausalLM",))


GOOD = {"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"t": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2, "does not know"),
        (
            {"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}},
            b"\0" * 16,
            "needs 16 bytes",
        ),
        ({"t": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, b"\0" * 8, "truncated"),
        (
            {"t": {"dtype": "F32", "shape": [-2, 2], "data_offsets": [0, 16]}},
            b"\0" * 16,
            "bad shape",
        ),
        (
            {"t": {"dtype": "F32", "shape": [4], "data_offsets": [16]}},
            b"\0" * 16,
            "bad data offsets",
        ),
        ({"t": [1, 2]}, b"", "not an object"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlap",
        ),
    ],
)
def test_corrupt_safetensors_headers(
    tmp_path: Path, header: dict, data: bytes, message: str
) -> None:
    path = tmp_path / "x.safetensors"
    write_safetensors(path, header, data)
    with pytest.raises(InvalidModelFile, match=message):
        read_safetensors_header(path)


def test_header_length_and_json_checked_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    write_safetensors(path, GOOD, b"\0" * 16)
    header = read_safetensors_header(path)
    assert header.tensors["t"].start == header.data_start
    # A header length far beyond the file: refused without allocating it.
    path.write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    with pytest.raises(InvalidModelFile, match="header claims"):
        read_safetensors_header(path)
    path.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(InvalidModelFile, match="not valid JSON"):
        read_safetensors_header(path)
    path.write_bytes(b"abc")
    with pytest.raises(InvalidModelFile, match="not a safetensors file"):
        read_safetensors_header(path)


def test_a_corrupt_shard_fails_the_folder(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "m")
    shard = folder / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-10])  # cut short, as an interrupted download would
    with pytest.raises(InvalidModelFile, match="truncated"):
        read_hf_folder(folder)


@pytest.mark.slow
def test_the_real_checkpoint_reads_cleanly(hf_checkpoint: Path) -> None:
    ckpt = read_hf_folder(hf_checkpoint)
    assert ckpt.architecture == "LlamaForCausalLM" and ckpt.model_type == "llama"
    assert ckpt.has_tokenizer and "chat_template.jinja" in ckpt.tokenizer_files
    assert {t.dtype for t in ckpt.tensors.values()} == {"BF16"}
    assert ckpt.parameter_count == 134_515_008  # SmolLM2-135M, embeddings tied (no lm_head)
    assert "lm_head.weight" not in ckpt.tensors


TENSORS = {
    "__metadata__": {"format": "pt"},
    "a.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
    "b.weight": {"dtype": "BF16", "shape": [4], "data_offsets": [24, 32]},
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.slow
@settings(max_examples=150)
@given(
    field=st.sampled_from(["dtype", "shape", "data_offsets", "entry", "extra", "bytes"]),
    value=JSON_VALUES,
    edits=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=4),
    cut=st.one_of(st.none(), st.integers(0, 300)),
)
def test_fuzzed_safetensors_headers_raise_only_our_errors(tmp_path, field, value, edits, cut):
    """Every header either parses or is refused with the library's own error."""
    header = json.loads(json.dumps(TENSORS))
    if field in ("dtype", "shape", "data_offsets"):
        header["a.weight"][field] = value
    elif field == "entry":
        header["b.weight"] = value
    elif field == "extra":
        header[str(value)[:20]] = value
    path = tmp_path / "fuzz.safetensors"
    write_safetensors(path, header, bytes(32))
    raw = bytearray(path.read_bytes())
    if field == "bytes":
        for pos, byte in edits:
            if pos < len(raw):
                raw[pos] = byte
    path.write_bytes(bytes(raw if cut is None else raw[:cut]))
    try:
        read_safetensors_header(path)
    except FiresideError:
        pass  # the only kind of failure allowed


def test_a_safetensors_header_nested_too_deeply_is_refused(tmp_path):
    deep = b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    path = tmp_path / "deep.safetensors"
    write_safetensors(path, deep, b"")
    with pytest.raises(InvalidModelFile, match="not valid JSON"):
        read_safetensors_header(path)
