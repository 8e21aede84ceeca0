"""The quality report: the real SmolLM2 checkpoint converted by Fireside and measured against
itself by quant.quality (transformers float32, the result's weights dequantized)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from model_files import build, kv_str, llama_gguf, tensor_info
from quant_helpers import llama_logits, log_softmax
from tiny_models import build_tiny

from models import Cancelled
from quant import convert
from quant.quality import (
    BADLY_DEGRADED,
    QualityError,
    QualityReport,
    compare,
    measure,
    reference_for,
    verdict_for,
)
from quant.readback import mlx_dequantize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(hf_checkpoint: Path):
    return reference_for(hf_checkpoint)


@pytest.fixture(scope="module")
def q8_report(hf_checkpoint: Path, converted) -> QualityReport:
    return measure(hf_checkpoint, converted("gguf-q8_0"), "gguf-q8_0")


def test_verdicts_and_the_report_as_kept() -> None:
    assert verdict_for(0.0) == verdict_for(0.0099) == "very close to the original"
    assert verdict_for(0.01) == verdict_for(0.049) == "close to the original"
    assert verdict_for(0.05) == verdict_for(0.19) == "noticeably degraded"
    assert verdict_for(0.2) == verdict_for(3.0) == BADLY_DEGRADED
    report = QualityReport(0.04321, 0.875, 310, verdict_for(0.04321), "gguf-q4_k_m")
    data = report.to_dict()
    assert data["summary"] == report.describe()
    assert QualityReport.from_dict(data) == QualityReport(
        0.04321, 0.875, 310, "close to the original", "gguf-q4_k_m"
    )
    sentence = report.describe()
    assert sentence.startswith("Close to the original: over 310 tokens")
    assert "88%" in sentence and "0.0432" in sentence and sentence.count(".") == 2


def test_q8_0_is_very_close_and_a_reference_changes_nothing(
    hf_checkpoint: Path, converted, reference, q8_report: QualityReport
) -> None:
    assert q8_report.verdict == "very close to the original"
    assert 0 < q8_report.kl < 0.005, q8_report
    assert q8_report.top1 >= 0.93, q8_report
    assert q8_report.tokens == len(reference.ids) >= 250
    assert q8_report.kind == "gguf-q8_0"
    steps: list[tuple[int, int]] = []
    again = measure(
        hf_checkpoint,
        converted("gguf-q8_0"),
        "gguf-q8_0",
        progress=lambda d, t: steps.append((d, t)),
        reference=reference,
    )
    assert (again.kl, again.top1) == pytest.approx((q8_report.kl, q8_report.top1), rel=1e-6)
    done = [d for d, _ in steps]
    assert done == sorted(done) and done[0] == 0 and steps[-1][0] == steps[-1][1]


def test_f16_reproduces_the_source(hf_checkpoint: Path, converted, reference) -> None:
    # The inverse of the converter's mapping (names, the llama Q/K rope permutation) is
    # exact: a 16-bit copy of bf16 weights gives the source's own distributions.
    report = measure(hf_checkpoint, converted("gguf-f16"), "gguf-f16", reference=reference)
    assert report.kl < 1e-5 and report.top1 == 1.0, report


@pytest.fixture(scope="module")
def q4_report(hf_checkpoint: Path, converted, reference) -> QualityReport:
    return measure(hf_checkpoint, converted("gguf-q4_0"), "gguf-q4_0", reference=reference)


def test_fewer_bits_lose_more(q4_report, q8_report) -> None:
    q4 = q4_report
    assert q4.kl > 20 * q8_report.kl and q4.top1 < q8_report.top1 - 0.1, (q4, q8_report)
    assert q4.verdict in ("noticeably degraded", BADLY_DEGRADED), q4


def test_the_weights_measure_agrees_with_llama_cpp_running_the_file(
    converted, reference, q4_report
) -> None:
    # llama.cpp (the peer, in a child) runs the same Q4_0 file: its own dequantization and
    # kernels. Weight error dominates at 4 bits, so the two measures nearly agree (measured:
    # 0.300 here, 0.306 by llama.cpp; at Q8_0 llama.cpp's 8-bit activations add their own).
    (logits,) = llama_logits(converted("gguf-q4_0"), [reference.ids])
    kl, top1 = compare(reference.log_probs, log_softmax(logits).astype(np.float32))
    assert q4_report.kl == pytest.approx(kl, rel=0.1), (q4_report, kl)
    assert q4_report.top1 == pytest.approx(top1, abs=0.05), (q4_report, top1)


def test_gemma_norms_are_undone(hf_checkpoint: Path, tmp_path: Path) -> None:
    # Gemma's converter writes 1 + w for every norm; the measure must take the 1 off again.
    folder = build_tiny("Gemma2ForCausalLM", tmp_path / "gemma", hf_checkpoint)
    out = convert(folder, "gguf-f16", tmp_path / "gemma.gguf", name="tiny gemma")
    report = measure(folder, out, "gguf-f16")
    assert report.kl < 1e-5 and report.top1 > 0.99, report


def test_a_result_of_another_model_or_type_is_refused_before_any_work(
    hf_checkpoint: Path, converted, tmp_path: Path
) -> None:
    # A llama GGUF whose embedding has another width, and one lacking the source's tensors.
    wrong = tmp_path / "other.gguf"
    arch = [kv_str("general.architecture", "llama"), kv_str("general.name", "other")]
    wrong.write_bytes(
        build(arch, [tensor_info("token_embd.weight", (64, 49152))], b"\0" * 64 * 49152 * 4)
    )
    started = time.monotonic()
    with pytest.raises(QualityError, match=r"other.gguf is not a conversion of smollm2.*576.*64"):
        measure(hf_checkpoint, wrong, "gguf-f16")
    with pytest.raises(QualityError, match=r"tiny.gguf is not a conversion .* it lacks it"):
        measure(hf_checkpoint, llama_gguf(tmp_path / "tiny.gguf"), "gguf-f16")
    with pytest.raises(QualityError, match=r"is a Q8_0 file, not Q4_K_M"):
        measure(hf_checkpoint, converted("gguf-q8_0"), "gguf-q4_k_m")
    with pytest.raises(QualityError, match=r"is not an MLX folder"):
        measure(hf_checkpoint, converted("gguf-q8_0"), "mlx-4bit")
    with pytest.raises(QualityError, match=r"does not exist"):
        measure(hf_checkpoint, tmp_path / "gone.gguf", "gguf-q8_0")
    assert time.monotonic() - started < 5, "refusals come from the headers, before any model runs"


def test_cancel_is_honoured(hf_checkpoint: Path, converted, reference) -> None:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done > total // 2:
            cancel.set()

    with pytest.raises(Cancelled):
        measure(
            hf_checkpoint, converted("gguf-q8_0"), "gguf-q8_0", progress=progress,
            cancel=cancel, reference=reference,
        )  # fmt: skip


def test_mlx_4bit_is_measured_on_dequantized_weights(
    hf_checkpoint: Path, cache_dir: Path, reference, q8_report
) -> None:
    import mlx.core as mx  # in the test install ('.[all]'); missing, the test fails
    from mlx_models import mlx_model

    folder = mlx_model(cache_dir, hf_checkpoint, "mlx-4bit")
    report = measure(hf_checkpoint, folder, "mlx-4bit", reference=reference)
    assert report.kind == "mlx-4bit" and report.tokens == len(reference.ids)
    assert q8_report.kl * 5 < report.kl < 1.0, report
    assert report.top1 > 0.4, report
    # Our numpy dequantization is MLX's own, exactly (computed in float32).
    w = mx.load(str(folder / "model.safetensors"))
    for name in ("model.embed_tokens", "model.layers.1.mlp.down_proj"):
        q, s, b = (w[f"{name}.{k}"] for k in ("weight", "scales", "biases"))
        theirs = mx.dequantize(q, s.astype(mx.float32), b.astype(mx.float32), 64, 4)
        s32, b32 = (np.array(a.astype(mx.float32)) for a in (s, b))
        mine = mlx_dequantize(np.array(q), s32, b32, bits=4, group_size=64)
        assert np.array_equal(np.array(theirs), mine), name
    with pytest.raises(QualityError, match=r"holds 4-bit weights, not MLX 8-bit"):
        measure(hf_checkpoint, folder, "mlx-8bit", reference=reference)
