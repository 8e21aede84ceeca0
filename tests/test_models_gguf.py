"""The GGUF reader against hostile and broken files, built byte by byte with struct.

Each bad input must give InvalidModelFile (a FiresideError) with a plain message, register
nothing, and use bounded memory; a hypothesis fuzz test mutates the real bundled model's
header and checks that nothing but our own errors ever escapes.
"""

from __future__ import annotations

import struct
import tempfile
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_files import (
    U32,
    U64,
    build,
    gstr,
    kv_str,
    kv_u32,
    make_split,
    split_part,
    tensor_info,
    write,
)

from models import Catalog, FiresideError, InvalidModelFile, read_gguf
from models.gguf_model import read_gguf_model
from models.gguf_values import ARRAY, FLOAT32, INT32, STRING, UINT32, UINT64, ArraySummary
from models.library import import_model

MEMORY_LIMIT = 16 * 1024 * 1024  # bytes Python may allocate while rejecting a small file


def rejected(path: Path, *words: str) -> str:
    """read_gguf must refuse ``path`` with a message holding ``words``, in bounded memory."""
    tracemalloc.start()
    try:
        with pytest.raises(InvalidModelFile) as err:
            read_gguf(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"rejecting {path.name} allocated {peak} bytes"
    msg = str(err.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_a_valid_tiny_file_reads(tmp_path: Path) -> None:
    info = read_gguf(write(tmp_path, build()))
    assert info.architecture == "llama" and info.name == "tiny"
    assert [t.name for t in info.tensors] == ["w"] and info.parameter_count == 32
    assert info.tensor_bytes == 128 and info.data_offset % 32 == 0


def test_bad_magic(tmp_path: Path) -> None:
    rejected(write(tmp_path, build(magic=b"GGML")), "not a GGUF file")


@pytest.mark.parametrize("version", [0, 1, 4, 0x7FFFFFFF])
def test_unknown_version(tmp_path: Path, version: int) -> None:
    rejected(write(tmp_path, build(version=version)), f"version {version}")


def test_big_endian_file_is_named(tmp_path: Path) -> None:
    rejected(write(tmp_path, build(version=0x03000000)), "big-endian")


def test_truncated_after_the_header(tmp_path: Path) -> None:
    raw = build()
    msg = rejected(write(tmp_path, raw[: len(raw) - 128]), "truncated", "expected")
    assert f"({len(raw)} bytes)" in msg


def test_truncated_in_the_tensor_data(tmp_path: Path) -> None:
    raw = build()
    rejected(write(tmp_path, raw[:-50]), "truncated", f"{len(raw)} bytes")


def test_truncated_in_the_metadata(tmp_path: Path) -> None:
    raw = build()
    rejected(write(tmp_path, raw[:40]), "truncated or corrupt")


def test_too_short_to_be_gguf(tmp_path: Path) -> None:
    rejected(write(tmp_path, b"GGUF\x03\0\0\0"), "truncated")
    rejected(write(tmp_path, b""), "not a GGUF file")


@pytest.mark.parametrize("field", ["n_tensors", "n_kv"])
def test_counts_of_two_to_the_64(tmp_path: Path, field: str) -> None:
    raw = build(**{field: 2**64 - 1})
    rejected(write(tmp_path, raw), str(2**64 - 1), "more than fit")


def test_a_string_length_of_two_to_the_63(tmp_path: Path) -> None:
    bad = gstr("general.name") + U32.pack(STRING) + U64.pack(2**63) + b"x" * 16
    rejected(write(tmp_path, build([bad])), str(2**63))


def test_a_key_length_of_two_to_the_63(tmp_path: Path) -> None:
    bad = U64.pack(2**63) + b"k" * 16
    rejected(write(tmp_path, build([bad])), "metadata key")


def test_an_array_claiming_two_to_the_60_items(tmp_path: Path) -> None:
    bad = gstr("tokenizer.ggml.scores") + U32.pack(ARRAY) + U32.pack(FLOAT32) + U64.pack(2**60)
    rejected(write(tmp_path, build([bad])), str(2**60), "more than the file can hold")


def _array(key: str, item_type: int, items: bytes, count: int) -> bytes:
    return gstr(key) + U32.pack(ARRAY) + U32.pack(item_type) + U64.pack(count) + items


def test_an_array_of_mismatched_element_type(tmp_path: Path) -> None:
    # The vocabulary must be strings: llama.cpp would assert (abort) on uint32 tokens.
    tokens = _array("tokenizer.ggml.tokens", UINT32, U32.pack(1) * 3, 3)
    rejected(write(tmp_path, build([tokens])), "tokenizer.ggml.tokens", "array of uint32")


def test_scores_shorter_than_the_vocabulary(tmp_path: Path) -> None:
    tokens = _array("tokenizer.ggml.tokens", STRING, gstr("a") + gstr("b") + gstr("c"), 3)
    scores = _array("tokenizer.ggml.scores", FLOAT32, struct.pack("<f", 0.0), 1)
    rejected(write(tmp_path, build([tokens, scores])), "1 entries for 3 tokens")


def test_token_types_of_the_wrong_type(tmp_path: Path) -> None:
    types = _array("tokenizer.ggml.token_type", FLOAT32, struct.pack("<f", 0.0), 1)
    rejected(write(tmp_path, build([types])), "token_type", "int32")


def test_an_array_item_type_that_does_not_exist(tmp_path: Path) -> None:
    rejected(write(tmp_path, build([_array("x.y", 99, b"\0" * 8, 1)])), "unknown type 99")


def test_nested_arrays(tmp_path: Path) -> None:
    inner = U32.pack(INT32) + U64.pack(1) + struct.pack("<i", 7)
    rejected(write(tmp_path, build([_array("x.nested", ARRAY, inner, 1)])), "nested arrays")


def test_an_unknown_value_type(tmp_path: Path) -> None:
    bad = gstr("x.y") + U32.pack(42) + b"\0" * 8
    rejected(write(tmp_path, build([bad])), "unknown value type 42")


def test_a_duplicate_key(tmp_path: Path) -> None:
    kvs = [kv_str("general.name", "a"), kv_str("general.name", "b")]
    rejected(write(tmp_path, build(kvs)), "appears twice")


@pytest.mark.parametrize("alignment", [0, 13, 3 << 20])
def test_bad_alignment(tmp_path: Path, alignment: int) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_u32("general.alignment", alignment)]
    rejected(write(tmp_path, build(kvs)), f"alignment {alignment}")


def test_alignment_stored_as_the_wrong_type(tmp_path: Path) -> None:
    as_string = [kv_str("general.alignment", "32")]
    rejected(write(tmp_path, build(as_string)), "general.alignment", "string", "uint32")
    as_u64 = [gstr("general.alignment") + U32.pack(UINT64) + U64.pack(32)]
    rejected(write(tmp_path, build(as_u64)), "general.alignment", "uint64")


def test_a_non_default_alignment_is_honoured(tmp_path: Path) -> None:
    kvs = [kv_u32("general.alignment", 64)]
    info = read_gguf(write(tmp_path, build(kvs, alignment=64)))
    assert info.alignment == 64 and info.data_offset % 64 == 0


def test_architecture_keys_must_be_numbers(tmp_path: Path) -> None:
    kvs = [kv_str("general.architecture", "llama"), kv_str("llama.block_count", "thirty")]
    rejected(write(tmp_path, build(kvs)), "llama.block_count", "whole number")


def test_more_than_four_dimensions(tmp_path: Path) -> None:
    rejected(write(tmp_path, build(tensors=[tensor_info("w", (32, 1, 1, 1, 1))])), "5 dimensions")


@pytest.mark.parametrize("shape", [(2**32, 2**32), (32, 2**63), (2**40, 2**40, 2**40)])
def test_a_shape_whose_element_count_overflows(tmp_path: Path, shape: tuple[int, ...]) -> None:
    rejected(write(tmp_path, build(tensors=[tensor_info("w", shape)])), "'w'", "shape")


def test_a_tensor_offset_past_the_end(tmp_path: Path) -> None:
    tensors = [tensor_info("w", (32,), offset=1 << 40)]
    rejected(write(tmp_path, build(tensors=tensors)), "'w'", "past the end of the file")


def test_an_unaligned_or_overlapping_tensor_offset(tmp_path: Path) -> None:
    unaligned = [tensor_info("a", (32,)), tensor_info("b", (32,), offset=130)]
    rejected(write(tmp_path, build(tensors=unaligned, data=b"\0" * 256)), "aligned")
    overlap = [tensor_info("a", (32,)), tensor_info("b", (32,), offset=64)]
    rejected(write(tmp_path, build(tensors=overlap, data=b"\0" * 256)), "'b'", "should be at 128")


def test_an_unknown_tensor_type(tmp_path: Path) -> None:
    rejected(write(tmp_path, build(tensors=[tensor_info("w", (32,), ggml_type=1000)])), "1000")


def test_rows_that_do_not_fill_quant_blocks(tmp_path: Path) -> None:
    q8_0 = 8  # blocks of 32 values
    rejected(write(tmp_path, build(tensors=[tensor_info("w", (33,), ggml_type=q8_0)])), "blocks")


def test_duplicate_and_overlong_tensor_names(tmp_path: Path) -> None:
    dup = [tensor_info("w", (32,)), tensor_info("w", (32,), offset=128)]
    rejected(write(tmp_path, build(tensors=dup, data=b"\0" * 256)), "appears twice")
    rejected(write(tmp_path, build(tensors=[tensor_info("w" * 64, (32,))])), "too long")


def test_paths_that_are_not_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidModelFile, match="does not exist"):
        read_gguf(tmp_path / "missing.gguf")
    with pytest.raises(InvalidModelFile, match="folder"):
        read_gguf(tmp_path)


def test_hostile_files_are_never_registered(tmp_path: Path, fresh_home: Path) -> None:
    catalog = Catalog(fresh_home / "db.sqlite")
    before = [r.id for r in catalog.list()]
    bad = write(tmp_path, build(n_kv=2**64 - 1), "hostile.gguf")
    for mode in ("link", "copy"):
        with pytest.raises(InvalidModelFile):
            import_model(bad, mode=mode, catalog=catalog)
    assert [r.id for r in catalog.list()] == before
    assert not [p for p in (fresh_home / "models").rglob("*") if p.is_file()]


# -- split GGUF --------------------------------------------------------------------------------
def test_a_split_model_reads_all_parts(tmp_path: Path) -> None:
    parts = make_split(tmp_path / "s")
    model = read_gguf_model(parts[0])
    assert model.is_split and [p.path for p in model.parts] == parts
    assert model.parameter_count == 96 and model.file_size == sum(p.stat().st_size for p in parts)


def test_a_split_model_with_a_missing_part(tmp_path: Path) -> None:
    parts = make_split(tmp_path / "s")
    parts[1].unlink()
    with pytest.raises(InvalidModelFile, match="missing.*00002-of-00003"):
        read_gguf_model(parts[0])


def test_a_later_part_points_to_the_first(tmp_path: Path) -> None:
    parts = make_split(tmp_path / "s")
    with pytest.raises(InvalidModelFile, match="import the first part, tiny-00001-of-00003"):
        read_gguf_model(parts[2])


def test_split_parts_that_do_not_belong_together(tmp_path: Path) -> None:
    parts = make_split(tmp_path / "s")
    parts[1].write_bytes(split_part(0, 3, "t1", 3))  # says it is part 1
    with pytest.raises(InvalidModelFile, match="do not belong together"):
        read_gguf_model(parts[0])


def test_a_damaged_split_part(tmp_path: Path) -> None:
    parts = make_split(tmp_path / "s")
    parts[2].write_bytes(parts[2].read_bytes()[:-60])
    with pytest.raises(InvalidModelFile, match="truncated"):
        read_gguf_model(parts[0])


# -- the real model, and a fuzz test on its header ---------------------------------------------
def test_the_bundled_model_header(bundled_gguf: Path) -> None:
    info = read_gguf(bundled_gguf)
    assert info.architecture == "llama" and info.file_type == "Q4_1"
    assert info.arch_value("block_count") == 30 and info.context_length == 8192
    assert isinstance(info.get("tokenizer.ggml.tokens"), ArraySummary)
    assert info.get("tokenizer.ggml.tokens").count == 49152
    assert 130e6 < info.parameter_count < 140e6 and info.tensor_bytes < info.file_size


FUZZ_REGION = 64 * 1024  # mutations land in the first 64 KB (header counts, metadata)
FUZZ_TAIL = 64 * 1024  # the copy keeps this much tensor data, so it is truncated


@pytest.fixture(scope="module")
def real_header(bundled_gguf: Path) -> bytes:
    """The bundled model's whole header (metadata and tensor infos) and a little of its data."""
    end = read_gguf(bundled_gguf).data_offset + FUZZ_TAIL
    with open(bundled_gguf, "rb") as fh:
        return fh.read(end)


@pytest.mark.slow
@settings(max_examples=120)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=FUZZ_REGION - 1),
            st.sampled_from(["byte", "u32", "u64", "delete", "insert"]),
            st.integers(min_value=0, max_value=2**64 - 1),
        ),
        min_size=1,
        max_size=6,
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=FUZZ_REGION)),
)
def test_fuzzed_headers_raise_only_our_errors(
    real_header: bytes, tmp_path: Path, edits: list[tuple[int, str, int]], cut: int | None
) -> None:
    raw = bytearray(real_header)
    for pos, how, value in edits:
        if how == "byte":
            raw[pos : pos + 1] = bytes([value & 0xFF])
        elif how == "u32":
            raw[pos : pos + 4] = U32.pack(value & 0xFFFFFFFF)
        elif how == "u64":
            raw[pos : pos + 8] = U64.pack(value)
        elif how == "delete":
            del raw[pos : pos + 1 + value % 64]
        else:
            raw[pos:pos] = U64.pack(value)
    path = tmp_path / "fuzz.gguf"
    path.write_bytes(bytes(raw if cut is None else raw[:cut]))
    tracemalloc.start()
    try:
        read_gguf(path)
    except FiresideError:
        pass  # the only kind of failure allowed
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"reading a {path.stat().st_size}-byte file allocated {peak} bytes"


def test_the_fuzz_base_is_a_valid_header_of_a_truncated_file(
    real_header: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(real_header)
    with pytest.raises(InvalidModelFile, match="truncated: expected 98.4 MB"):
        read_gguf(path)


def test_the_type_tables_match_the_gguf_package():
    """The header reader's own tables (no numpy at load) agree with gguf's, entry by entry,
    and every type gguf knows is known (directly, or through the fallback)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    from models.ggml_types import FILE_TYPES, TENSOR_TYPES, file_type_name, tensor_type

    for type_id, (name, block, size) in TENSOR_TYPES.items():
        qtype = GGMLQuantizationType(type_id)
        assert (qtype.name, *GGML_QUANT_SIZES[qtype]) == (name, block, size)
    for qtype in GGMLQuantizationType:
        assert tensor_type(qtype.value) == (qtype.name, *GGML_QUANT_SIZES[qtype])
    for value, label in FILE_TYPES.items():
        assert LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_") == label
    assert file_type_name(15) == "Q4_K_M" and tensor_type(9999) is None


@pytest.mark.slow
@settings(max_examples=150)
@given(
    part=st.integers(min_value=0, max_value=2),
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=400), st.integers(0, 255)), max_size=5
    ),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=400)),
    swap=st.booleans(),
)
def test_fuzzed_split_models_raise_only_our_errors(
    tmp_path: Path, part: int, edits: list[tuple[int, int]], cut: int | None, swap: bool
) -> None:
    """A split model with one part damaged, cut short, or two parts swapped: it reads, or it
    is refused with the library's own error, never anything else."""
    with tempfile.TemporaryDirectory(dir=tmp_path) as folder:  # one per example
        _read_damaged_split(make_split(Path(folder)), part, edits, cut, swap)


def _read_damaged_split(
    parts: list[Path], part: int, edits: list[tuple[int, int]], cut: int | None, swap: bool
) -> None:
    from models.gguf_model import read_gguf_model

    raw = bytearray(parts[part].read_bytes())
    for pos, byte in edits:
        if pos < len(raw):
            raw[pos] = byte
    parts[part].write_bytes(bytes(raw if cut is None else raw[:cut]))
    if swap:
        a, b = parts[0].read_bytes(), parts[1].read_bytes()
        parts[0].write_bytes(b)
        parts[1].write_bytes(a)
    try:
        read_gguf_model(parts[0])
    except FiresideError:
        pass  # the only kind of failure allowed
