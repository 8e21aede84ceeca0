"""Reading Hub listings without the network: quantization names, shards and the default
variant, and the file names a listing may (not) contain."""

from __future__ import annotations

import pytest

from models.hub import HubBadListing


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.IQ2_XXS.gguf", "IQ2_XXS"),
        ("ggml-model-q4_0.gguf", "Q4_0"),
        ("x-UD-Q4_K_XL-00001-of-00003.gguf", "UD-Q4_K_XL"),
        ("phi-3-mini-f16.gguf", "F16"),
        ("Qwen2.5-0.5B-Instruct-bf16.gguf", "BF16"),
        ("plain.gguf", None),
    ],
)
def test_quantization_is_read_from_file_names(name: str, quant: str | None) -> None:
    from models.hub.listing import quant_of

    assert quant_of(name) == quant


def test_shards_group_and_the_default_quant_is_q4_k_m() -> None:
    from models.hub.listing import RemoteFile, choose_variant, gguf_variants

    files = [
        RemoteFile("m-Q8_0-00002-of-00002.gguf", 5),
        RemoteFile("m-Q8_0-00001-of-00002.gguf", 5),
        RemoteFile("m-Q4_K_M.gguf", 6),
        RemoteFile("mmproj-m-f16.gguf", 1),
    ]
    variants = {v.label: v for v in gguf_variants(files)}
    assert set(variants) == {"Q8_0", "Q4_K_M"}
    assert [f.path for f in variants["Q8_0"].files] == [
        "m-Q8_0-00001-of-00002.gguf",
        "m-Q8_0-00002-of-00002.gguf",
    ]
    assert variants["Q8_0"].size == 10
    assert choose_variant(list(variants.values()), None, "r/m").label == "Q4_K_M"
    assert choose_variant(list(variants.values()), "q8_0", "r/m").label == "Q8_0"


@pytest.mark.parametrize(
    "bad", ["", "..", "a/../b", "/etc/passwd", "\\\\srv\\x", "a\\b", "C:x", "a//b", "./a", "a\nb"]
)
def test_unsafe_names_are_refused(bad: str) -> None:
    from models.hub import check_filename

    with pytest.raises(HubBadListing):
        check_filename(bad)


def test_safe_names_pass() -> None:
    from models.hub import check_filename

    for good in ("model.gguf", "Q4_K_M/model-00001-of-00002.gguf", "a..b.gguf", ".gitattributes"):
        assert check_filename(good) == good
