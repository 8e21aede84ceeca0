"""``fireside chat`` with a reasoning model: the thinking is kept off stdout (one line on
stderr says how long it thought), shown on stderr with --show-thinking, and --no-think
asks the template to skip it. The model is a copy of the bundled one whose template opens
``<think>`` in the prompt (DeepSeek-R1 style), so the 135M model's words are thought."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from chat_templates import OPENED_THINK_TEMPLATE
from server_tools import ROOT
from tool_model import home_with_tool_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def thinker(tmp_path_factory, bundled_gguf):
    home = tmp_path_factory.mktemp("home")
    folder = tmp_path_factory.mktemp("m")
    model = home_with_tool_model(home, bundled_gguf, folder, OPENED_THINK_TEMPLATE, "r1")
    return home, model


def chat(home, model, *extra):
    env = dict(os.environ, FIRESIDE_HOME=str(home))
    out = subprocess.run(
        [sys.executable, "-m", "app", "chat", "--model", model, "--temperature", "0",
         "--max-tokens", "16", *extra, "What is two plus two?"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout, out.stderr


def test_thinking_is_hidden_shown_on_request_or_turned_off(thinker):
    home, model = thinker
    stdout, stderr = chat(home, model)
    assert not stdout.strip(), "the whole answer was thought: nothing of it on stdout"
    assert "[thought " in stderr and "--show-thinking" in stderr
    shown_out, shown_err = chat(home, model, "--show-thinking")
    assert not shown_out.strip() and len(shown_err.strip()) > 10  # the thought itself
    assert "[thought " not in shown_err
    plain, plain_err = chat(home, model, "--no-think")
    assert plain.strip() and "[thought " not in plain_err


def test_models_show_says_whether_a_model_thinks(thinker, capsys):
    from test_server import fireside_home

    from app.cli import main

    home, model = thinker
    for ident, expected in ((model, "thinking: yes (<think> blocks; can be turned off: "
                             "enable_thinking)"), ("smollm2-135m", "thinking: no")):  # fmt: skip
        with fireside_home(home):
            assert main(["models", "show", ident]) == 0
        assert expected in capsys.readouterr().out
