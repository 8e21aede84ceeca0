"""Fireside's K-quant and Q4_0 files against llama.cpp's own quantizer, byte for byte.

Fireside quantizes each tensor as it streams from the checkpoint (ggml's quantizer, in
xllamacpp's library, with the types chosen by quant.kquant_rules). The peer is
llama-cpp-python's ``llama_model_quantize`` run on the source-precision GGUF Fireside's writer
makes (bf16 or f16, as the checkpoint is: nothing lost). Both files must hold the same
tensors in the same order with the same types, shapes and bytes, and the same metadata
(general.file_type and general.quantization_version included).

Each side runs in its own child process: two copies of llama.cpp/ggml never share one.
Tiny random checkpoints cover every architecture, the fallback types (rows of 64 and 80,
which 256-wide blocks, and for 80 even 32-wide ones, do not divide), the more-bits layers
(rows of 256) and the 70B rule (80 layers); the real SmolLM2 checkpoint covers a real model.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
import tiny_models
from quant_helpers import gguf_contents, llama_quantize
from tiny_models import build_tiny

from models import read_gguf
from quant import OUTPUT_TYPES, convert

ROOT = Path(__file__).resolve().parents[1]
MIX_TYPES = ["gguf-q4_k_m", "gguf-q5_k_m", "gguf-q6_k", "gguf-q4_0"]
SOURCE_TYPE = {"bfloat16": "gguf-bf16", "float16": "gguf-f16"}


def convert_in_child(folder: Path, jobs: dict[str, Path], imatrix: Path | None = None) -> None:
    """Fireside's converter in a fresh process: ``jobs`` maps output type -> output path;
    ``imatrix``: an .npz of importance weights (GGUF tensor name -> one per column)."""
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from quant import convert\n"
        "imatrix = dict(np.load(sys.argv[3])) if len(sys.argv) > 3 else None\n"
        "for to, out in json.loads(sys.argv[2]).items():\n"
        "    convert(sys.argv[1], to, out, name='tiny test model', imatrix=imatrix)\n"
    )
    plan = json.dumps({to: str(p) for to, p in jobs.items()})
    extra = [str(imatrix)] if imatrix is not None else []
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder), plan, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def assert_same_gguf(ours: Path, peer: Path) -> None:
    meta_o, tensors_o = gguf_contents(ours)
    meta_p, tensors_p = gguf_contents(peer)

    def layout(tensors):
        return [(n, gguf.GGMLQuantizationType(t).name, s) for n, t, s, _ in tensors]

    assert layout(tensors_o) == layout(tensors_p)
    differ = [n for (n, t, _, b), (_, _, _, pb) in zip(tensors_o, tensors_p) if b != pb]
    assert not differ, f"{len(differ)} tensors differ in bytes, e.g. {differ[:5]}"
    diff = {
        k: (meta_o.get(k), meta_p.get(k))
        for k in set(meta_o) | set(meta_p)
        if meta_o.get(k) != meta_p.get(k)
    }
    assert not diff, {k: tuple(str(v)[:80] for v in vals) for k, vals in diff.items()}


def compare_with_llama_cpp(
    outputs: dict[str, Path], mixes: list[str], tmp_path: Path, imatrix: Path | None = None
) -> None:
    for to in mixes:
        peer = tmp_path / f"peer-{to}.gguf"
        llama_quantize(outputs["source"], peer, OUTPUT_TYPES[to].file_type, imatrix=imatrix)
        assert_same_gguf(outputs[to], peer)
        assert read_gguf(outputs[to]).file_type == OUTPUT_TYPES[to].label
        peer.unlink()


@dataclass(frozen=True)
class Tiny:
    id: str
    arch: str
    dtype: str = "bfloat16"
    sizes: dict[str, Any] = field(default_factory=dict)
    mixes: tuple[str, ...] = tuple(MIX_TYPES)


NARROW = {"intermediate_size": 80}  # rows of 64 (hidden) and 80 (FFN down): fallbacks
WIDE = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8}
DEEP = {"num_hidden_layers": 80}
TWO_MIXES = ("gguf-q4_k_m", "gguf-q4_0")
CASES = [
    Tiny("llama-narrow", "LlamaForCausalLM", sizes=NARROW),
    Tiny("mistral-narrow-f16", "MistralForCausalLM", "float16", NARROW),
    Tiny("qwen2-narrow", "Qwen2ForCausalLM", sizes=NARROW),
    Tiny("qwen3-narrow", "Qwen3ForCausalLM", sizes=NARROW),
    Tiny("gemma2-narrow", "Gemma2ForCausalLM", sizes=NARROW),
    Tiny("gemma3-narrow", "Gemma3ForCausalLM", sizes=NARROW),
    Tiny("phi3-narrow", "Phi3ForCausalLM", sizes=NARROW),
    Tiny("llama-wide", "LlamaForCausalLM", sizes=WIDE),
    Tiny("qwen2-wide-tied", "Qwen2ForCausalLM", sizes=WIDE),
    Tiny("phi3-wide", "Phi3ForCausalLM", sizes=WIDE, mixes=("gguf-q4_k_m", "gguf-q5_k_m")),
    Tiny("llama-70b-shaped", "LlamaForCausalLM", sizes=DEEP, mixes=("gguf-q4_k_m",)),
    Tiny("qwen2-70b-shaped", "Qwen2ForCausalLM", sizes=DEEP, mixes=("gguf-q4_k_m",)),
    # the later architectures, on the two most used mixes
    Tiny("qwen3moe", "Qwen3MoeForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
    Tiny("qwen2moe", "Qwen2MoeForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
    Tiny("mixtral", "MixtralForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
    Tiny("gpt-oss", "GptOssForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
    Tiny("granite", "GraniteForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
    Tiny("olmo2", "Olmo2ForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
    Tiny("smollm3", "SmolLM3ForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
    Tiny("glm4", "Glm4ForCausalLM", sizes=NARROW, mixes=TWO_MIXES),
]
MOE = CASES[-7]


@pytest.fixture(scope="module")
def tiny_outputs(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    made: dict[str, dict[str, Path]] = {}

    def get(case: Tiny) -> dict[str, Path]:
        if case.id not in made:
            made[case.id] = build_and_convert(case)
        return made[case.id]

    def build_and_convert(case: Tiny) -> dict[str, Path]:
        folder = tmp_path_factory.mktemp(case.id)
        with pytest.MonkeyPatch.context() as mp:
            for key, value in case.sizes.items():
                mp.setitem(tiny_models.COMMON, key, value)
            src = build_tiny(case.arch, folder / "src", hf_checkpoint, dtype=case.dtype)
        jobs = {to: folder / f"{to}.gguf" for to in case.mixes}
        jobs[SOURCE_TYPE[case.dtype]] = folder / "source.gguf"
        convert_in_child(src, jobs)
        return {"source": folder / "source.gguf", **{to: jobs[to] for to in case.mixes}}

    return get


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.sizes is not NARROW else [])
        for c in CASES
    ],
)
def test_tiny_checkpoint_matches_llama_cpp(case: Tiny, tiny_outputs, tmp_path: Path) -> None:
    compare_with_llama_cpp(tiny_outputs(case), list(case.mixes), tmp_path)


def random_imatrix(source: Path, out: Path) -> Path:
    """Positive importance weights for every 2-D tensor of ``source`` (as an imatrix holds:
    mean squared activations per input column)."""
    rng = np.random.default_rng(7)
    _, tensors = gguf_contents(source)
    weights = {  # stacked experts (3-D): one row of weights per expert, as llama.cpp keeps
        name: rng.uniform(0.05, 20.0, dims[0] * int(np.prod(dims[2:]))).astype(np.float32)
        for name, _, dims, _ in tensors
        if len(dims) >= 2
    }
    np.savez(out, **weights)
    return out


@pytest.mark.parametrize(
    "case",
    [CASES[0], MOE, pytest.param(CASES[7], marks=pytest.mark.slow)],
    ids=lambda c: c.id,
)
def test_importance_matrix_matches_llama_cpp(case: Tiny, tiny_outputs, tmp_path: Path) -> None:
    """With an importance matrix: other quantization searches, and Q4_0's guarded FFN-down
    layers (Q4_1 in the first eighth), the same bytes as llama.cpp's."""
    plain = tiny_outputs(case)
    imatrix = random_imatrix(plain["source"], tmp_path / "imatrix.npz")
    jobs = {to: tmp_path / f"{to}.gguf" for to in case.mixes}
    convert_in_child(plain["source"].parents[0] / "src", jobs, imatrix)
    outputs = {"source": plain["source"], **jobs}
    compare_with_llama_cpp(outputs, list(case.mixes), tmp_path, imatrix)
    Q = gguf.GGMLQuantizationType
    guided = {t.name: Q(t.ggml_type) for t in read_gguf(jobs["gguf-q4_0"]).tensors}
    if case.sizes is WIDE:
        assert guided["blk.0.ffn_down.weight"] == Q.Q4_1
        assert guided["blk.1.ffn_down.weight"] == Q.Q4_0
    # the matrix changed the bytes (Q8_0 and F16, all of narrow Q6_K, ignore it)
    changed = {to for to in case.mixes if jobs[to].read_bytes() != plain[to].read_bytes()}
    assert changed >= {"gguf-q4_0", "gguf-q4_k_m", "gguf-q5_k_m"} & set(case.mixes)


def test_narrow_rows_fall_back(tiny_outputs) -> None:
    """The fallbacks the tiny comparison exercises, spelled out (64- and 80-wide rows)."""
    Q = gguf.GGMLQuantizationType
    outputs = tiny_outputs(CASES[0])
    types = {t.name: Q(t.ggml_type) for t in read_gguf(outputs["gguf-q4_k_m"]).tensors}
    assert types["blk.0.attn_q.weight"] == Q.Q5_0  # Q4_K: 256 does not divide 64
    assert types["blk.0.ffn_down.weight"] == Q.F16  # nor does 32 divide 80
    assert types["output.weight"] == Q.Q8_0  # Q6_K wanted, 256 does not divide 64
    assert types["blk.0.attn_norm.weight"] == Q.F32
    types = {t.name: Q(t.ggml_type) for t in read_gguf(outputs["gguf-q6_k"]).tensors}
    assert types["blk.0.attn_q.weight"] == Q.Q8_0


def test_progress_counts_the_bytes_written(hf_checkpoint: Path, tmp_path: Path) -> None:
    src = build_tiny("LlamaForCausalLM", tmp_path / "src", hf_checkpoint, dtype="bfloat16")
    seen: list[tuple[int, int]] = []
    out = convert(
        src, "gguf-q4_k_m", tmp_path / "x.gguf", progress=lambda d, t: seen.append((d, t))
    )
    total = sum(t.n_bytes for t in read_gguf(out).tensors)
    assert len(seen) > 3 and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[0][0] == 0 and seen[-1][0] == total
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "x.gguf"]


@pytest.fixture(scope="module")
def real_outputs(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("real-kquants")
    jobs = {to: folder / f"{to}.gguf" for to in MIX_TYPES}
    jobs["gguf-bf16"] = folder / "source.gguf"  # the checkpoint is bf16: lossless
    convert_in_child(hf_checkpoint, jobs)
    return {"source": jobs["gguf-bf16"], **{to: jobs[to] for to in MIX_TYPES}}


@pytest.mark.slow
@pytest.mark.parametrize("to", MIX_TYPES)
def test_real_checkpoint_matches_llama_cpp(to: str, real_outputs, tmp_path: Path) -> None:
    compare_with_llama_cpp(real_outputs, [to], tmp_path)
