"""The Server page: serve the library over the OpenAI API, where it is, a snippet to paste,
and its settings (port, API key, other machines, requests at once, speculative decoding)."""

from __future__ import annotations

import secrets
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from models.errors import FiresideError

from .context import AppContext
from .server_controller import (
    ANY_ADDRESS,
    LOOPBACK,
    ServerController,
    parallel_setting,
    server_settings,
    speculation_options,
)
from .session import ModelSession


class ServerPage(QWidget):
    def __init__(self, ctx: AppContext, server: ServerController, session: ModelSession) -> None:
        super().__init__()
        self.ctx, self.server, self.session = ctx, server, session
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        title = QLabel("Local API server")
        title.setObjectName("pageTitle")
        layout.addWidget(title)
        intro = QLabel(
            "Let editors, scripts and agents use your models over the OpenAI API. They get "
            "the model this window has loaded; it is never loaded twice."
        )
        intro.setWordWrap(True)
        layout.addWidget(intro)
        row = QHBoxLayout()
        self.switch = QPushButton("Start serving")
        self.switch.setObjectName("serverSwitch")
        self.switch.clicked.connect(lambda: server.set_serving(server.server is None))
        self.state = QLabel()
        self.state.setWordWrap(True)
        row.addWidget(self.switch)
        row.addWidget(self.state, 1)
        layout.addLayout(row)

        self.address = QLineEdit()
        self.address.setReadOnly(True)
        self.address.setObjectName("serverAddress")
        self.copy_address_button = QPushButton("Copy the address")
        self.copy_address_button.clicked.connect(
            lambda: self._to_clipboard(self.address.text(), self.copy_address_button)
        )
        address_row = QHBoxLayout()
        address_row.addWidget(self.address, 1)
        address_row.addWidget(self.copy_address_button)
        layout.addLayout(address_row)
        self.snippet = QPlainTextEdit()
        self.snippet.setReadOnly(True)
        self.snippet.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.snippet.setFont(mono)
        self.snippet.setMinimumHeight(120)
        layout.addWidget(self.snippet, 1)
        self.copy_button = QPushButton("Copy the snippet")
        self.copy_button.clicked.connect(self.copy)
        layout.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignLeft)

        box = QGroupBox("Settings")
        form = QFormLayout(box)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setSpecialValueText("any free port")
        form.addRow("Port", self.port)
        key_row = QHBoxLayout()
        self.api_key = QLineEdit()
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
        self.parallel.setToolTip(
            "How many requests a loaded model answers at the same time (the window and every "
            "client share it). Each one gets the model's full context, so more uses more "
            "memory. Takes effect when a model is next loaded."
        )
        form.addRow("Requests at once", self.parallel)
        self.speculate = QComboBox()
        self.speculate.addItem("Off", "off")
        self.speculate.addItem("Prompt lookup (n-gram)", "ngram")
        self.speculate.setToolTip(
            "Speculative decoding: tokens the answer repeats from the prompt are proposed "
            "and checked in one step. Faster when answers copy (rewriting code, quoting), "
            "no faster otherwise. Takes effect when a model is next loaded."
        )
        form.addRow("Speculative decoding", self.speculate)
        self.draft = QComboBox()
        self.draft.setToolTip(
            "A small GGUF model with the same vocabulary proposes tokens for the loaded model "
            "to check (it replaces prompt lookup). A model of another vocabulary is refused "
            "when loading. Takes effect when a model is next loaded."
        )
        form.addRow("Draft model", self.draft)
        self.public = QCheckBox("Let other machines on the network use it (needs an API key)")
        form.addRow(self.public)
        self.save_button = QPushButton("Save settings")
        self.save_button.clicked.connect(self.save)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setObjectName("dialogMessage")
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow(self.save_button, self.message)
        layout.addWidget(box)
        layout.addStretch(1)  # takes the room the hidden snippet leaves (not while serving)
        self._layout = layout

        ctx.catalog_ready.connect(lambda _c: self.fill_drafts())
        ctx.library_changed.connect(lambda _id: self.fill_drafts())
        server.state_changed.connect(self.update_state)
        session.ready.connect(lambda _r, _i: self.update_state())
        self.load_settings()
        self.update_state()

    def load_settings(self) -> None:
        settings = self.ctx.settings
        current = server_settings(settings)
        self.port.setValue(current["port"])
        self.api_key.setText(current["api_key"] or "")
        self.parallel.setValue(parallel_setting(settings) or 0)
        self.public.setChecked(current["host"] != LOOPBACK)
        spec = speculation_options(settings)
        self.speculate.setCurrentIndex(max(0, self.speculate.findData(spec["speculate"] or "off")))
        self.fill_drafts(spec["draft"] or "")

    def fill_drafts(self, chosen: str | None = None) -> None:
        """The draft choices: none, and the library's GGUF models; ``chosen`` (a path; by
        default the current choice) stays chosen, listed by its file name if not in the library."""
        from pathlib import Path

        if chosen is None:
            chosen = self.draft.currentData() or ""
        self.draft.clear()
        self.draft.addItem("None", "")
        catalog = self.ctx.catalog
        for record in catalog.list() if catalog is not None else ():
            if record.format == "gguf":
                self.draft.addItem(record.name, record.path)
        if chosen and self.draft.findData(chosen) < 0:
            self.draft.addItem(Path(chosen).name, chosen)
        self.draft.setCurrentIndex(max(0, self.draft.findData(chosen)))

    def values(self) -> dict[str, Any]:
        return {
            "server_port": self.port.value(),
            "server_api_key": self.api_key.text().strip() or None,
            "server_public": self.public.isChecked(),
            "parallel": self.parallel.value() or None,
            "speculate": self.speculate.currentData(),
            "draft_model": self.draft.currentData() or None,
        }

    def save(self) -> bool:
        from dataclasses import replace

        from app.server import ServerConfig

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
            return False
        if not self.ctx.save_settings(values):
            return False
        host = self.ctx.host  # the next load uses it (a loaded model keeps its slots)
        host.options = replace(
            host.options,
            n_parallel=parallel_setting(self.ctx.settings),
            **speculation_options(self.ctx.settings),
        )
        running = self.server.server is not None
        self.message.setText(
            "Saved. Changes take effect when the server starts again." if running else "Saved."
        )
        return True

    def update_state(self) -> None:
        server = self.server
        serving = server.server is not None
        self.switch.setEnabled(not server.busy)
        self.switch.setText("Stop serving" if serving else "Start serving")
        if server.busy:
            self.state.setText("Starting…" if server.starting else "Stopping…")
        elif serving:
            key = bool(server.server.config.api_key)
            self.state.setText(
                "● Serving. Every request needs the API key (it is in the snippet)."
                if key
                else "● Serving. Only programs on this computer can reach it."
            )
        else:
            self.state.setText("Not serving.")
        for w in (self.address, self.copy_address_button, self.snippet, self.copy_button):
            w.setVisible(serving)
        self._layout.setStretch(self._layout.count() - 1, 0 if serving else 1)
        if serving:
            model_id = self.session.ready_id or (
                self.session.selected.id if self.session.selected else None
            )
            self.address.setText(server.server.base_url)
            self.snippet.setPlainText(server.server.snippet(model_id))
            self.copy_button.setText("Copy the snippet")
            self.copy_address_button.setText("Copy the address")

    def copy(self) -> None:
        self._to_clipboard(self.snippet.toPlainText(), self.copy_button)

    @staticmethod
    def _to_clipboard(text: str, button: QPushButton) -> None:
        QGuiApplication.clipboard().setText(text)
        button.setText("Copied ✓")
