"""The local API's dialogs: where it is serving (with a snippet to paste), and its settings.

Both are opened non-modally and report through signals; starting and stopping the server
itself happens in the window, on worker threads.
"""

from __future__ import annotations

import secrets
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

DEFAULT_PORT = 8080  # app.server.DEFAULT_PORT (not imported here: the window opens fast)
LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"


def parallel_setting(settings: Any) -> int | None:
    """Requests a loaded llama.cpp model serves at once (None: the engine's default)."""
    value = settings.get("parallel")
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64
    return value if ok else None


def server_settings(settings: Any) -> dict[str, Any]:
    """ServerConfig keyword arguments from the app's settings (loopback unless told)."""
    port = settings.get("server_port")
    return {
        "host": ANY_ADDRESS if settings.get("server_public") else LOOPBACK,
        "port": port if isinstance(port, int) and not isinstance(port, bool) else DEFAULT_PORT,
        "api_key": settings.get("server_api_key") or None,
    }


class ServerDialog(QDialog):
    """Where the API is served, and a snippet (curl and the openai package) to paste."""

    stop_requested = Signal()

    def __init__(self, base_url: str, snippet: str, parent: QWidget, *, key: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Local API")
        self.setMinimumWidth(720)
        layout = QVBoxLayout(self)
        intro = QLabel(
            "Fireside is serving your library over the OpenAI API. Editors, scripts and "
            "agents that speak it can use the model this window has loaded, at:"
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.address = QLineEdit(base_url)
        self.address.setReadOnly(True)
        self.address.setObjectName("serverAddress")
        layout.addWidget(self.address)
        note = (
            "Every request needs the API key (it is in the snippet)."
            if key
            else ("Only programs on this computer can reach it.")
        )
        self.note = QLabel(note + " Try it:")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        self.snippet = QPlainTextEdit(snippet)
        self.snippet.setReadOnly(True)
        self.snippet.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.snippet.setFont(mono)
        self.snippet.setMinimumHeight(250)
        layout.addWidget(self.snippet, 1)
        row = QHBoxLayout()
        self.copy_button = QPushButton("Copy the snippet")
        self.copy_button.clicked.connect(self.copy)
        self.copy_address_button = QPushButton("Copy the address")
        self.copy_address_button.clicked.connect(
            lambda: self._to_clipboard(self.address.text(), self.copy_address_button)
        )
        self.stop_button = QPushButton("Stop serving")
        self.stop_button.clicked.connect(self.stop_requested.emit)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        row.addWidget(self.copy_button)
        row.addWidget(self.copy_address_button)
        row.addStretch(1)
        row.addWidget(self.stop_button)
        row.addWidget(close)
        layout.addLayout(row)

    def copy(self) -> None:
        self._to_clipboard(self.snippet.toPlainText(), self.copy_button)

    @staticmethod
    def _to_clipboard(text: str, button: QPushButton) -> None:
        QGuiApplication.clipboard().setText(text)
        button.setText("Copied ✓")


class ServerSettingsDialog(QDialog):
    """Port, API key, and whether other machines may use the server."""

    saved = Signal(dict)  # {"server_port", "server_api_key", "server_public", "parallel"}

    def __init__(self, settings: Any, parent: QWidget, *, running: bool) -> None:
        super().__init__(parent)
        self.setWindowTitle("Local API settings")
        self.setMinimumWidth(460)
        current = server_settings(settings)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        self.port.setValue(current["port"])
        form.addRow("Port", self.port)
        key_row = QHBoxLayout()
        self.api_key = QLineEdit(current["api_key"] or "")
        self.api_key.setPlaceholderText("none (fine on this computer only)")
        generate = QPushButton("New key")
        generate.setToolTip("Make a random key")
        generate.clicked.connect(lambda: self.api_key.setText(secrets.token_urlsafe(24)))
        key_row.addWidget(self.api_key, 1)
        key_row.addWidget(generate)
        form.addRow("API key", key_row)
        self.parallel = QSpinBox()
        self.parallel.setRange(0, 64)
        self.parallel.setSpecialValueText("automatic")
        self.parallel.setValue(parallel_setting(settings) or 0)
        self.parallel.setToolTip(
            "How many requests a loaded model answers at the same time (the window and every "
            "client share it). Each one gets the model's full context, so more uses more "
            "memory. Takes effect when a model is next loaded."
        )
        form.addRow("Requests at once", self.parallel)
        layout.addLayout(form)
        self.public = QCheckBox("Let other machines on the network use it (needs an API key)")
        self.public.setChecked(current["host"] != LOOPBACK)
        layout.addWidget(self.public)
        self.message = QLabel(
            "Changes take effect when the server starts again." if running else ""
        )
        self.message.setWordWrap(True)
        self.message.setObjectName("dialogMessage")
        layout.addWidget(self.message)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.buttons = buttons

    def values(self) -> dict[str, Any]:
        return {
            "server_port": self.port.value(),
            "server_api_key": self.api_key.text().strip() or None,
            "server_public": self.public.isChecked(),
            "parallel": self.parallel.value() or None,
        }

    def _save(self) -> None:
        from app.server import ServerConfig
        from models.errors import FiresideError

        values = self.values()
        try:
            ServerConfig(
                host=ANY_ADDRESS if values["server_public"] else LOOPBACK,
                port=values["server_port"],
                api_key=values["server_api_key"],
            )
        except FiresideError as exc:
            text = str(exc)
            self.message.setText(text[:1].upper() + text[1:] + ".")
            self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            return
        self.saved.emit(values)
        self.accept()
