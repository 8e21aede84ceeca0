"""The K-quant / Q4_0 type rules (quant.kquant_rules) on their own, and the plain-words
refusals of the ggml binding (quant.ggml_quants) when xllamacpp is missing or unusable.
Byte identity with llama.cpp itself is checked in tests/test_quant_kquants.py."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import gguf
import numpy as np
import pytest

from quant import ConversionError
from quant import ggml_quants as gq
from quant.kquant_rules import (
    MIXES,
    ModelShape,
    Role,
    allows_quantization,
    choose_types,
    loader_order,
    n_dims,
    role_of,
    use_more_bits,
    with_fallback,
)

Q = gguf.GGMLQuantizationType
SMOL = ModelShape("llama", 30, 9, 3)


def dense_model(n_layers: int, hidden: int, ff: int, vocab: int = 1000, tied: bool = False):
    tensors = [("token_embd.weight", (vocab, hidden)), ("output_norm.weight", (hidden,))]
    if not tied:
        tensors.append(("output.weight", (vocab, hidden)))
    for i in range(n_layers):
        for name, shape in (
            ("attn_norm", (hidden,)),
            ("attn_q", (hidden, hidden)),
            ("attn_k", (hidden // 3, hidden)),
            ("attn_v", (hidden // 3, hidden)),
            ("attn_output", (hidden, hidden)),
            ("ffn_norm", (hidden,)),
            ("ffn_gate", (ff, hidden)),
            ("ffn_up", (ff, hidden)),
            ("ffn_down", (hidden, ff)),
        ):
            tensors.append((f"blk.{i}.{name}.weight", shape))
    return tensors


def test_more_bits_layers_of_a_30_layer_model() -> None:
    # first and last eighth (3 and 4 layers of 30), every third layer between them
    assert [i for i in range(30) if use_more_bits(i, 30)] == [
        0,
        1,
        2,
        5,
        8,
        11,
        14,
        17,
        20,
        23,
        26,
        27,
        28,
        29,
    ]


def test_q4_k_m_on_a_smollm2_shaped_model() -> None:
    # 576-wide rows (256 does not divide them) fall back; the 1536-wide FFN-down rows do not
    types = choose_types(dense_model(30, 576, 1536, 49152, tied=True), MIXES["Q4_K_M"], SMOL)
    assert types["token_embd.weight"] == Q.Q8_0  # tied: the output projection, Q6_K -> Q8_0
    assert types["output_norm.weight"] is None and types["blk.0.attn_norm.weight"] is None
    for i in range(30):
        more = use_more_bits(i, 30)
        assert types[f"blk.{i}.attn_v.weight"] == (Q.Q8_0 if more else Q.Q5_0)
        assert types[f"blk.{i}.ffn_down.weight"] == (Q.Q6_K if more else Q.Q4_K)
        for name in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
            assert types[f"blk.{i}.{name}.weight"] == Q.Q5_0


@pytest.mark.parametrize(
    ("mix", "embd", "output", "rest"),
    [
        ("Q4_0", Q.Q4_0, Q.Q6_K, Q.Q4_0),
        ("Q4_K_M", Q.Q4_K, Q.Q6_K, Q.Q4_K),
        ("Q5_K_M", Q.Q5_K, Q.Q6_K, Q.Q5_K),
        ("Q6_K", Q.Q6_K, Q.Q6_K, Q.Q6_K),
    ],
)
def test_untied_output_and_embedding(mix: str, embd: Q, output: Q, rest: Q) -> None:
    types = choose_types(dense_model(8, 512, 1024), MIXES[mix], ModelShape("llama", 8, 8, 8))
    assert types["token_embd.weight"] == embd
    assert types["output.weight"] == output
    assert types["blk.1.attn_q.weight"] == rest
    assert types["blk.1.ffn_gate.weight"] == rest


def test_fallbacks_when_the_block_does_not_divide_the_row() -> None:
    assert with_fallback(Q.Q4_K, 512) == Q.Q4_K
    assert with_fallback(Q.Q4_K, 96) == Q.Q5_0
    assert with_fallback(Q.Q5_K, 96) == Q.Q5_1
    assert with_fallback(Q.Q6_K, 96) == Q.Q8_0
    assert with_fallback(Q.Q4_0, 96) == Q.Q4_0
    for qtype in (Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q4_0, Q.Q8_0):
        assert with_fallback(qtype, 80) == Q.F16  # not even a 32-wide block fits
    # the output projection of a 96-wide model: Q8_0, not Q6_K (256 does not divide 96)
    types = choose_types(dense_model(2, 96, 80), MIXES["Q4_K_M"], ModelShape("llama", 2, 4, 4))
    assert types["output.weight"] == Q.Q8_0
    assert types["token_embd.weight"] == Q.Q5_0
    assert types["blk.0.ffn_down.weight"] == Q.F16
    assert types["blk.0.attn_v.weight"] == Q.Q5_0  # Q4_K -> Q5_0
    assert types["blk.1.attn_v.weight"] == Q.Q8_0  # Q6_K (a more-bits layer) -> Q8_0
    assert types["blk.1.attn_q.weight"] == Q.Q5_0


def test_seventy_b_value_projections_get_five_bits() -> None:
    model = ModelShape("llama", 80, 64, 8)
    types = choose_types(dense_model(80, 256, 512), MIXES["Q4_K_M"], model)
    assert not use_more_bits(11, 80) and use_more_bits(12, 80)
    assert types["blk.11.attn_v.weight"] == Q.Q5_K  # not a more-bits layer: Q4_K -> Q5_K
    assert types["blk.12.attn_v.weight"] == Q.Q6_K  # a more-bits layer keeps Q6_K
    assert types["blk.11.ffn_down.weight"] == Q.Q4_K
    mha = choose_types(dense_model(80, 256, 512), MIXES["Q4_K_M"], ModelShape("llama", 80, 8, 8))
    assert mha["blk.11.attn_v.weight"] == Q.Q4_K  # 65B-class (no GQA): no bump


def test_importance_matrix_guards_q4_0_ffn_down() -> None:
    tensors = dense_model(16, 256, 512)
    model = ModelShape("llama", 16, 4, 4)
    plain = choose_types(tensors, MIXES["Q4_0"], model)
    guided = choose_types(tensors, MIXES["Q4_0"], model, has_imatrix=True)
    assert plain["blk.0.ffn_down.weight"] == Q.Q4_0
    assert [guided[f"blk.{i}.ffn_down.weight"] for i in range(3)] == [Q.Q4_1, Q.Q4_1, Q.Q4_0]


def test_fused_qkv_counts_as_a_value_projection() -> None:
    tensors = [("token_embd.weight", (1000, 256)), ("output.weight", (1000, 256))]
    for i in range(8):
        tensors += [
            (f"blk.{i}.attn_qkv.weight", (768, 256)),
            (f"blk.{i}.ffn_up.weight", (1024, 256)),
        ]
    types = choose_types(tensors, MIXES["Q5_K_M"], ModelShape("phi3", 8, 4, 4))
    assert [types[f"blk.{i}.attn_qkv.weight"] for i in range(8)] == [
        Q.Q6_K if use_more_bits(i, 8) else Q.Q5_K for i in range(8)
    ]
    assert role_of("blk.3.attn_qkv.weight") == Role.ATTN_QKV


def test_what_is_never_quantized() -> None:
    assert not allows_quantization("blk.0.attn_norm.weight", (64,))
    assert not allows_quantization("blk.0.attn_q_norm.weight", (1, 64))  # 1-D to ggml
    assert not allows_quantization("blk.0.ffn_gate_inp.weight", (8, 64))
    assert not allows_quantization("blk.0.attn_q.bias", (64, 64))
    assert allows_quantization("blk.0.attn_q.weight", (64, 64))
    assert n_dims((1, 1, 64)) == 1 and n_dims((4, 1, 64)) == 3


def test_loader_order_puts_whole_model_tensors_first_then_layers_numerically() -> None:
    names = ["blk.10.attn_q.weight", "output.weight", "blk.2.ffn_up.weight", "token_embd.weight"]
    assert sorted(names, key=loader_order) == [
        "output.weight",
        "token_embd.weight",
        "blk.2.ffn_up.weight",
        "blk.10.attn_q.weight",
    ]


# -- the binding's refusals, in plain words -------------------------------------------------


def plain_words(message: str) -> None:
    for raw in ("Error", "Exception", "Traceback", "ctypes", "dlopen", "symbol"):
        assert raw not in message, message


def test_a_library_without_the_quantizer_is_refused_plainly() -> None:
    libc = ctypes.util.find_library("c")
    assert libc
    with pytest.raises(ConversionError) as err:
        gq.open_library(Path(libc), "2026.1.1")
    assert str(err.value) == (
        "the installed xllamacpp 2026.1.1 lacks ggml_quantize_chunk; install xllamacpp>=2026.10"
    )
    plain_words(str(err.value))


def test_missing_package_is_refused_plainly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gq.importlib.util, "find_spec", lambda name: None)
    gq.load.cache_clear()
    try:
        with pytest.raises(
            ConversionError, match="xllamacpp package .* not installed.*install xllamacpp>=2026.10"
        ) as err:
            gq.load()
        plain_words(str(err.value))
    finally:
        gq.load.cache_clear()


def test_old_version_is_refused_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(gq.importlib.metadata, "version", lambda name: "0.2.5")
    monkeypatch.setattr(gq, "library_path", lambda: tmp_path / "xllamacpp.abi3.so")
    gq.load.cache_clear()
    try:
        with pytest.raises(ConversionError, match="xllamacpp 0.2.5 is older") as err:
            gq.load()
        plain_words(str(err.value))
    finally:
        gq.load.cache_clear()


def test_unloadable_library_is_refused_plainly(tmp_path: Path) -> None:
    bogus = tmp_path / "xllamacpp.abi3.so"
    bogus.write_bytes(b"not a library")
    with pytest.raises(ConversionError, match="could not be loaded.*reinstall") as err:
        gq.open_library(bogus, "2026.10.1")
    plain_words(str(err.value).split("(")[0])


def test_missing_openmp_runtime_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(path: str) -> None:
        raise OSError("libgomp.so.1: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(gq.ctypes, "CDLL", fail)
    with pytest.raises(ConversionError, match="libgomp.so.1.*apt install libgomp1") as err:
        gq.open_library(Path("/x/xllamacpp.abi3.so"), "2026.10.1")
    plain_words(str(err.value))


# -- the binding itself (needs xllamacpp) ---------------------------------------------------


def test_quantizer_rows_split_over_threads_give_the_same_bytes() -> None:
    quantizer = gq.load()
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((1024, 512)).astype(np.float32)
    single = gq.Quantizer(quantizer.lib, quantizer.version, threads=1)
    for qtype in (Q.Q4_0, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.Q8_0, Q.F16):
        one = single.quantize(qtype, rows, name="t")
        many = quantizer.quantize(qtype, rows, name="t")
        assert one.nbytes == 1024 * quantizer.row_size(qtype, 512)
        if quantizer.threads > 1:
            assert len(quantizer._pieces(1024, 512)) > 1
        assert one.tobytes() == many.tobytes(), qtype.name
    # Q8_0 and F16 as the gguf package writes them (the direct types stay byte-compatible)
    assert single.quantize(Q.Q8_0, rows).tobytes() == gguf.quants.quantize(rows, Q.Q8_0).tobytes()
    assert single.quantize(Q.F16, rows).tobytes() == rows.astype(np.float16).tobytes()


def test_nan_weights_are_refused_plainly() -> None:
    rows = np.ones((4, 256), dtype=np.float32)
    rows[2, 7] = np.nan
    with pytest.raises(
        ConversionError, match="blk.3.attn_q.weight holds values that are not finite"
    ):
        gq.load().quantize(Q.Q4_K, rows, name="blk.3.attn_q.weight")
