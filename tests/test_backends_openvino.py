"""The OpenVINO GenAI backend on the real SmolLM2 checkpoint, converted to a Q8_0 GGUF by our
converter and to an IR folder by OpenVINO GenAI (once per checkout: tests/openvino_models.py),
through the same checks as the other backends; its refusals (K-quants, Q4_1) and the IR
folder's failure handling (truncated weights, missing tokenizer, damaged bytes).
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

from models import InvalidModelFile, UnsupportedModel, describe
from runtime import (
    GREEDY,
    BackendOptions,
    BackendUnavailable,
    ContextOverflow,
    GenerationParams,
)
from runtime.backend import BASE_MODEL_NOTICE

pytestmark = pytest.mark.slow
__all__ = [  # the tests every engine passes alike (tests/backend_contract.py), run here
    "test_cancel_between_tokens_and_before_the_prompt",
    "test_max_tokens_gives_length",
    "test_stop_string_cuts_the_answer",
]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ov_models(cache_dir, hf_checkpoint):
    from openvino_models import openvino_models

    return openvino_models(cache_dir, hf_checkpoint)


@pytest.fixture(scope="module")
def gguf(ov_models):
    return ov_models[0]


@pytest.fixture(scope="module")
def ir_dir(ov_models):
    return ov_models[1]


@pytest.fixture(scope="module")
def backend(gguf):
    from runtime.openvino_backend import OpenVinoBackend

    b = OpenVinoBackend(describe(gguf), BackendOptions(n_threads=2))
    steps: list[tuple[int, int]] = []
    b.load(lambda d, t: steps.append((d, t)))
    assert steps[0] == (0, 3) and steps[-1] == (3, 3) and b.threads == 2
    yield b
    b.unload()


def test_engines_for_each_model_and_the_refusals(
    gguf, ir_dir, bundled_gguf, hf_checkpoint, tmp_path
):
    """dispatch names every engine that can run a record; OpenVINO is offered for a Q8_0
    GGUF, never for the bundled Q4_1 (it loads it but reads it wrongly) or a K-quant, and
    asking for it there is refused in words naming what works, before OpenVINO loads."""
    from quant import convert
    from runtime.dispatch import choose_backend, engines_for
    from runtime.openvino_backend import OpenVinoBackend

    q8 = describe(gguf)
    assert engines_for(q8) == ["llama.cpp", "openvino"]
    assert choose_backend(q8) == "llama.cpp" and choose_backend(q8, "openvino") == "openvino"
    assert choose_backend(q8, "ov") == "openvino"
    ir = describe(ir_dir)
    assert (ir.format, ir.quantization, ir.architecture) == ("openvino", "OpenVINO int8", "llama")
    assert ir.has_chat_template and ir.context_length == 8192
    assert engines_for(ir) == ["openvino"] and choose_backend(ir) == "openvino"
    with pytest.raises(BackendUnavailable, match="cannot run openvino models"):
        choose_backend(ir, "llama.cpp")
    kquant = convert(hf_checkpoint, "gguf-q4_k_m", tmp_path / "k.gguf")
    for path, kind in ((bundled_gguf, "Q4_1"), (kquant, "Q4_K")):
        record = describe(path)
        assert engines_for(record) == ["llama.cpp"]
        with pytest.raises(BackendUnavailable, match=rf"holds .*{kind}.* F16, Q8_0 or Q4_0"):
            choose_backend(record, "openvino")
        with pytest.raises(UnsupportedModel, match=kind):
            OpenVinoBackend(record).load()


def test_load_reports_backend_context_and_template(backend):
    info = backend.info
    assert (info.backend, info.device, info.context_length) == ("openvino", "cpu", 8192)
    assert info.has_chat_template


def test_template_is_rendered_once_like_transformers(backend, hf_checkpoint):
    """Our sandboxed render of the GGUF's template equals transformers' render of the
    source's; OpenVINO only tokenizes it (special tokens once each, no second BOS)."""
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


def test_greedy_answer_streams_in_pieces_and_is_openvinos_own(backend):
    """The answer arrives token by token, and is what OpenVINO's own greedy generate gives
    for the same prompt tokens (nothing of ours between its sampler and the text)."""
    import openvino as ov

    text, chunks = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=16)))
    assert text.strip()
    assert len([c for c in chunks if c.text]) > 3, "the answer must arrive token by token"
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length") and last.notice is None
    assert last.timings is not None and last.timings.generation_tokens_per_s > 0
    assert 0 < last.completion_tokens <= 16 and last.prompt_tokens > 10
    assert all(c.finish_reason is None for c in chunks[:-1])
    prompt = backend.tokenize(*backend.render(QUESTION)[:1], add_bos=False)
    ids = ov.Tensor(np.asarray([prompt], dtype=np.int64))
    theirs = backend._pipe.generate(ids, max_new_tokens=16, apply_chat_template=False)
    want = [t for t in theirs.tokens[0] if t not in backend._end_ids]
    assert text == backend.detokenize(want) and last.completion_tokens == len(want)


def test_same_seed_same_sample(backend):
    params = GenerationParams(temperature=0.9, seed=1234, max_tokens=10)
    first, _ = collect(backend.stream(QUESTION, params))
    again, _ = collect(backend.stream(QUESTION, params))
    assert first == again and first
    others = {collect(backend.stream(QUESTION, params.replace(seed=s)))[0] for s in range(4)}
    assert len(others) > 1, "the seed must reach OpenVINO's sampler"


def test_context_limit_is_ours(ir_dir):
    """OpenVINO accepts a prompt longer than the context silently: ours refuses it and sizes
    the answer so prompt and answer fit."""
    from runtime.openvino_backend import OpenVinoBackend

    b = OpenVinoBackend(describe(ir_dir), BackendOptions(n_ctx=64, n_threads=2))
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


def _link_folder(src: Path, dst: Path, skip: tuple[str, ...] = ()) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in skip:
            os.symlink(f.resolve(), dst / f.name)
    return dst


def test_ir_folder_answers_as_the_gguf_does(ir_dir, backend):
    """The IR folder OpenVINO wrote from the GGUF holds the same weights: the same greedy
    answer, and the template it keeps in its tokenizer renders the same prompt."""
    from runtime.openvino_backend import OpenVinoBackend

    b = OpenVinoBackend(describe(ir_dir), BackendOptions(n_threads=2))
    assert b.load().context_length == 8192
    assert b.render(QUESTION) == backend.render(QUESTION)
    ours, _ = collect(b.stream(QUESTION, GREEDY.replace(max_tokens=10)))
    want, _ = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=10)))
    assert ours == want and ours
    b.unload()


def test_ir_folder_without_template_is_a_base_model(ir_dir, tmp_path):
    from runtime.openvino_backend import OpenVinoBackend

    graphs = ("openvino_tokenizer.xml", "openvino_detokenizer.xml")  # both keep the template
    base = _link_folder(ir_dir, tmp_path / "base", skip=graphs)
    for name in graphs:
        xml = (ir_dir / name).read_text(encoding="utf-8")
        start = xml.index("<chat_template ")
        xml = xml[:start] + xml[xml.index("/>", start) + 2 :]
        (base / name).write_text(xml, encoding="utf-8")
    b = OpenVinoBackend(describe(base), BackendOptions(n_threads=2))
    assert not b.load().has_chat_template
    _, chunks = collect(b.stream(QUESTION, GREEDY.replace(max_tokens=6)))
    assert chunks[0].notice == BASE_MODEL_NOTICE and chunks[-1].finish_reason in ("stop", "length")
    prose, _ = collect(b.complete("The capital of France is", GREEDY.replace(max_tokens=4)))
    assert prose
    b.unload()


def test_truncated_weights_missing_tokenizer_damaged_graph_are_refused(ir_dir, tmp_path):
    short = _link_folder(ir_dir, tmp_path / "short", skip=("openvino_model.bin",))
    with open(ir_dir / "openvino_model.bin", "rb") as src:
        (short / "openvino_model.bin").write_bytes(src.read(1_000_000))
    with pytest.raises(InvalidModelFile, match=r"openvino_model\.bin is truncated"):
        describe(short)
    bare = _link_folder(ir_dir, tmp_path / "bare", skip=("openvino_tokenizer.bin",))
    with pytest.raises(InvalidModelFile, match="has no tokenizer"):
        describe(bare)
    graph = _link_folder(ir_dir, tmp_path / "graph", skip=("openvino_model.xml",))
    (graph / "openvino_model.xml").write_bytes((ir_dir / "openvino_model.xml").read_bytes()[:5000])
    with pytest.raises(InvalidModelFile, match="damaged"):
        describe(graph)


def test_damaged_weights_are_caught_by_the_recorded_hashes(ir_dir, tmp_path, fresh_home):
    """Random bytes in the weights load silently in OpenVINO; the hashes recorded at import
    stop the load with a plain sentence."""
    from models import Catalog, import_model
    from runtime.openvino_backend import OpenVinoBackend

    copy = _link_folder(ir_dir, tmp_path / "copy", skip=("openvino_model.bin",))
    shutil.copyfile(ir_dir / "openvino_model.bin", copy / "openvino_model.bin")
    catalog = Catalog()
    (rec,) = import_model(copy, mode="link", catalog=catalog)
    assert rec.provenance["files"]["openvino_model.bin"]
    with open(copy / "openvino_model.bin", "r+b") as fh:
        fh.seek(50_000_000)
        fh.write(np.random.default_rng(0).bytes(4096))
    describe(copy)  # same size: the structure still reads as whole
    with pytest.raises(InvalidModelFile, match=r"openvino_model\.bin .*changed since"):
        OpenVinoBackend(catalog.get(rec.id)).load()
    catalog.close()


def test_fireside_chat_runs_a_gguf_on_openvino(gguf):
    proc = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--model", str(gguf), "--backend", "openvino",
         "--temperature", "0", "--max-tokens", "8", "--stats", "What is the capital of France?"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() and "tokens/s" in proc.stderr
