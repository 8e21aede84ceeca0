"""The ``fireside`` command as a user runs it: real subprocesses, the real bundled model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

FIRESIDE = [sys.executable, "-m", "app"]
HEAVY = ("torch", "transformers", "mlx", "mlx_lm", "llama_cpp", "xllamacpp", "PySide6")


def run(*args, input=None, timeout=120):
    return subprocess.run(
        [*FIRESIDE, *args], input=input, capture_output=True, text=True, timeout=timeout
    )


def test_version():
    out = run("--version")
    assert out.returncode == 0
    assert out.stdout.strip().startswith("fireside 0.")


@pytest.mark.parametrize("args", [["--version"], ["models", "list"]])
def test_light_commands_import_no_heavy_framework(args):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if "|" in line
    }
    assert "app" in imported or "models" in imported  # the measurement itself worked
    assert not imported & set(HEAVY), f"heavy imports: {imported & set(HEAVY)}"


def test_models_list_shows_the_bundled_model():
    out = run("models", "list", "--json")
    assert out.returncode == 0, out.stderr
    ids = [m["id"] for m in json.loads(out.stdout)]
    assert "smollm2-135m" in ids
    table = run("models", "list")
    assert "smollm2-135m" in table.stdout and "Q4_1" in table.stdout


@pytest.mark.slow
def test_one_shot_chat_streams_an_answer():
    out = run(
        "chat",
        "What is the capital of France? Answer in one word.",
        "--temperature",
        "0",
        "--repeat-penalty",
        "1",
        "--max-tokens",
        "20",
    )
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_bad_parameter_is_a_clear_error():
    out = run("chat", "hi", "--temperature", "-1")
    assert out.returncode == 1
    assert "temperature must be between 0 and 5" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_model_is_a_clear_error():
    out = run("chat", "hi", "--model", "no-such-model")
    assert out.returncode == 1
    assert "no model called 'no-such-model'" in out.stderr


@pytest.mark.slow
def test_interactive_chat_keeps_history_and_exits():
    script = "My name is Zorblax.\nWhat is my name?\n/exit\n"
    out = run("chat", "--temperature", "0", "--max-tokens", "40", input=script, timeout=180)
    assert out.returncode == 0, out.stderr
    answers = out.stdout.split(">>> ")
    assert len(answers) >= 3, out.stdout
    assert "Zorblax" in answers[2], out.stdout


@pytest.mark.slow
def test_ctrl_c_stops_the_answer_but_not_the_chat():
    proc = subprocess.Popen(
        [*FIRESIDE, "chat", "--max-tokens", "2000", "--seed", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    out: list[str] = []
    reader = threading.Thread(
        target=lambda: out.extend(iter(lambda: proc.stdout.read(1), "")), daemon=True
    )
    reader.start()
    proc.stdin.write("Tell me a very long story about a lighthouse keeper.\n")
    proc.stdin.flush()
    deadline = time.time() + 120
    while len("".join(out).split(">>> ", 1)[-1]) < 40 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.stdin.write("/exit\n")
    proc.stdin.flush()
    proc.wait(timeout=60)
    err = proc.stderr.read()
    assert proc.returncode == 0, err
    assert "[stopped]" in err
    assert "Traceback" not in err


def test_data_directory_follows_fireside_home(tmp_path):
    env = {**os.environ, "FIRESIDE_HOME": str(tmp_path / "elsewhere")}
    proc = subprocess.run(
        [*FIRESIDE, "models", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert (tmp_path / "elsewhere" / "fireside.db").exists()


def test_chat_sampling_defaults_are_the_runtimes_and_its_help_says_them():
    """`fireside chat` leaves unset sampling options to GenerationParams (their one owner);
    the help's "default N" must say the same numbers, or a user is told the wrong ones."""
    import argparse

    from app.cli import build_parser
    from runtime import GenerationParams

    chat = next(
        action.choices["chat"]
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    said = {a.dest: a.help for a in chat._actions if a.help and a.help.startswith("default ")}
    assert set(said) == {"temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens"}
    defaults = GenerationParams()
    for dest, text in said.items():
        assert text == f"default {getattr(defaults, dest)}", (dest, text)
        assert chat.parse_args(["hi"]).__dict__[dest] is None
