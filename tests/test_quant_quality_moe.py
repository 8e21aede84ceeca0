"""The quality report for mixture-of-experts conversions: transformers 5 keeps each layer's
experts as one 3-D parameter per projection (gate and up fused), the GGUF as llama.cpp's
stacked tensors, the checkpoint one tensor per expert; quant.readback maps each onto the
others. A 16-bit copy must give the source's own distributions back."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import build_tiny

from models.gguf import read_gguf
from quant import convert
from quant.quality import QualityError, measure

CASES = [
    "Qwen3MoeForCausalLM",
    "MixtralForCausalLM",
    pytest.param("Qwen2MoeForCausalLM", marks=pytest.mark.slow),  # + a shared expert
]


@pytest.mark.parametrize("arch", CASES)
def test_a_16_bit_moe_conversion_measures_as_the_source(
    arch: str, hf_checkpoint: Path, tmp_path: Path
) -> None:
    folder = build_tiny(arch, tmp_path / "src", hf_checkpoint)
    f16 = convert(folder, "gguf-f16", tmp_path / "f16.gguf")
    report = measure(folder, f16, "gguf-f16")
    assert report.kl < 1e-5 and report.top1 > 0.99, report
    q4 = measure(folder, convert(folder, "gguf-q4_0", tmp_path / "q4.gguf"), "gguf-q4_0")
    assert q4.kl > 100 * max(report.kl, 1e-8) and q4.top1 < 1.0, (q4, report)


@pytest.mark.slow
def test_gpt_oss_fused_experts_are_put_back(hf_checkpoint: Path, tmp_path: Path) -> None:
    # its experts are cut (gate/up interleaved) and transposed by the converter: the
    # measure puts them back through the converter's own transform
    folder = build_tiny("GptOssForCausalLM", tmp_path / "src", hf_checkpoint)
    report = measure(folder, convert(folder, "gguf-q8_0", tmp_path / "q8.gguf"), "gguf-q8_0")
    assert report.kl < 0.002 and report.top1 > 0.9, report
    # F16 keeps its 2-D expert biases in F32, and is still an F16 file (measured as one)
    f16 = convert(folder, "gguf-f16", tmp_path / "f16.gguf")
    assert read_gguf(f16).metadata["general.file_type"] == 1  # MOSTLY_F16
    assert measure(folder, f16, "gguf-f16").kl < 1e-4


def test_a_moe_result_of_other_experts_is_refused(hf_checkpoint: Path, tmp_path: Path) -> None:
    folder = build_tiny("Qwen3MoeForCausalLM", tmp_path / "src", hf_checkpoint)
    for i, change in enumerate([{"num_experts": 8}, {"moe_intermediate_size": 48}]):
        other = build_tiny("Qwen3MoeForCausalLM", tmp_path / f"o{i}", hf_checkpoint, **change)
        out = convert(other, "gguf-f16", tmp_path / f"o{i}.gguf")
        with pytest.raises(QualityError, match=r"is not a conversion of src: .*(gate|experts)"):
            measure(folder, out, "gguf-f16")
