"""The real window, offscreen, end to end with the bundled model (pytest-qt).

One model host (and so one engine child) is shared by the tests of this module (a fresh
window each test), so the model is loaded once per module, not once per window.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
import pytestqt  # noqa: F401, E402  (the test extra has it; missing, the tests fail)
from gui_fixtures import OPTIONS  # noqa: E402
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.history import History  # noqa: E402
from app.settings import Settings, preset_params  # noqa: E402
from models import BUNDLED_ID  # noqa: E402
from runtime import ModelHost  # noqa: E402

pytest_plugins = ("gui_fixtures",)  # home, host
pytestmark = [pytest.mark.gui, pytest.mark.slow]

ANSWER_TIMEOUT_MS = 90_000
SHORT = {**preset_params("Deterministic"), "max_tokens": 8}
LONG = {**preset_params("Balanced"), "max_tokens": 3000, "seed": 3}


@pytest.fixture
def make_window(qtbot, home, host):
    from app.gui import theme
    from app.gui.window import MainWindow

    theme.apply(QApplication.instance())
    made = []

    def make(
        wait_ready: bool = True, own: ModelHost | None = None, fresh: bool = True
    ) -> MainWindow:
        window = MainWindow(host=own or host)
        qtbot.addWidget(window)
        window.show()
        window.activateWindow()
        assert QTest.qWaitForWindowActive(window, 5_000)
        made.append(window)
        if wait_ready:
            qtbot.waitUntil(lambda: window.session.ready_id is not None, timeout=60_000)
            if fresh:
                window.chat_page.new_chat()
        return window

    yield make
    for window in made:
        if not window.closing:
            window.close()


def ask(qtbot, window, text: str, params: dict | None = None) -> str:
    """Type ``text`` in the composer, press Enter, wait for the whole answer."""
    window.chat_page.apply_settings(
        {"system_prompt": "", "preset": None, "params": params or SHORT}
    )
    window.chat_page.composer.setFocus()
    qtbot.keyClicks(window.chat_page.composer, text)
    with qtbot.waitSignal(window.chat_page.answer_finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        qtbot.keyClick(window.chat_page.composer, Qt.Key.Key_Return)
    return blocker.args[0]


def start_long_answer(qtbot, window, text: str = "Tell me a long story about a fox.") -> None:
    window.chat_page.apply_settings({"system_prompt": "", "preset": None, "params": LONG})
    assert window.chat_page.send(text)
    qtbot.waitUntil(
        lambda: window.chat_page.answer is not None and len(window.chat_page.answer.parts) >= 4,
        timeout=ANSWER_TIMEOUT_MS,
    )


def stored(window):
    return window.ctx.history.messages(window.chat_page.conversation.id)


def test_send_streams_a_markdown_answer_and_keeps_its_numbers(qtbot, make_window):
    window = make_window()
    assert window.session.selected.id == BUNDLED_ID  # the bundled model is chosen on a first start
    window.chat_page.apply_settings(
        {"system_prompt": "", "preset": None, "params": {**SHORT, "max_tokens": 30}}
    )
    qtbot.keyClicks(window.chat_page.composer, "Write a Python function")
    qtbot.keyClick(window.chat_page.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(window.chat_page.composer, "that adds two numbers.")
    assert (
        window.chat_page.composer.toPlainText() == "Write a Python function\nthat adds two numbers."
    )

    flushes = []
    with qtbot.waitSignal(window.chat_page.answer_finished, timeout=ANSWER_TIMEOUT_MS) as blocker:
        qtbot.keyClick(window.chat_page.composer, Qt.Key.Key_Return)
        widget = window.chat_page.chat.messages[-1]
        widget.body.document().contentsChanged.connect(lambda: flushes.append(1))
    assert blocker.args[0] in ("stop", "length")
    assert window.chat_page.composer.toPlainText() == ""
    assert len(flushes) >= 3, "the answer should appear piece by piece, not at once"

    messages = stored(window)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[0].content == "Write a Python function\nthat adds two numbers."
    answer = messages[1]
    assert answer.content.strip() and answer.finish_reason in ("stop", "length")
    assert answer.time_to_first_token_s > 0 and answer.tokens_per_s > 0
    assert answer.completion_tokens > 1 and answer.model_id == BUNDLED_ID
    widget = window.chat_page.chat.messages[-1]
    assert widget.text() == answer.content
    assert "tokens/s" in widget.stats.text() and "first token" in widget.stats.text()
    assert window.chat_page.conversation.title.startswith("Write a Python function")
    assert window.chat_page.meter.used == answer.prompt_tokens + answer.completion_tokens
    assert "Context:" in window.chat_page.meter.label.text()
    assert "```" in answer.content  # greedy: the model answers with a code block
    assert widget.body.code  # highlighted, with a working copy link
    widget.body.anchorClicked.emit(QUrl("copy:0"))
    assert QGuiApplication.clipboard().text() == widget.body.code[0]


def test_stop_keeps_what_was_written(qtbot, make_window):
    window = make_window()
    start_long_answer(qtbot, window)
    assert window.chat_page.send_button.text() == "Stop"
    with qtbot.waitSignal(window.chat_page.answer_finished, timeout=30_000) as blocker:
        qtbot.keyClick(window.chat_page.composer, Qt.Key.Key_Escape)
    assert blocker.args[0] == "cancelled"
    answer = stored(window)[-1]
    assert answer.role == "assistant" and answer.finish_reason == "cancelled"
    assert answer.content == window.chat_page.chat.messages[-1].text() and answer.content.strip()
    assert "stopped" in window.chat_page.chat.messages[-1].stats.text()
    assert window.chat_page.send_button.text() == "Send"


def test_regenerate_and_edit_and_resend(qtbot, make_window):
    window = make_window()
    assert ask(qtbot, window, "What is the capital of France?") in ("stop", "length")
    assert ask(qtbot, window, "And of Italy?") in ("stop", "length")
    before = stored(window)
    assert len(before) == 4

    # regenerate: the last answer is replaced, the rest stays
    assert window.chat_page.chat.messages[-1].regenerate_button.isVisibleTo(window)
    with qtbot.waitSignal(window.chat_page.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        qtbot.mouseClick(
            window.chat_page.chat.messages[-1].regenerate_button, Qt.MouseButton.LeftButton
        )
    after = stored(window)
    assert len(after) == 4 and after[:3] == before[:3]
    assert after[3].id != before[3].id and after[3].content.strip()

    # edit and resend the first question: it and everything after it are replaced
    qtbot.mouseClick(window.chat_page.chat.messages[0].edit_button, Qt.MouseButton.LeftButton)
    assert window.chat_page.composer.toPlainText() == "What is the capital of France?"
    assert window.chat_page.edit_banner.isVisible()
    window.chat_page.composer.setPlainText("What is the capital of Spain?")
    with qtbot.waitSignal(window.chat_page.answer_finished, timeout=ANSWER_TIMEOUT_MS):
        qtbot.keyClick(window.chat_page.composer, Qt.Key.Key_Return)
    edited = stored(window)
    assert [m.role for m in edited] == ["user", "assistant"]
    assert edited[0].content == "What is the capital of Spain?"
    assert [w.role for w in window.chat_page.chat.messages] == ["user", "assistant"]
    assert window.chat_page.chat.messages[0].text() == "What is the capital of Spain?"
    assert not window.chat_page.edit_banner.isVisible()


def test_conversations_switch_rename_search_delete(qtbot, make_window):
    window = make_window()
    ask(qtbot, window, "Name a colour of the sky.")
    first = window.chat_page.conversation.id
    window.activateWindow()  # shortcuts go to the active window
    assert QTest.qWaitForWindowActive(window, 5_000)
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # Ctrl+N
    assert window.chat_page.conversation is None and not window.chat_page.chat.messages
    ask(qtbot, window, "Name a kind of tree.")
    second = window.chat_page.conversation.id
    assert second != first

    def item_for(conv_id):
        for i in range(window.chat_page.conversations.list.count()):
            item = window.chat_page.conversations.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == conv_id:
                return item
        return None

    # switch by clicking in the sidebar
    rect = window.chat_page.conversations.list.visualItemRect(item_for(first))
    qtbot.mouseClick(
        window.chat_page.conversations.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center()
    )
    assert window.chat_page.conversation.id == first
    assert window.chat_page.chat.messages[0].text() == "Name a colour of the sky."
    assert len(window.chat_page.chat.messages) == 2

    # rename in place
    item_for(first).setText("Sky colours")
    assert window.ctx.history.get(first).title == "Sky colours"

    # search matches titles and message text
    window.chat_page.conversations.search.setText("tree")
    ids = [
        window.chat_page.conversations.list.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(window.chat_page.conversations.list.count())
    ]
    assert second in ids and first not in ids
    window.chat_page.conversations.search.setText("sky colo")
    assert item_for(first) is not None and item_for(second) is None
    window.chat_page.conversations.search.clear()

    window.chat_page.delete_conversation(first)
    assert not window.ctx.history.exists(first)
    assert window.chat_page.conversation is None and not window.chat_page.chat.messages
    assert item_for(first) is None and item_for(second) is not None


def drop(window, path: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    enter = QDragEnterEvent(
        QPoint(200, 200),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QDropEvent(
        QPointF(200, 200),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, event)


def test_drop_a_real_gguf_copies_and_selects_it(qtbot, make_window, bundled_gguf, tmp_path):
    window = make_window()
    try:
        _drop_real_gguf(qtbot, window, bundled_gguf, tmp_path)
    finally:  # back to the bundled model for the other tests
        with qtbot.waitSignal(window.session.ready, timeout=60_000):
            window.session.choose(BUNDLED_ID)


def _drop_real_gguf(qtbot, window, bundled_gguf, tmp_path):
    source = tmp_path / "dropped" / "my-model.gguf"
    source.parent.mkdir()
    shutil.copyfile(bundled_gguf, source)
    before = {r.id for r in window.ctx.catalog.list()}
    drop(window, source)
    dialog = window.jobs.import_dialog
    qtbot.waitExposed(dialog)
    with qtbot.waitSignal(window.session.ready, timeout=60_000) as ready:
        qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    new = [r for r in window.ctx.catalog.list() if r.id not in before]
    assert len(new) == 1 and ready.args[0].id == new[0].id
    record = new[0]
    assert record.owned and Path(record.path).is_file()
    assert Path(record.path).resolve() != source.resolve()  # a copy in the library
    assert (
        window.session.selected.id == record.id
        and window.chat_page.model_bar.combo.currentData() == record.id
    )
    assert "Added" in window.banner.text()
    ask(qtbot, window, "Hi!")
    assert stored(window)[-1].model_id == record.id


def test_drop_a_corrupt_file_explains_and_adds_nothing(qtbot, make_window, tmp_path):
    window = make_window()
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    before = window.ctx.catalog.list()
    drop(window, bad)
    qtbot.waitExposed(window.jobs.import_dialog)
    with qtbot.waitSignal(window.jobs.import_done, timeout=30_000) as done:
        qtbot.mouseClick(window.jobs.import_dialog.link_button, Qt.MouseButton.LeftButton)
    assert isinstance(done.args[0], Exception)
    text = window.banner.text()
    assert "broken.gguf" in text and "Nothing was added" in text
    assert "Traceback" not in text
    assert window.ctx.catalog.list() == before
    assert window.session.ready_id == BUNDLED_ID  # the loaded model is untouched
    assert bad.read_bytes()[:4] == b"GGUF"  # the user's file is untouched


def test_killing_the_engine_mid_answer_keeps_the_conversation(qtbot, make_window):
    own = ModelHost(idle_unload_s=None, options=OPTIONS)  # killed here; the shared one stays
    try:
        window = make_window(own=own)
        ask(qtbot, window, "Say one word.")
        start_long_answer(qtbot, window)
        (pid,) = window.engine_pids()
        with qtbot.waitSignal(window.chat_page.answer_finished, timeout=30_000) as blocker:
            os.kill(pid, signal.SIGKILL)
        assert blocker.args[0] == "error"
        assert "SIGKILL" in window.banner.text() and "conversation is safe" in window.banner.text()
        messages = stored(window)
        assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
        assert messages[-1].finish_reason == "error" and messages[-1].content.strip()
        assert window.chat_page.chat.messages[-1].load_again_button.isVisibleTo(window)
        assert window.session.ready_id is None
        assert not window.chat_page.send("Are you there?")  # nothing is sent to a dead engine

        with qtbot.waitSignal(window.session.ready, timeout=60_000):
            qtbot.mouseClick(window.banner.action, Qt.MouseButton.LeftButton)
        assert ask(qtbot, window, "Are you back?") in ("stop", "length")
        assert len(stored(window)) == 6
    finally:
        own.close()


def test_cancel_loading_then_load_again(qtbot, make_window):
    own = ModelHost(idle_unload_s=None, options=OPTIONS)
    try:
        window = make_window(wait_ready=False, own=own)
        qtbot.waitUntil(lambda: window.session.loading, timeout=30_000)
        with qtbot.waitSignal(window.session.load_failed, timeout=30_000) as failed:
            qtbot.mouseClick(window.chat_page.model_bar.task_cancel, Qt.MouseButton.LeftButton)
        assert failed.args[2] is True
        assert window.session.ready_id is None and "cancelled" in window.banner.text()
        with qtbot.waitSignal(window.session.ready, timeout=60_000):
            qtbot.mouseClick(window.banner.action, Qt.MouseButton.LeftButton)
        assert window.session.ready_id == BUNDLED_ID
        assert len(window.engine_pids()) == 1  # the cancelled load left no child behind
    finally:
        own.close()


def test_restart_finds_history_size_and_last_conversation(qtbot, make_window):
    window = make_window()
    ask(qtbot, window, "Remember the word lantern.")
    conv_id = window.chat_page.conversation.id
    window.resize(900, 640)
    window.close()  # saves the state

    again = make_window(fresh=False)
    qtbot.waitUntil(lambda: again.chat_page.conversation is not None, timeout=10_000)
    assert again.chat_page.conversation.id == conv_id
    assert again.chat_page.chat.messages[0].text() == "Remember the word lantern."
    assert len(again.chat_page.chat.messages) == 2
    assert (again.width(), again.height()) == (900, 640)
    assert Settings().get("last_conversation") == conv_id
    History().close()


def test_context_meter_warns(qtbot, make_window):
    window = make_window()
    window.chat_page.meter.show_use(500, 1000)
    assert window.chat_page.meter.bar.property("level") == "ok"
    window.chat_page.meter.show_use(850, 1000)
    assert window.chat_page.meter.bar.property("level") == "warn"
    assert "nearly full" in window.chat_page.meter.label.text()
    window.chat_page.meter.show_use(1000, 1000)
    assert window.chat_page.meter.bar.property("level") == "full"
    assert "left out" in window.chat_page.meter.label.text()


def test_library_scan_rename_remove(qtbot, make_window, bundled_gguf, tmp_path, monkeypatch):
    home = tmp_path / "user"
    lmstudio = home / ".lmstudio" / "models" / "someone" / "tiny-GGUF"
    lmstudio.mkdir(parents=True)
    found = lmstudio / "tiny-q4.gguf"
    try:
        os.link(bundled_gguf, found)
    except OSError:
        shutil.copyfile(bundled_gguf, found)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf"))
    monkeypatch.setenv("OLLAMA_MODELS", str(home / "ollama"))

    window = make_window()
    window.show_page("models")
    library = window.models_page
    assert library.isVisible() and library.table.rowCount() == len(window.ctx.catalog.list())
    qtbot.waitUntil(lambda: library.table.item(0, 6).text() in ("fits", "tight", "won't fit"))
    qtbot.mouseClick(library.scan_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "found 1 new model" in window.banner.text(), timeout=30_000)
    record = window.ctx.catalog.find_by_path(found)
    assert record is not None and record.source == "discovered" and not record.owned
    library.select(record.id)
    assert library.selected_id() == record.id

    item = library.table.item(library.table.currentRow(), 0)
    item.setText("My tiny model")  # what editing the cell in place does
    assert window.ctx.catalog.get(record.id).name == "My tiny model"
    assert any(
        window.chat_page.model_bar.combo.itemText(i).startswith("My tiny model")
        for i in range(window.chat_page.model_bar.combo.count())
    )

    window.jobs.remove(record.id)  # what "Remove" does once confirmed
    assert window.ctx.catalog.find_by_path(found) is None
    assert found.is_file()  # a discovered model's files are never deleted
    assert "left where they are" in library.message.text()
    window.jobs.remove(BUNDLED_ID)  # refused in plain words
    assert "cannot be removed" in window.banner.text()
    assert window.ctx.catalog.get(BUNDLED_ID)


def test_leaving_a_chat_mid_answer_keeps_that_answer_there(qtbot, make_window):
    window = make_window()
    start_long_answer(qtbot, window, "Tell me about the sea.")
    first = window.chat_page.conversation.id
    with qtbot.waitSignal(window.chat_page.answer_finished, timeout=30_000) as blocker:
        window.chat_page.new_chat()
    assert blocker.args[0] == "cancelled"
    assert (
        window.chat_page.conversation is None and not window.chat_page.chat.messages
    )  # nothing leaked here
    messages = window.ctx.history.messages(first)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].finish_reason == "cancelled" and messages[1].content.strip()
    window.chat_page.open_conversation(first)
    assert window.chat_page.chat.messages[-1].text() == messages[1].content


def test_a_dropped_checkpoint_goes_on_to_the_convert_page(qtbot, make_window, hf_checkpoint):
    from models.records import HF_FORMATS

    window = make_window()
    window.show_page("convert")  # dropped here, a checkpoint is the source at once
    with qtbot.waitSignal(window.convert_page.source_changed, timeout=30_000) as chosen:
        drop(window, hf_checkpoint)
    assert Path(chosen.args[0]) == hf_checkpoint and window.jobs.import_dialog is None
    assert window.convert_page.can_start()

    window.show_page("chat")  # elsewhere, the drop offers to add it, then convert it
    drop(window, hf_checkpoint)
    dialog = window.jobs.import_dialog
    qtbot.waitExposed(dialog)
    assert dialog.convert_box.isVisibleTo(dialog)
    dialog.convert_box.setChecked(True)
    with qtbot.waitSignal(window.jobs.import_done, timeout=60_000):
        qtbot.mouseClick(dialog.link_button, Qt.MouseButton.LeftButton)
    record = window.ctx.catalog.find_by_path(hf_checkpoint)
    assert record is not None and record.format in HF_FORMATS
    assert window.current_page() == "convert"
    assert window.convert_page.source_id == record.id and window.convert_page.can_start()
    assert window.session.ready_id == BUNDLED_ID  # the chat's model is untouched

    window.show_page("models")
    window.models_page.select(record.id)
    assert window.models_page.convert_button.isEnabled()
    window.models_page.select(BUNDLED_ID)
    assert not window.models_page.convert_button.isEnabled()  # a GGUF is converted already
    window.jobs.remove(record.id)  # linked: the checkpoint's files stay
    assert (hf_checkpoint / "config.json").is_file()


def test_the_downloads_page_counts_in_the_sidebar(qtbot, make_window):
    """Offline (the suite's default), a queued download waits; the sidebar shows how many."""
    window = make_window(wait_ready=False)
    qtbot.waitUntil(lambda: window.ctx.offline, timeout=5_000)

    def label() -> str:
        rows = [window.nav.item(i) for i in range(window.nav.count())]
        return next(r.text() for r in rows if r.data(Qt.ItemDataRole.UserRole) == "downloads")

    assert label() == "Downloads"
    entry_id = window.downloads.enqueue("someone/tiny-GGUF", "Q4_K_M")
    qtbot.waitUntil(lambda: label() == "Downloads  (1)", timeout=5_000)
    assert "queued" in window.banner.text() and "offline mode" in window.banner.text()
    window.downloads.cancel(entry_id)
    qtbot.waitUntil(lambda: label() == "Downloads", timeout=5_000)
    window.downloads.remove(entry_id)
