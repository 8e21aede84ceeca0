"""The ONNX Runtime GenAI backend on the real SmolLM2 checkpoint converted to onnx-int8 (by
``quant.onnx``, once per checkout: tests/onnx_models.py), through the same checks as the other
backends, and its folder's failure handling (truncated weights, missing tokenizer, damaged bytes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from backend_contract import (
    QUESTION,
    collect,
    test_cancel_between_tokens_and_before_the_prompt,
    test_max_tokens_gives_length,
    test_stop_string_cuts_the_answer,
)

from models import InvalidModelFile, describe
from runtime import GREEDY, BackendOptions, CancelToken, ContextOverflow, GenerationParams
from runtime.backend import BASE_MODEL_NOTICE

pytestmark = pytest.mark.slow
__all__ = [  # the tests every engine passes alike (tests/backend_contract.py), run here
    "test_cancel_between_tokens_and_before_the_prompt",
    "test_max_tokens_gives_length",
    "test_stop_string_cuts_the_answer",
]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def onnx_dir(cache_dir, hf_checkpoint):
    from onnx_models import onnx_model

    return onnx_model(cache_dir, hf_checkpoint, "onnx-int8")


@pytest.fixture(scope="module")
def record(onnx_dir, hf_checkpoint):
    from quant.onnx import onnx_record

    return onnx_record(onnx_dir, hf_checkpoint, "onnx-int8")


@pytest.fixture(scope="module")
def backend(record):
    from runtime.onnx_backend import OnnxBackend

    b = OnnxBackend(record, BackendOptions(n_threads=2))
    steps: list[tuple[int, int]] = []
    b.load(lambda d, t: steps.append((d, t)))
    assert steps[0] == (0, 3) and steps[-1] == (3, 3)
    yield b
    b.unload()


def test_folder_is_described_and_dispatched_to_onnx(onnx_dir, record):
    from runtime.dispatch import choose_backend

    found = describe(onnx_dir)
    assert (found.format, found.quantization, found.architecture) == ("onnx", "ONNX int8", "llama")
    assert found.has_chat_template and found.context_length == 8192
    assert choose_backend(found) == "onnx"
    assert set(record.provenance["files"]) >= {"model.onnx", "model.onnx.data", "tokenizer.json"}


def test_load_reports_backend_context_and_template(backend):
    info = backend.info
    assert (info.backend, info.device, info.context_length) == ("onnx", "cpu", 8192)
    assert info.has_chat_template


def test_template_is_rendered_once_like_transformers(backend, hf_checkpoint):
    """Our sandboxed render of the folder's template equals transformers' render of the
    source's; the library only tokenizes it (special tokens once each, no second BOS)."""
    from transformers import AutoTokenizer

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Name a colour."},
    ]
    hf = AutoTokenizer.from_pretrained(hf_checkpoint)
    ours, add_bos = backend.render(messages)
    assert ours == hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    tokens = backend.tokenize(ours, add_bos=add_bos)
    assert tokens == hf.encode(ours, add_special_tokens=False)
    assert tokens.count(1) == 5  # <|im_start|>: one special token per turn, not text
    assert backend.tokenize("<|im_start|>hi", add_bos=True).count(1) == 1  # BOS never twice


def test_greedy_answer_streams_in_pieces_with_timings(backend):
    text, chunks = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=16)))
    assert text.strip()
    assert len([c for c in chunks if c.text]) > 3, "the answer must arrive token by token"
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length") and last.notice is None
    assert last.timings is not None and last.timings.generation_tokens_per_s > 0
    assert 0 < last.completion_tokens <= 16 and last.prompt_tokens > 10
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_greedy_tokens_are_the_engines_own_argmax(backend):
    """Each sampled token is the argmax of ONNX Runtime's logits for the text so far."""
    import onnxruntime_genai as og

    prompt = backend.tokenize(backend.render(QUESTION)[0], add_bos=False)
    backend.reset_cache()
    list(backend._generate(prompt, GREEDY, 6, CancelToken()))
    sampled = backend._cached[len(prompt) :]
    assert len(sampled) >= 4
    params = og.GeneratorParams(backend._model)
    params.set_search_options(max_length=len(prompt) + 8)
    gen = og.Generator(backend._model, params)
    gen.append_tokens(np.asarray(prompt, dtype=np.int32))
    for token in sampled:
        assert int(np.argmax(gen.get_logits()[0, -1])) == token
        gen.append_tokens(np.asarray([token], dtype=np.int32))


def test_same_seed_same_sample(backend):
    params = GenerationParams(temperature=0.9, seed=1234, max_tokens=10)
    backend.reset_cache()  # both from a cold cache (a reused prefix differs in the last bits)
    first, _ = collect(backend.stream(QUESTION, params))
    backend.reset_cache()
    again, _ = collect(backend.stream(QUESTION, params))
    assert first == again and first


def test_second_turn_reuses_the_cache_faithfully(backend):
    """A rewound, reused KV cache gives the next-token distribution a cold start gives (int8
    kernels differ slightly between a batch and single tokens, so not bit for bit)."""
    turn1, _ = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=10)))
    history = [*QUESTION, {"role": "assistant", "content": turn1}]
    history.append({"role": "user", "content": "And of Germany?"})
    tokens = backend.tokenize(backend.render(history)[0], add_bos=False)
    prefix = backend._prepare(tokens)
    assert prefix > len(tokens) // 2, "the first turn's tokens must be reused"
    warm = backend._append(tokens[prefix:])
    backend.reset_cache()
    backend._prepare(tokens)
    cold = backend._append(tokens)

    def logp(x):
        x = x.astype(np.float64) - x.max()
        return x - np.log(np.exp(x).sum())

    p, q = logp(cold), logp(warm)
    assert float((np.exp(p) * (p - q)).sum()) < 0.02
    backend.reset_cache()


def test_context_limit_is_ours(record):
    from runtime.onnx_backend import OnnxBackend

    b = OnnxBackend(record, BackendOptions(n_ctx=64, n_threads=2))
    assert b.load().context_length == 64
    long = [{"role": "user", "content": "word " * 80}]
    with pytest.raises(ContextOverflow, match="context holds 64"):
        list(b.stream(long, GREEDY.replace(context_overflow="error")))
    _, chunks = collect(b.stream(QUESTION, GREEDY.replace(max_tokens=None)))
    last = chunks[-1]
    assert last.prompt_tokens + last.completion_tokens <= 64
    with pytest.raises(ContextOverflow):
        list(b.complete("word " * 80, GREEDY))
    b.unload()


def _copy_folder(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in skip:
            os.symlink(f.resolve(), dst / f.name)
    return dst


def test_folder_without_template_is_a_base_model(onnx_dir, tmp_path):
    from runtime.onnx_backend import OnnxBackend

    base = _copy_folder(onnx_dir, tmp_path / "base", skip=("chat_template.jinja",))
    b = OnnxBackend(describe(base), BackendOptions(n_threads=2))
    assert not b.load().has_chat_template
    text, chunks = collect(b.stream(QUESTION, GREEDY.replace(max_tokens=6)))
    assert chunks[0].notice == BASE_MODEL_NOTICE and chunks[-1].finish_reason in ("stop", "length")
    prose, _ = collect(b.complete("The capital of France is", GREEDY.replace(max_tokens=4)))
    assert prose
    b.unload()


def test_truncated_weights_and_missing_tokenizer_are_refused(onnx_dir, tmp_path):
    short = _copy_folder(onnx_dir, tmp_path / "short", skip=("model.onnx.data",))
    with open(onnx_dir / "model.onnx.data", "rb") as src:
        (short / "model.onnx.data").write_bytes(src.read(1_000_000))
    with pytest.raises(InvalidModelFile, match=r"model\.onnx\.data is truncated"):
        describe(short)
    bare = _copy_folder(onnx_dir, tmp_path / "bare", skip=("tokenizer.json",))
    with pytest.raises(InvalidModelFile, match="has no tokenizer"):
        describe(bare)
    graph = _copy_folder(onnx_dir, tmp_path / "graph", skip=("model.onnx",))
    (graph / "model.onnx").write_bytes((onnx_dir / "model.onnx").read_bytes()[:5000])
    with pytest.raises(InvalidModelFile, match="damaged"):
        describe(graph)


def test_damaged_weights_are_caught_by_the_recorded_hashes(onnx_dir, tmp_path, fresh_home):
    """Random bytes in the weights load silently in ONNX Runtime; the hashes recorded at
    import stop the load with a plain sentence."""
    from models import Catalog, import_model
    from runtime.onnx_backend import OnnxBackend

    copy = _copy_folder(onnx_dir, tmp_path / "copy", skip=("model.onnx.data",))
    shutil.copyfile(onnx_dir / "model.onnx.data", copy / "model.onnx.data")
    catalog = Catalog()
    (rec,) = import_model(copy, mode="link", catalog=catalog)
    assert rec.provenance["files"]["model.onnx.data"]
    with open(copy / "model.onnx.data", "r+b") as fh:
        fh.seek(50_000_000)
        fh.write(np.random.default_rng(0).bytes(4096))
    describe(copy)  # same size: the structure still reads as whole
    with pytest.raises(InvalidModelFile, match=r"model\.onnx\.data .*changed since"):
        OnnxBackend(catalog.get(rec.id)).load()
    catalog.close()


def test_sampler_respects_top_k_min_p_and_repeat_penalty():
    from runtime.onnx_backend import sample_token

    logits = np.array([5.0, 4.0, 1.0, 0.5, -2.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    params = GenerationParams(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
    assert {sample_token(logits, params, [], rng) for _ in range(200)} == {0, 1}
    params = params.replace(top_k=0, min_p=0.2)  # p(1)/p(0) = e^-1 = 0.37 kept; e^-4 not
    assert {sample_token(logits, params, [], rng) for _ in range(200)} == {0, 1}
    greedy = GREEDY.replace(repeat_penalty=2.0)  # 5/2 = 2.5 < 4: token 1 wins once 0 repeats
    assert sample_token(logits, greedy, [], rng) == 0
    assert sample_token(logits, greedy, [0], rng) == 1


def test_fireside_chat_runs_an_onnx_folder_through_the_engine(onnx_dir):
    proc = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--model", str(onnx_dir), "--temperature", "0",
         "--max-tokens", "8", "--stats", "What is the capital of France?"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() and "tokens/s" in proc.stderr
