"""``--imatrix auto`` on the real SmolLM2 checkpoint, as a measured bound: Q4_K_M guided by
the importance matrix Fireside measures from the source itself must come at least 15% closer
to the source than llama.cpp's own plain Q4_K_M (``llama_model_quantize`` of the lossless
bf16 GGUF, the peer's pipeline after its converter; the peer's bf16 is the same bytes).

Both files are run by llama.cpp (the peer, in a child) and compared with transformers float32
on texts the calibration never saw (tests/test_quant_real.py's and the quality report's).
Measured here: peer 0.0557, Fireside with the matrix 0.0352 (0.63x).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from quant_helpers import kl_and_top1, llama_logits, llama_quantize
from test_quant_real import TEXTS

from quant import OUTPUT_TYPES, convert
from quant.calibration import calibration_texts
from quant.imatrix_compute import compute_imatrix
from quant.quality import TEXT

pytestmark = pytest.mark.slow
BOUND = 0.85


def mean_kl(path: Path, ids: list[list[int]], ref: list[np.ndarray]) -> float:
    got = llama_logits(path, ids)
    kls = [kl_and_top1(r, g)[0] for r, g in zip(ref, got, strict=True)]
    return float(np.average(kls, weights=[len(i) for i in ids]))


def test_imatrix_q4_k_m_beats_llama_cpps_plain_q4_k_m(
    hf_checkpoint: Path, converted, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = [*TEXTS, TEXT]
    calibration = "\n".join(calibration_texts())
    assert not any(t[:40] in calibration for t in texts), "evaluation text in the calibration"
    started = time.monotonic()
    matrix = compute_imatrix(hf_checkpoint)
    took = time.monotonic() - started
    guided = convert(
        hf_checkpoint, "gguf-q4_k_m", tmp_path / "guided.gguf", imatrix=matrix.weights()
    )
    peer = tmp_path / "peer.gguf"
    llama_quantize(converted("gguf-bf16"), peer, OUTPUT_TYPES["gguf-q4_k_m"].file_type)

    tok = AutoTokenizer.from_pretrained(hf_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(hf_checkpoint, dtype=torch.float32).eval()
    ids = [tok(t).input_ids for t in texts]
    with torch.no_grad():
        ref = [model(torch.tensor([i])).logits[0].numpy() for i in ids]
    kl_guided, kl_peer = mean_kl(guided, ids, ref), mean_kl(peer, ids, ref)
    print(
        f"\nimatrix: {matrix.chunks} chunks in {took:.0f}s | Q4_K_M mean KL: llama.cpp plain "
        f"{kl_peer:.4f}, Fireside --imatrix auto {kl_guided:.4f} ({kl_guided / kl_peer:.2f}x)"
    )
    assert kl_guided <= BOUND * kl_peer, (kl_guided, kl_peer)
