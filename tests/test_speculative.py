"""Speculative decoding on the llama.cpp engine with the real bundled model: n-gram (prompt
lookup) and a draft model, acceptance in the timings, and a draft of another vocabulary
refused in words before anything loads."""

from __future__ import annotations

import shutil

import pytest
from copy_prompt import MESSAGES, copied_lines

from models import describe
from models.gguf_vocab import read_vocabulary
from runtime import GREEDY, BackendOptions, InvalidParameters, ModelLoadError
from runtime.llamacpp import LlamaCppBackend

pytestmark = pytest.mark.slow


def _answer(bundled_gguf, max_tokens=60, stop=(), **options):
    b = LlamaCppBackend(
        describe(bundled_gguf), BackendOptions(n_ctx=1024, n_threads=1, n_parallel=1, **options)
    )
    info = b.load()
    try:
        chunks = list(b.stream(MESSAGES, GREEDY.replace(max_tokens=max_tokens, stop=stop)))
    finally:
        b.unload()
    return info, "".join(c.text for c in chunks), chunks[-1]


def test_ngram_speculation_answers_by_copying_and_reports_acceptance(bundled_gguf):
    info, text, last = _answer(bundled_gguf, speculate="ngram")
    assert info.speculation == "ngram"
    assert copied_lines(text) >= 3, text  # the lines it copies are the ones proposed
    assert 'settings["width"] = 1024' in text, text
    t = last.timings
    assert last.finish_reason in ("stop", "length") and last.completion_tokens > 20
    assert t.draft_tokens > 0 and 0 < t.accepted_tokens <= t.draft_tokens
    assert t.acceptance == t.accepted_tokens / t.draft_tokens
    assert t.generation_tokens_per_s > 0


def test_an_answer_ended_by_a_stop_string_still_counts_its_drafts(bundled_gguf):
    info, text, last = _answer(bundled_gguf, speculate="ngram", stop=('"width"',))
    assert last.finish_reason == "stop"
    assert text and '"width"' not in text  # cut before the stop string
    t = last.timings
    assert t.draft_tokens > 0 and 0 < t.accepted_tokens <= t.draft_tokens


def test_without_speculation_nothing_is_proposed(bundled_gguf):
    info, text, last = _answer(bundled_gguf, max_tokens=24)
    assert info.speculation == "off"
    assert last.timings.draft_tokens == 0 and last.timings.acceptance is None
    assert "def default_settings" in text


def test_the_model_as_its_own_draft_is_accepted_almost_always(bundled_gguf):
    info, text, last = _answer(bundled_gguf, max_tokens=24, draft=str(bundled_gguf))
    assert info.speculation == "draft"
    assert "def default_settings" in text
    t = last.timings
    assert t.draft_tokens > 0 and t.acceptance is not None and t.acceptance > 0.8


def _tiny_gguf_with_vocab(path, tokens):
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("Tiny other vocabulary")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _refusal(bundled_gguf, draft):
    b = LlamaCppBackend(describe(bundled_gguf), BackendOptions(n_ctx=512, draft=str(draft)))
    with pytest.raises(ModelLoadError) as err:
        b.load()
    assert b._server is None  # refused before llama.cpp loaded anything
    return str(err.value)


def test_a_draft_of_another_vocabulary_size_is_refused_in_words(bundled_gguf, tmp_path):
    draft = _tiny_gguf_with_vocab(tmp_path / "other.gguf", [f"t{i}" for i in range(300)])
    message = _refusal(bundled_gguf, draft)
    assert "vocabulary of 300 tokens" in message and "49,152" in message
    assert "same family" in message and "Error" not in message


def test_a_draft_that_spells_a_token_differently_is_refused(bundled_gguf, tmp_path):
    last = read_vocabulary(bundled_gguf).tokens[-1]
    draft = tmp_path / "respelled.gguf"
    shutil.copyfile(bundled_gguf, draft)
    raw = last.encode()
    with open(draft, "r+b") as fh:
        head = fh.read(8 * 1024 * 1024)
        at = head.rfind(b"\x00" + raw) + 1  # the last token's text, after its length prefix
        fh.seek(at)
        fh.write(raw[:-1] + (b"X" if raw[-1:] != b"X" else b"Y"))
    assert read_vocabulary(draft).size == read_vocabulary(bundled_gguf).size
    message = _refusal(bundled_gguf, draft)
    assert f"token {read_vocabulary(draft).size - 1}" in message
    assert "must share the model's vocabulary" in message


def test_a_draft_that_is_not_a_model_is_refused(bundled_gguf, tmp_path):
    junk = tmp_path / "notes.gguf"
    junk.write_bytes(b"not a model at all" * 10)
    message = _refusal(bundled_gguf, junk)
    assert message.startswith("the draft model cannot be used") and "GGUF" in message


def test_an_unknown_speculation_mode_is_refused_in_words():
    with pytest.raises(InvalidParameters, match="'off' or 'ngram'"):
        BackendOptions(speculate="faster")


def test_serve_with_ngram_reports_acceptance_in_the_timings(tmp_path):
    from openai import OpenAI
    from server_tools import start_server

    served = start_server(tmp_path / "logs", "--speculate", "ngram", "--threads", "1")
    try:
        client = OpenAI(base_url=served.base_url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(
            model="smollm2-135m", messages=MESSAGES, max_tokens=48, temperature=0
        )
        events = list(
            client.chat.completions.create(
                model="smollm2-135m",
                messages=MESSAGES,
                max_tokens=32,
                temperature=0,
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    finally:
        served.stop()
    usage_event = events[-1]
    assert usage_event.usage is not None and usage_event.usage.completion_tokens > 0
    streamed = (usage_event.model_extra or {})["timings"]
    assert streamed["draft_tokens"] > 0 and streamed["generation_tokens_per_s"] > 0
    assert "def default_settings" in reply.choices[0].message.content
    timings = (reply.model_extra or {})["timings"]
    assert timings["draft_tokens"] > 0 and 0 < timings["accepted_tokens"] <= timings["draft_tokens"]
    assert timings["acceptance"] == pytest.approx(
        timings["accepted_tokens"] / timings["draft_tokens"], abs=1e-4
    )


def test_chat_with_a_draft_of_another_vocabulary_says_why(tmp_path):
    import subprocess
    import sys

    draft = _tiny_gguf_with_vocab(tmp_path / "other.gguf", [f"t{i}" for i in range(300)])
    done = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--draft", str(draft), "Hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "must share the model's vocabulary" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "Error:" not in done.stderr


def test_speculation_asked_of_an_engine_without_it_is_told():
    import dataclasses

    from app.commands import speculation
    from runtime import ModelInfo

    torch_info = ModelInfo("m", "torch", 2048, True)  # engines other than llama.cpp: "off"
    assert speculation.unused(BackendOptions(speculate="ngram"), torch_info)
    assert speculation.unused(BackendOptions(draft="/models/small.gguf"), torch_info)
    assert not speculation.unused(BackendOptions(), torch_info)
    llama_info = dataclasses.replace(torch_info, backend="llama.cpp", speculation="ngram")
    assert not speculation.unused(BackendOptions(speculate="ngram"), llama_info)
    assert "GGUF" in speculation.UNUSED and "Error" not in speculation.UNUSED
