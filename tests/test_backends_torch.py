"""The PyTorch backend on the real SmolLM2 checkpoint (CPU, float32), in this process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from backend_contract import (
    QUESTION,
    collect,
    test_cancel_between_tokens_and_before_the_prompt,
    test_max_tokens_gives_length,
    test_stop_string_cuts_the_answer,
)

from models import InvalidModelFile, describe
from runtime import GREEDY, BackendOptions, GenerationParams
from runtime.errors import BackendUnavailable

pytestmark = pytest.mark.slow
__all__ = [  # the tests every engine passes alike (tests/backend_contract.py), run here
    "test_cancel_between_tokens_and_before_the_prompt",
    "test_max_tokens_gives_length",
    "test_stop_string_cuts_the_answer",
]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def backend(hf_checkpoint):
    from runtime.torch_backend import TorchBackend

    b = TorchBackend(describe(hf_checkpoint), BackendOptions(device="cpu"))
    steps: list[tuple[int, int]] = []
    b.load(lambda d, t: steps.append((d, t)))
    assert steps[0] == (0, 3) and steps[-1] == (3, 3)
    yield b
    b.unload()


def test_load_reports_device_dtype_context_and_template(backend):
    info = backend.info
    assert (info.backend, info.device) == ("torch", "cpu")
    assert backend.dtype == "float32"  # fp32 on the CPU unless asked
    assert info.context_length == 8192 and info.has_chat_template


def test_prompt_is_rendered_like_transformers_renders_it(backend):
    """Our sandboxed render of the tokenizer's template equals transformers' own."""
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Name a colour."},
    ]
    ours, add_bos = backend.render(messages)
    theirs = backend.tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert ours == theirs
    tokens = backend.tokenize(ours, add_bos=add_bos)
    assert tokens == backend.tokenizer.encode(theirs, add_special_tokens=False)
    assert tokens.count(1) == 5  # <|im_start|>: one special token per turn, not text


def test_greedy_answer_streams_in_pieces_with_timings(backend):
    text, chunks = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=16)))
    assert "Paris" in text
    assert len([c for c in chunks if c.text]) > 3, "the answer must arrive token by token"
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length")
    assert last.timings is not None and last.timings.generation_tokens_per_s > 0
    assert 0 < last.completion_tokens <= 16 and last.prompt_tokens > 10
    assert all(c.finish_reason is None for c in chunks[:-1])


def test_same_seed_same_sample_and_cache_reuse_changes_nothing(backend):
    params = GenerationParams(temperature=0.9, seed=1234, max_tokens=10)
    first, _ = collect(backend.stream(QUESTION, params))
    again, _ = collect(backend.stream(QUESTION, params))  # prompt prefix reused from the cache
    backend.reset_cache()
    cold, _ = collect(backend.stream(QUESTION, params))
    assert first == again == cold
    other, _ = collect(backend.stream(QUESTION, params.replace(seed=99)))
    assert other  # a different seed still answers (usually differently; not asserted)


def test_second_turn_with_reused_cache_equals_a_cold_start(backend):
    turn1, _ = collect(backend.stream(QUESTION, GREEDY.replace(max_tokens=10)))
    history = [*QUESTION, {"role": "assistant", "content": turn1}]
    history.append({"role": "user", "content": "And of Germany?"})
    warm, _ = collect(backend.stream(history, GREEDY.replace(max_tokens=10)))
    backend.reset_cache()
    cold, _ = collect(backend.stream(history, GREEDY.replace(max_tokens=10)))
    assert warm == cold and "Berlin" in warm


def test_sampler_respects_top_k_min_p_and_repeat_penalty():
    import torch

    from runtime.torch_backend import sample_token

    logits = torch.tensor([5.0, 4.0, 1.0, 0.5, -2.0])
    gen = torch.Generator().manual_seed(0)
    params = GenerationParams(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0, repeat_penalty=1.0)
    seen = {sample_token(logits.clone(), params, [], gen) for _ in range(200)}
    assert seen == {0, 1}
    params = params.replace(top_k=0, min_p=0.2)  # p(1)/p(0) = e^-1 = 0.37 kept; e^-4 not
    seen = {sample_token(logits.clone(), params, [], gen) for _ in range(200)}
    assert seen == {0, 1}
    greedy = GREEDY.replace(repeat_penalty=2.0)  # 5/2 = 2.5 < 4: token 1 wins once 0 repeats
    assert sample_token(logits.clone(), greedy, [], gen) == 0
    assert sample_token(logits.clone(), greedy, [0], gen) == 1


def test_device_that_is_not_there_is_a_plain_error(hf_checkpoint):
    import torch

    from runtime.torch_backend import TorchBackend

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    b = TorchBackend(describe(hf_checkpoint), BackendOptions(device="cuda"))
    with pytest.raises(BackendUnavailable, match="cannot use CUDA"):
        b.load()


def test_corrupt_weights_are_refused_before_torch_reads_them(hf_checkpoint, tmp_path):
    from runtime.torch_backend import TorchBackend

    bad = tmp_path / "broken"
    bad.mkdir()
    for f in hf_checkpoint.iterdir():
        if f.name != "model.safetensors" and f.is_file():
            shutil.copy(f, bad / f.name)
    with open(hf_checkpoint / "model.safetensors", "rb") as src:
        (bad / "model.safetensors").write_bytes(src.read(1_000_000))  # truncated
    record = describe(hf_checkpoint).replace(path=str(bad))
    with pytest.raises(InvalidModelFile, match="truncated"):
        TorchBackend(record).load()


def test_fireside_chat_runs_a_hf_folder_through_the_engine(hf_checkpoint):
    """Dispatch end to end: a Hugging Face folder goes to PyTorch in the engine process."""
    proc = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--model", str(hf_checkpoint), "--temperature", "0",
         "--max-tokens", "8", "--stats", "What is the capital of France?"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Paris" in proc.stdout
    assert "tokens/s" in proc.stderr


def test_gpu_check_script_runs_with_only_torch_and_transformers(hf_checkpoint, tmp_path):
    """tests/gpu_check.py as the lead runs it on a GPU machine, here with --device cpu and
    with our other dependencies made unimportable (transformers' own, such as
    huggingface_hub, stay: a machine with transformers has them)."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(  # a None entry in sys.modules reads as "not installed"
        "import sys\n"
        "for name in ('jinja2', 'platformdirs', 'psutil', 'mlx', 'mlx_lm', 'llama_cpp', 'xllamacpp',\n"
        "             'gguf',\n"
        "             'fastapi', 'uvicorn', 'PySide6', 'pytest', 'hypothesis', 'openai'):\n"
        "    sys.modules[name] = None\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "gpu_check.py"), str(hf_checkpoint),
         "--device", "cpu", "--tokens", "8"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert report["device"] == "cpu" and report["streamed_tokens"] >= 1
    assert report["kl_mean"] < 1e-3 and report["top1_agreement"] >= 0.95
    assert report["template"].startswith("plain prompt")  # jinja2 was blocked
