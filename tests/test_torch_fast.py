"""The PyTorch engine's speed options (runtime/torch_fast.py) on the real SmolLM2 checkpoint:
the static KV cache gives eager's greedy tokens and keeps streaming, stop strings, cancel,
cache reuse and the context policy; a compiled decode step gives the same tokens; a compile
that fails falls back to eager in words, never a crash."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from backend_contract import (  # the same behaviour, now on the static cache
    QUESTION,
    collect,
    test_cancel_between_tokens_and_before_the_prompt,
    test_stop_string_cuts_the_answer,
)
from test_backends_torch import test_second_turn_with_reused_cache_equals_a_cold_start

from app.cli import build_parser
from app.commands.torch_speed import backend_extra
from models import describe
from runtime import GREEDY, BackendOptions
from runtime.errors import ContextOverflow, InvalidParameters

pytestmark = pytest.mark.slow
__all__ = [  # collected here again, against this module's static-cache ``backend``
    "test_cancel_between_tokens_and_before_the_prompt",
    "test_second_turn_with_reused_cache_equals_a_cold_start",
    "test_stop_string_cuts_the_answer",
]
# About 250 prompt tokens: the answer crosses the first static cache size (256) while decoding.
LONG = [{"role": "user", "content": "Here are some notes. " + "The tide rose at dawn. " * 34
         + "What rose at dawn?"}]  # fmt: skip


def load(checkpoint, **extra):
    from runtime.torch_backend import TorchBackend

    n_ctx = extra.pop("n_ctx", None)
    b = TorchBackend(describe(checkpoint), BackendOptions(device="cpu", n_ctx=n_ctx, extra=extra))
    b.load()
    return b


@pytest.fixture(scope="module")
def eager(hf_checkpoint):
    b = load(hf_checkpoint)
    yield b
    b.unload()


@pytest.fixture(scope="module")
def tiny(hf_checkpoint, tmp_path_factory):
    """A 2-layer random Llama (dynamo traces it in seconds, not minutes) and its eager run."""
    from tiny_models import build_tiny

    folder = tmp_path_factory.mktemp("fast") / "tiny-llama"
    build_tiny("LlamaForCausalLM", folder, hf_checkpoint, max_position_embeddings=1024)
    b = load(folder)
    yield folder, b
    b.unload()


@pytest.fixture(scope="module")
def backend(hf_checkpoint):
    b = load(hf_checkpoint, torch_static_cache=True)
    assert b.speed["static_cache"] and not b.speed["compile"]
    yield b
    b.unload()


def test_sdpa_attention_by_default(eager):
    assert eager.speed["attention"] == "sdpa"
    assert eager.speed["static_cache"] is False and eager.speed["compile"] is False


def test_static_cache_gives_eager_greedy_tokens_and_grows(eager, backend):
    params = GREEDY.replace(max_tokens=16)
    prompt = len(backend.prompt_tokens(LONG, params)[0])
    assert 200 < prompt < 256
    ours, chunks = collect(backend.stream(LONG, params))
    theirs, _ = collect(eager.stream(LONG, params))
    assert ours == theirs and chunks[-1].completion_tokens == 16
    assert backend.speed["cache_size"] == 512  # grew past 256 mid-answer, contents kept
    again, _ = collect(backend.stream(LONG, params))  # prefix reused from the grown cache
    assert again == ours


def test_static_cache_keeps_the_context_policy(hf_checkpoint):
    small = load(hf_checkpoint, torch_static_cache=True, n_ctx=252)
    try:
        history = [*LONG, {"role": "assistant", "content": "The tide."}]
        history.append({"role": "user", "content": "And what else?"})
        _, chunks = collect(small.stream(history, GREEDY.replace(max_tokens=4)))
        assert "did not fit the context" in (chunks[0].notice or "")
        assert chunks[-1].finish_reason in ("stop", "length")
        with pytest.raises(ContextOverflow):
            list(small.stream(history, GREEDY.replace(max_tokens=4, context_overflow="error")))
        _, chunks = collect(small.stream(LONG, GREEDY.replace(max_tokens=None)))
        assert chunks[-1].completion_tokens <= 252 - chunks[-1].prompt_tokens
        assert small.speed["cache_size"] == 252  # never beyond the context
    finally:
        small.unload()


def test_compiled_step_gives_eager_greedy_tokens(tiny):
    """The compile path end to end (dynamo tracing, static addresses, one graph per cache
    size), with dynamo's eager backend so the suite does not wait for inductor's C++
    (tests/perf/test_torch_fast_bench.py compiles SmolLM2 with inductor)."""
    folder, eager = tiny
    b = load(folder, torch_compile=True, torch_compile_backend="eager")
    try:
        assert b.speed["compile"] and b.speed["compile_failure"] is None
        assert list(b.speed["compiled_sizes"]) == [256]  # at load
        params = GREEDY.replace(max_tokens=16)
        text, chunks = collect(b.stream(LONG, params))
        assert "compiled the model for a 256-token cache" in (chunks[0].notice or "")
        assert text == collect(eager.stream(LONG, params))[0]
        assert "compiled the model for a 512-token cache" in (chunks[-1].notice or "")
        assert set(b.speed["compiled_sizes"]) == {256, 512} and b.speed["compile_s"] > 0
        assert not any(c.notice for c in b.stream(QUESTION, GREEDY.replace(max_tokens=4)))
    finally:
        b.unload()


def test_compile_failure_falls_back_to_eager_in_words(tiny, caplog):
    import torch._dynamo

    def broken(gm, example_inputs):
        raise RuntimeError("forced compile failure")

    if "fireside_broken" not in torch._dynamo.list_backends(exclude_tags=()):
        torch._dynamo.register_backend(broken, name="fireside_broken")
    with caplog.at_level(logging.WARNING, logger="runtime.torch_fast"):
        b = load(tiny[0], torch_compile=True, torch_compile_backend="fireside_broken")
    try:
        assert "torch.compile failed" in caplog.text and "forced compile failure" in caplog.text
        assert b.speed["compile"] is False and b.speed["compile_failure"]
        params = GREEDY.replace(max_tokens=12)
        text, chunks = collect(b.stream(QUESTION, params))
        notice = chunks[0].notice or ""
        assert "could not compile" in notice and "Error" not in notice
        assert text == collect(tiny[1].stream(QUESTION, params))[0]
    finally:
        b.unload()


def test_unknown_compile_backend_falls_back_and_bad_values_are_refused(tiny):
    b = load(tiny[0], torch_compile=True, torch_compile_backend="no-such-backend")
    try:
        assert b.speed["compile"] is False and "could not compile" in b.speed["compile_failure"]
    finally:
        b.unload()
    with pytest.raises(InvalidParameters, match="true or false"):
        load(tiny[0], torch_compile="yes")


def test_fireside_chat_static_cache_flag_reaches_the_engine(hf_checkpoint):
    """``--static-cache`` through the CLI and the engine process (``--compile`` travels the
    same way; compiling SmolLM2 with inductor is the benchmark's minute, not the suite's)."""
    proc = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--model", str(hf_checkpoint), "--temperature", "0",
         "--max-tokens", "8", "--static-cache", "What is the capital of France?"],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Paris" in proc.stdout
    args = build_parser().parse_args(["chat", "--compile", "hi"])
    assert backend_extra(args) == {"torch_compile": True}
