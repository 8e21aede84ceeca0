"""The real SmolLM2 checkpoint through Fireside's converter and llama.cpp: F16 reproduces
transformers' next-token distributions; Q8_0 and Q4_K_M stay within bounds measured against
llama.cpp's own pipeline (tests/perf/test_convert_bench.py); tokenization matches exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from quant_helpers import kl_and_top1, llama_logits, llama_vocab

from models import read_gguf

pytestmark = pytest.mark.slow

TEXTS = [
    "The quick brown fox jumps over the lazy dog. In 1492, Columbus sailed the ocean blue, "
    "and the world was never quite the same again.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    "The capital of France is Paris.",
    "Photosynthesis converts light energy into chemical energy: plants take in carbon dioxide "
    "and water and release oxygen.",
]
# A varied text for tokenization: code, Unicode (accents, CJK, emoji), digits, special tokens.
VARIED = (
    "<|im_start|>system\nNaïve café — 東京 🚀 ½ → ∑ x² 12345 3.14159\n"
    "for (int i = 0; i < n; ++i) { total += a[i] * 2; }  // done\t\ttabs\n\n"
    "  leading spaces, CAPS, it's, we'll; émigré Привет мир<|im_end|><|endoftext|>"
)
# Quality bounds: about twice what llama.cpp's own pipeline (convert_hf_to_gguf.py +
# llama_model_quantize) scores on these texts, measured by tests/perf/test_convert_bench.py:
# Q8_0 0.0054, Q4_K_M 0.069 (ours scored the same).
Q8_0_MAX_KL = 0.011
Q4_K_M_MAX_KL = 0.14


@pytest.fixture(scope="session")
def reference(hf_checkpoint: Path) -> tuple[list[list[int]], list[np.ndarray]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(hf_checkpoint, dtype=torch.float32).eval()
    ids = [tok(t).input_ids for t in TEXTS]
    with torch.no_grad():
        logits = [model(torch.tensor([i])).logits[0].numpy() for i in ids]
    return ids, logits


def _quality(converted, reference, to: str) -> tuple[float, float]:
    ids, ref = reference
    got = llama_logits(converted(to), ids)
    kls, top1s = zip(*(kl_and_top1(r, g) for r, g in zip(ref, got, strict=True)), strict=True)
    weights = [len(i) for i in ids]
    return float(np.average(kls, weights=weights)), float(np.average(top1s, weights=weights))


def test_f16_reproduces_transformers(converted, reference) -> None:
    kl, top1 = _quality(converted, reference, "gguf-f16")
    assert kl < 1e-3, kl
    assert top1 >= 0.99, top1


def test_q8_0_within_bounds(converted, reference) -> None:
    kl, top1 = _quality(converted, reference, "gguf-q8_0")
    assert kl < Q8_0_MAX_KL, kl
    assert top1 >= 0.85, top1
    info = read_gguf(converted("gguf-q8_0"))
    assert info.file_type == "Q8_0"


def test_q4_k_m_within_bounds(converted, reference) -> None:
    kl, top1 = _quality(converted, reference, "gguf-q4_k_m")
    assert kl < Q4_K_M_MAX_KL, kl
    assert top1 >= 0.7, top1
    out = converted("gguf-q4_k_m")
    assert read_gguf(out).file_type == "Q4_K_M"
    assert not [p for p in out.parent.iterdir() if "partial" in p.name or "intermediate" in p.name]


def test_tokenization_and_metadata_match_the_hf_tokenizer(converted, hf_checkpoint: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf_checkpoint)
    path = converted("gguf-f16")
    texts = [VARIED, *TEXTS]
    got = llama_vocab(path, texts, detokenize=[tok(VARIED).input_ids])
    for text, ids in zip(texts, got["tokens"], strict=True):
        assert ids == tok(text, add_special_tokens=True).input_ids, text
    assert got["special"] == [VARIED]
    info = read_gguf(path)
    assert info.get("tokenizer.ggml.pre") == "gpt-2"
    assert info.get("tokenizer.ggml.add_bos_token") is False
    assert info.get("tokenizer.ggml.eos_token_id") == tok.eos_token_id
    assert info.chat_template == (hf_checkpoint / "chat_template.jinja").read_text()
    assert info.get("general.source.converter", "").startswith("fireside-gguf")
