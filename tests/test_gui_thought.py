"""The window shows a reasoning model's thinking collapsed under its answer: a real answer
from a copy of the bundled model whose template opens ``<think>`` (DeepSeek-R1 style), so
the model's words arrive as the chunks' reasoning and go into the message's thought panel,
not its text; a click opens it."""

from __future__ import annotations

import contextlib

import pytest
from chat_templates import OPENED_THINK_TEMPLATE
from tool_model import home_with_tool_model

pytest_plugins = ("gui_fixtures",)
pytestmark = pytest.mark.slow


def test_the_thought_streams_into_a_collapsed_panel(qtbot, home, host, bundled_gguf, tmp_path):
    from app.gui.answer import Answer
    from app.gui.chatview import MessageWidget
    from app.gui.markdown import MarkdownRenderer
    from app.history import History
    from models import Catalog
    from runtime import GREEDY

    model = home_with_tool_model(home, bundled_gguf, tmp_path, OPENED_THINK_TEMPLATE, "r1")
    with contextlib.closing(Catalog()) as catalog:
        record = catalog.get(model)
    history = History()
    chat = history.create(model_id=model)
    widget = MessageWidget("assistant", 1, MarkdownRenderer())
    qtbot.addWidget(widget)
    widget.show()
    answer = Answer(
        host=host, history=history, record=record, conversation_id=chat.id,
        messages=[{"role": "user", "content": "What is two plus two?"}],
        params=GREEDY.replace(max_tokens=24), widget=widget,
    ).start()  # fmt: skip
    qtbot.waitUntil(lambda: answer.done, timeout=60_000)
    panel = widget.thought
    assert panel.isVisible() and len(panel.text.split()) > 3
    assert not panel.label.isVisible(), "collapsed until clicked"
    assert panel.toggle.text() == f"Thought for {len(panel.text.split())} words"
    assert not answer.text.strip() and "<think>" not in widget.text()  # all of it was thought
    panel.toggle.click()
    assert panel.label.isVisible() and panel.label.text() == panel.text.strip()
    history.close()
