"""The window's local API switch and offline-mode item, offscreen, with the bundled model.

The server answers through the window's own ModelHost: the model the window loaded is the
one the API uses, in the same engine child (no second process, no second load).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import httpx
import psutil
import pytest
import pytestqt  # noqa: F401, E402  (the test extra has it; missing, the tests fail)
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.settings import Settings, preset_params  # noqa: E402
from models import BUNDLED_ID  # noqa: E402

pytest_plugins = ("gui_fixtures",)  # home, host
pytestmark = [pytest.mark.gui, pytest.mark.slow]

QUESTION = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture
def make_window(qtbot, home, host):
    from app.gui import theme
    from app.gui.window import MainWindow

    theme.apply(QApplication.instance())
    made = []

    def make(wait_ready: bool = True) -> MainWindow:
        window = MainWindow(host=host)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        if wait_ready:
            qtbot.waitUntil(lambda: window.session.ready_id is not None, timeout=60_000)
        return window

    yield make
    for window in made:
        if not window.closing:
            window.close()


def engine_children() -> set[int]:
    """Child processes started by multiprocessing's spawn (engine children) of this process."""
    found = set()
    for child in psutil.Process().children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.Error:
            pass
    return found


def start_serving(qtbot, window) -> str:
    with qtbot.waitSignal(window.server.changed, timeout=30_000) as started:
        window.server_action.trigger()
    return started.args[0]


def test_server_switch_serves_the_loaded_model_from_the_same_engine(qtbot, make_window):
    window = make_window()
    window.ctx.settings.set("server_port", 0)  # any free port
    (before,) = window.ctx.host.status()
    assert before.loaded and before.pid
    children = engine_children()
    assert before.pid in children

    base = start_serving(qtbot, window)
    assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")  # loopback by default
    assert window.server_action.isChecked() and window.server_action.isEnabled()
    assert window.statusBar().isVisible() and base in window.server_button.text()
    dialog = window.server_page
    assert window.current_page() == "server" and dialog.isVisible()
    snippet = dialog.snippet.toPlainText()
    assert f"{base}/chat/completions" in snippet and f'"{BUNDLED_ID}"' in snippet
    qtbot.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == snippet

    models = httpx.get(f"{base}/models", timeout=10).json()
    assert BUNDLED_ID in [m["id"] for m in models["data"]]
    reply = httpx.post(
        f"{base}/chat/completions",
        json={"model": BUNDLED_ID, "messages": QUESTION, "temperature": 0, "max_tokens": 6},
        timeout=90,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"].strip()
    assert body["usage"]["completion_tokens"] > 0

    if shutil.which("curl") and shutil.which("sh"):  # the snippet works as pasted
        curl = snippet.split("\n\n")[0]
        assert curl.startswith("curl ")
        pasted = subprocess.run(["sh", "-c", curl], capture_output=True, text=True, timeout=120)
        assert pasted.returncode == 0, pasted.stderr
        assert json.loads(pasted.stdout)["choices"][0]["message"]["content"].strip()

    # the same engine answered: one model loaded, the same child, no new process
    (after,) = window.ctx.host.status()
    assert after.loaded and after.pid == before.pid
    assert engine_children() == children

    # the window still chats, through that engine
    window.chat_page.new_chat()
    window.chat_page.apply_settings(
        {
            "system_prompt": "",
            "preset": None,
            "params": {**preset_params("Deterministic"), "max_tokens": 6},
        }
    )
    with qtbot.waitSignal(window.chat_page.answer_finished, timeout=90_000) as answered:
        assert window.chat_page.send("What is 2+2?")
    assert answered.args[0] in ("stop", "length")
    assert window.ctx.history.messages(window.chat_page.conversation.id)[-1].content.strip()

    with qtbot.waitSignal(window.server.changed, timeout=30_000) as stopped:
        window.server_action.trigger()
    assert stopped.args[0] == ""
    assert not window.server_action.isChecked() and window.server.server is None
    assert not window.server_button.isVisibleTo(window)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/models", timeout=2)
    (kept,) = window.ctx.host.status()  # the window's model stays loaded
    assert kept.loaded and kept.pid == before.pid


def test_a_busy_port_is_explained_and_closing_the_window_stops_the_server(qtbot, make_window):
    window = make_window()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        window.ctx.settings.set("server_port", taken.getsockname()[1])
        with qtbot.waitSignal(window.server.changed, timeout=30_000) as failed:
            window.server_action.trigger()
        assert failed.args[0] == ""
    assert not window.server_action.isChecked() and window.server.server is None
    assert "could not start" in window.banner.text() and "port" in window.banner.text()

    window.ctx.settings.set("server_port", 0)
    base = start_serving(qtbot, window)
    assert httpx.get(f"{base}/models", timeout=10).status_code == 200
    window.close()  # stops the server cleanly with the window
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base}/models", timeout=2)


def test_offline_mode_item_persists_and_holds_for_the_process(qtbot, make_window, monkeypatch):
    import huggingface_hub.constants as hub_constants

    import models.hub
    from models.hub import config

    monkeypatch.setattr(config, "_ENV_BEFORE_ENFORCE", [])
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)

    window = make_window(wait_ready=False)
    assert not window.offline.action.isChecked() and not window.offline_label.isVisibleTo(window)
    window.offline.action.trigger()
    assert Settings().get("offline") is True and models.hub.is_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and hub_constants.HF_HUB_OFFLINE is True
    assert window.offline_label.isVisibleTo(window)
    window.close()  # saving the window's state keeps the setting

    again = make_window(wait_ready=False)
    assert Settings().get("offline") is True
    assert again.offline.action.isChecked()
    qtbot.waitUntil(lambda: again.offline_label.isVisibleTo(again), timeout=5_000)
    again.offline.action.trigger()
    assert Settings().get("offline") is False and not models.hub.is_offline()
    assert "HF_HUB_OFFLINE" not in os.environ and hub_constants.HF_HUB_OFFLINE is False
    assert not again.offline.action.isChecked() and not again.statusBar().isVisible()


def test_offline_set_by_the_cli_while_the_window_is_open_survives_its_close(make_window):
    window = make_window(wait_ready=False)
    subprocess.run([sys.executable, "-m", "app", "offline", "on"], check=True, timeout=60)
    window.close()  # writes its geometry and last chat, and nothing else
    assert Settings().get("offline") is True
    subprocess.run([sys.executable, "-m", "app", "offline", "off"], check=True, timeout=60)
