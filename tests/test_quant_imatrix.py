"""Importance matrices: measured from the source (``--imatrix auto``), read from llama.cpp's
files (GGUF and legacy .dat), and the low-bit mixes they open (Q3_K_M, Q2_K, IQ4_XS),
byte for byte against llama.cpp's own quantizer guided by the same matrix."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest
import tiny_models
from test_quant_kquants import compare_with_llama_cpp, convert_in_child, random_imatrix
from tiny_models import build_tiny

from models import Cancelled, read_gguf
from models.hf import read_hf_folder
from quant import ConversionError, convert, output_type
from quant.arch import architecture_for
from quant.imatrix import ImportanceMatrix, read_imatrix, save_imatrix, weights_for
from quant.imatrix_compute import _chunks, compute_imatrix
from quant.kquant_rules import ImatrixNeeded
from quant.sources import open_source
from quant.to_gguf import plan_tensors

ROOT = Path(__file__).resolve().parents[1]
LOW_BIT = ["gguf-q3_k_m", "gguf-q2_k", "gguf-iq4_xs"]


@pytest.fixture(scope="module")
def tiny_moe(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("Qwen3MoeForCausalLM", tmp_path_factory.mktemp("imoe") / "src", hf_checkpoint)


@pytest.fixture(scope="module")
def moe_matrix(tiny_moe: Path) -> tuple[ImportanceMatrix, list[tuple[int, int]]]:
    steps: list[tuple[int, int]] = []
    return compute_imatrix(tiny_moe, progress=lambda d, t: steps.append((d, t))), steps


def quantized_plan(folder: Path, to: str = "gguf-q4_k_m"):
    ckpt = read_hf_folder(folder)
    with open_source(ckpt) as src:
        plan = plan_tensors(architecture_for(ckpt), src, output_type(to), has_imatrix=True)
    return [p for p in plan if p.quantized]


def test_a_computed_matrix_covers_every_quantized_tensor(tiny_moe: Path, moe_matrix) -> None:
    matrix, steps = moe_matrix
    weights = matrix.weights()
    # an untied token embedding is looked up, never multiplied: llama.cpp has no entry either
    for p in [p for p in quantized_plan(tiny_moe) if p.name != "token_embd.weight"]:
        experts = p.shape[0] if len(p.shape) == 3 else 1
        assert weights[p.name].shape == (experts * p.shape[-1],), p.name
        assert (weights[p.name] > 0).all(), p.name
    # stacked experts: one row per expert, over the tokens routed to it (two per token)
    tokens = matrix.counts["blk.0.attn_q.weight"][0]
    for layer in (0, 1):
        per_expert = matrix.counts[f"blk.{layer}.ffn_gate_exps.weight"]
        assert per_expert.shape == (4,) and per_expert.sum() == 2 * tokens
        assert (matrix.counts[f"blk.{layer}.ffn_down_exps.weight"] == per_expert).all()
    assert tokens > 2000 and matrix.chunks == len(steps) - 1
    done = [d for d, _ in steps]
    assert done == sorted(done) and steps[0][0] == 0 and steps[-1][0] == steps[-1][1]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["GptOssForCausalLM", "MixtralForCausalLM"])
def test_every_expert_layout_is_covered(arch: str, hf_checkpoint: Path, tmp_path: Path) -> None:
    # gpt-oss multiplies by input-major expert slices (x @ W[e]); Mixtral's checkpoint names
    # its experts w1/w3/w2: each expert tensor still gets its rows, one per expert
    folder = build_tiny(arch, tmp_path / "src", hf_checkpoint)
    matrix = compute_imatrix(folder)
    tokens = matrix.counts["blk.0.attn_q.weight"][0]
    for p in [p for p in quantized_plan(folder) if p.name != "token_embd.weight"]:
        experts = p.shape[0] if len(p.shape) == 3 else 1
        assert matrix.weights()[p.name].shape == (experts * p.shape[-1],), p.name
        if experts > 1:
            assert matrix.counts[p.name].sum() == 2 * tokens, p.name


def test_the_sums_follow_llama_cpps_definition(tiny_moe: Path, moe_matrix) -> None:
    """Recomputed by other means: module hooks on one attention projection and on the
    second layer's experts (their input and the router's choice), the experts' own math."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    matrix, _ = moe_matrix
    tok = AutoTokenizer.from_pretrained(tiny_moe)
    model = AutoModelForCausalLM.from_pretrained(tiny_moe, dtype=torch.float32).eval()
    layer = model.model.layers[1]
    seen: dict[str, list] = {"q": [], "experts": []}
    layer.self_attn.q_proj.register_forward_pre_hook(lambda m, a: seen["q"].append(a[0]))

    def experts_hook(module, args, kwargs):
        values = list(args) + list(kwargs.values())
        seen["experts"].append((values[0], values[1]))

    layer.mlp.experts.register_forward_pre_hook(experts_hook, with_kwargs=True)
    with torch.no_grad():
        for ids in _chunks(tok, model.config.max_position_embeddings):
            model(torch.tensor([ids]))
    x = torch.cat([a.reshape(-1, a.shape[-1]) for a in seen["q"]]).double()
    assert np.allclose(matrix.sums["blk.1.attn_q.weight"][0], (x * x).sum(0), rtol=1e-4)
    experts = layer.mlp.experts
    for e in range(4):
        rows = torch.cat([h[(idx == e).any(-1)] for h, idx in seen["experts"]]).double()
        gate, up = (rows @ experts.gate_up_proj[e].detach().double().T).chunk(2, dim=-1)
        inner = torch.nn.functional.silu(gate) * up
        assert matrix.counts["blk.1.ffn_up_exps.weight"][e] == rows.shape[0]
        assert np.allclose(matrix.sums["blk.1.ffn_up_exps.weight"][e], (rows**2).sum(0), rtol=1e-4)
        assert np.allclose(
            matrix.sums["blk.1.ffn_down_exps.weight"][e], (inner**2).sum(0), rtol=1e-3
        )


def test_a_cancel_stops_the_measurement(tiny_moe: Path) -> None:
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 1:
            cancel.set()

    with pytest.raises(Cancelled, match="nothing was kept"):
        compute_imatrix(tiny_moe, progress=progress, cancel=cancel)


# -- llama.cpp's files -----------------------------------------------------------------------
def write_llama_gguf_imatrix(path: Path, entries: dict[str, tuple[np.ndarray, np.ndarray]]):
    """The layout llama.cpp's imatrix tool writes: general.type imatrix, per tensor
    ``<name>.in_sum2`` (ggml shape columns x matrices) and ``<name>.counts`` (1 x matrices)."""
    w = gguf.GGUFWriter(path, arch="")
    w.kv_data[0].pop("general.architecture", None)  # gguf adds none for an empty name
    w.add_string("general.type", "imatrix")
    w.add_uint32("imatrix.chunk_count", 7)
    w.add_uint32("imatrix.chunk_size", 512)
    w.add_array("imatrix.datasets", ["wiki.train.raw"])
    for name, (sums, counts) in entries.items():
        w.add_tensor(f"{name}.in_sum2", sums.astype(np.float32))
        w.add_tensor(f"{name}.counts", counts.astype(np.float32).reshape(-1, 1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_legacy_imatrix(path: Path, entries: dict[str, tuple[int, np.ndarray]], tail=True):
    """llama.cpp's legacy .dat: entry count; per entry name, call count, values (the mean
    times the call count); then the last chunk and the dataset's name."""
    out = [struct.pack("<i", len(entries))]
    for name, (ncall, values) in entries.items():
        raw = name.encode()
        out.append(struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, values.size))
        out.append(values.astype(np.float32).tobytes())
    if tail:
        dataset = b"calibration.txt"
        out.append(struct.pack("<ii", 42, len(dataset)) + dataset)
    path.write_bytes(b"".join(out))


def test_llama_cpp_gguf_imatrix_files_are_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    sums_q, sums_e = rng.uniform(1, 9, (1, 64)), rng.uniform(1, 9, (4, 32))
    counts_e = np.array([10.0, 0.0, 30.0, 5.0])  # expert 1 never chosen
    path = tmp_path / "imatrix.gguf"
    write_llama_gguf_imatrix(
        path,
        {"blk.0.attn_q.weight": (sums_q, np.array([4.0])),
         "blk.0.ffn_down_exps.weight": (sums_e, counts_e)},
    )  # fmt: skip
    matrix = read_imatrix(path)
    assert matrix.chunks == 7 and matrix.datasets == ("wiki.train.raw",)
    weights = matrix.weights()
    assert np.allclose(weights["blk.0.attn_q.weight"], sums_q[0] / 4, rtol=1e-6)
    experts = weights["blk.0.ffn_down_exps.weight"].reshape(4, 32)
    assert np.allclose(experts[0], sums_e[0] / 10, rtol=1e-6)
    assert (experts[1] == 1).all(), "an expert that saw no token gets equal weights"
    assert np.allclose(experts[3], sums_e[3] / 5, rtol=1e-6)


def test_legacy_dat_files_are_read(tmp_path: Path) -> None:
    values = np.linspace(0.5, 8.0, 64)
    for tail in (True, False):
        path = tmp_path / f"imatrix-{tail}.dat"
        write_legacy_imatrix(path, {"blk.3.ffn_up.weight": (6, values * 6)}, tail=tail)
        matrix = read_imatrix(path)
        assert np.allclose(matrix.weights()["blk.3.ffn_up.weight"], values, rtol=1e-6)
    assert matrix.datasets == () and read_imatrix(tmp_path / "imatrix-True.dat").chunks == 42


def test_our_own_files_read_back(moe_matrix, tmp_path: Path) -> None:
    matrix, _ = moe_matrix
    again = read_imatrix(save_imatrix(matrix, tmp_path / "ours.imatrix.gguf"))
    assert again.chunks == matrix.chunks and set(again.sums) == set(matrix.sums)
    for name, values in matrix.weights().items():
        assert np.allclose(again.weights()[name], values, rtol=1e-6), name


def test_files_that_are_not_importance_matrices_are_refused_in_words(
    tiny_moe: Path, tmp_path: Path
) -> None:
    model = convert(tiny_moe, "gguf-f16", tmp_path / "model.gguf")
    noise = tmp_path / "noise.dat"
    noise.write_bytes(os.urandom(3000))
    cut = tmp_path / "cut.dat"
    write_legacy_imatrix(cut, {"blk.0.attn_q.weight": (1, np.ones(64))})
    cut.write_bytes(cut.read_bytes()[:60])
    nan = tmp_path / "nan.dat"
    write_legacy_imatrix(nan, {"blk.0.attn_q.weight": (1, np.full(64, np.nan))})
    empty = tmp_path / "empty.gguf"
    write_llama_gguf_imatrix(empty, {})
    cases = {
        model: "not of the imatrix type",
        noise: "does not start like a llama.cpp imatrix|impossible",
        cut: "ends in the middle of an entry",
        nan: "not finite",
        empty: "holds no entries",
        tmp_path / "gone.dat": "does not exist",
        tmp_path: "is a folder",
    }
    for path, words in cases.items():
        with pytest.raises(ConversionError, match=words) as info:
            read_imatrix(path)
        assert "Error" not in str(info.value) and "Traceback" not in str(info.value)


# -- the low-bit mixes -----------------------------------------------------------------------
def test_low_bit_types_are_refused_without_a_matrix_before_any_work(
    tiny_moe: Path, tmp_path: Path
) -> None:
    for to in LOW_BIT:
        with pytest.raises(ImatrixNeeded, match=r"only with an importance matrix.*--imatrix auto"):
            convert(tiny_moe, to, tmp_path / f"{to}.gguf")
        assert not list(tmp_path.iterdir())
    with pytest.raises(ConversionError, match="applies only to the GGUF K-quant"):
        weights_for("auto", tiny_moe, to="mlx-4bit")
    with pytest.raises(ConversionError, match="applies only to the GGUF K-quant"):
        weights_for("auto", tiny_moe, to="gguf-q8_0")
    other = tmp_path / "other-model.dat"
    write_legacy_imatrix(other, {"model.layers.0.wq": (1, np.ones(64))})
    with pytest.raises(ConversionError, match=r"other-model.dat names none .* another model"):
        weights_for(other, tiny_moe, to="gguf-q2_k")
    other.unlink()


@pytest.mark.slow
def test_low_bit_mixes_match_llama_cpp(
    hf_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows of 256 and 512 (no fallback), four layers (Q3_K_M's first two value layers), four
    query heads per value head (Q2_K's and IQ4_XS's value rules): the same types and bytes as
    llama.cpp's quantizer with the same importance matrix."""
    sizes = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
             "num_key_value_heads": 1}  # fmt: skip
    for key, value in sizes.items():
        monkeypatch.setitem(tiny_models.COMMON, key, value)
    src = build_tiny("LlamaForCausalLM", tmp_path / "src", hf_checkpoint, dtype="bfloat16")
    source = tmp_path / "source.gguf"
    convert_in_child(src, {"gguf-bf16": source})
    imatrix = random_imatrix(source, tmp_path / "imatrix.npz")
    jobs = {to: tmp_path / f"{to}.gguf" for to in LOW_BIT}
    convert_in_child(src, jobs, imatrix)
    compare_with_llama_cpp({"source": source, **jobs}, LOW_BIT, tmp_path, imatrix)


# -- through the command line ------------------------------------------------------------------
def fireside(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, FIRESIDE_HOME=str(home)),
    )  # fmt: skip


def test_convert_with_imatrix_auto_and_a_file_through_the_cli(
    tiny_moe: Path, moe_matrix, tmp_path: Path, fresh_home: Path
) -> None:
    refused = fireside(fresh_home, "convert", str(tiny_moe), "--to", "gguf-q2_k", "--no-report")
    assert refused.returncode != 0 and "--imatrix auto" in refused.stderr
    assert "Traceback" not in refused.stderr
    auto = fireside(
        fresh_home, "convert", str(tiny_moe), "--to", "gguf-q2_k", "--imatrix", "auto",
        "-o", str(tmp_path / "auto.gguf"), "--no-report",
    )  # fmt: skip
    assert auto.returncode == 0, auto.stderr[-2000:]
    assert "importance matrix" in auto.stderr and "added" in auto.stdout
    matrix_file = save_imatrix(moe_matrix[0], tmp_path / "tiny.imatrix")
    from_file = fireside(
        fresh_home, "convert", str(tiny_moe), "--to", "gguf-q2_k", "--imatrix",
        str(matrix_file), "-o", str(tmp_path / "file.gguf"), "--no-report",
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr[-2000:]
    # measured again or read from a file: the same mix (the bytes follow float rounding)
    types = [
        [(t.name, t.ggml_type) for t in read_gguf(tmp_path / f"{n}.gguf").tensors]
        for n in ("auto", "file")
    ]
    assert types[0] == types[1]
    listing = json.loads(fireside(fresh_home, "models", "list", "--json").stdout)
    record = next(r for r in listing if r["path"] == str((tmp_path / "auto.gguf").resolve()))
    assert record["quantization"] == "Q2_K" and record["format"] == "gguf"
    assert record["provenance"]["imatrix"] == "auto"  # `models show` prints it
    record = next(r for r in listing if r["path"] == str((tmp_path / "file.gguf").resolve()))
    assert record["provenance"]["imatrix"] == str(matrix_file.resolve())
    bad = fireside(
        fresh_home, "convert", str(tiny_moe), "--to", "gguf-q4_k_m", "--imatrix",
        str(tmp_path / "auto.gguf"), "-o", str(tmp_path / "bad.gguf"),
    )  # fmt: skip
    assert bad.returncode != 0 and "not of the imatrix type" in bad.stderr
    assert not (tmp_path / "bad.gguf").exists()
