"""Streamed Markdown: finished blocks are rendered as they complete, code can be copied."""

from __future__ import annotations

import pytest
import pytestqt  # noqa: F401, E402  (the test extra has it; missing, the tests fail)
from PySide6.QtCore import QUrl  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402

from app.gui.chatview import MessageBody  # noqa: E402
from app.gui.markdown import BlockSplitter, MarkdownRenderer  # noqa: E402

pytestmark = pytest.mark.gui

ANSWER = (
    "Here is **a function**:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
    "And a list:\n\n- one\n- two\n\nDone with `add`."
)


def tokens(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_streamed_markdown_renders_blocks_as_they_finish(qtbot):
    body = MessageBody(MarkdownRenderer())
    qtbot.addWidget(body)
    body.resize(500, 100)
    body.show()
    body.begin_stream()
    code_seen_at = None
    for i, piece in enumerate(tokens(ANSWER)):
        body.append(piece)
        if body.code and code_seen_at is None:
            code_seen_at = i
    # the code block was rendered (highlighted, numbered) while the answer still streamed
    assert code_seen_at is not None and code_seen_at < len(tokens(ANSWER)) - 5
    assert body.code == ["def add(a, b):\n    return a + b\n"]
    assert "**" not in body.toPlainText()  # the first paragraph was rendered, not left raw
    assert body.streamed_text() == ANSWER
    text = body.end_stream()
    assert text == ANSWER and body.source == ANSWER
    plain = body.toPlainText()
    assert "a function" in plain and "**" not in plain and "```" not in plain
    assert "Copy" in plain and "python" in plain
    body.anchorClicked.emit(QUrl("copy:0"))
    assert QGuiApplication.clipboard().text() == "def add(a, b):\n    return a + b\n"
    assert body.height() > 100  # grew to fit its content


def test_model_html_is_shown_as_text_never_as_markup():
    html = MarkdownRenderer().render("<script>alert(1)</script> <b>x</b>").html
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html


def test_splitter_never_cuts_inside_a_code_fence():
    s = BlockSplitter()
    for piece in ["Intro\n", "\n", "```\n", "a\n\n", "b\n"]:
        s.feed(piece)
    assert s.boundary == len("Intro\n\n")  # the blank line inside the fence is not a cut
    s.feed("```\n")
    assert s.text[: s.boundary].endswith("```\n")
    assert s.take().endswith("b\n```\n") and s.text == ""
