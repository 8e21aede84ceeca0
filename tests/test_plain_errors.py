"""Every error a person meets on the command line is a sentence: never a Python class name
or a traceback. Each case is a real ``fireside`` run with a mistake in it (a missing model,
a bad file, a bad value, the network while offline), checked for what the user reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|Traceback")


@pytest.fixture(scope="module")
def mistakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mistakes")
    (root / "empty").mkdir()
    (root / "bad.gguf").write_bytes(b"GGUF\x03\x00\x00\x00garbage")
    (root / "nested").mkdir()
    (root / "nested" / "config.json").write_text('{"architectures": ["GPT2LMHeadModel"]}')
    return {"root": root, "home": tmp_path_factory.mktemp("home")}


CASES = [
    (["chat", "--model", "nonexistent", "hi"], "no model called"),
    (["chat", "--ctx", "-5", "hi"], "context length"),
    (["chat", "--temperature", "-1", "hi"], "temperature"),
    (["chat", "--model", "{root}/bad.gguf", "hi"], "bad.gguf"),
    (["models", "show", "nonexistent"], "no model called"),
    (["models", "fit", "nonexistent"], "no model called"),
    (["models", "rename", "nonexistent", "x"], "no model called"),
    (["models", "remove", "nonexistent"], "no model called"),
    (["models", "import", "{root}/bad.gguf"], "bad.gguf"),
    (["models", "add-remote", "x", "notaurl"], "not an http"),
    (["convert", "/nonexistent", "--to", "gguf-q8_0"], "neither a folder"),
    (["convert", "{root}/empty", "--to", "gguf-q8_0"], "no config.json"),
    (["convert", "{root}/nested", "--to", "gguf-q8_0"], "no weights"),
    (["convert", "{root}/empty", "--to", "gguf-q9"], "unknown output type"),
    (["convert", "{root}/empty", "--to", "openvino-int8"], "does not convert to OpenVINO"),
    (["pull", "someone/repo"], "offline mode is on"),
    (["search", "smol"], "offline mode is on"),
    (["serve", "--port", "99999"], "port"),
    (["serve", "--parallel", "0"], "parallel"),
]


@pytest.mark.parametrize(("args", "says"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_cli_mistakes_are_told_in_words(mistakes, args, says):
    argv = [a.format(root=mistakes["root"]) for a in args]
    env = {**os.environ, "FIRESIDE_HOME": str(mistakes["home"]), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "app", *argv], capture_output=True, text=True, env=env, timeout=120
    )
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert says in text, text
    assert not CLASS_NAME.search(text), text
