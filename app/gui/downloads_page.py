"""The Downloads page: every download with its progress (the file being fetched and the
whole), speed and time left; pause, resume, cancel; "Chat with it" once it is in the library."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from models.sizes import size_cell

from .context import AppContext
from .downloads import DownloadsController

STATE_WORDS = {
    "queued": "Waiting",
    "downloading": "Downloading",
    "paused": "Paused",
    "failed": "Stopped",
    "done": "In your library",
    "cancelled": "Cancelled",
}


def duration(seconds: float | None) -> str:
    """``"about 3 min left"`` in words; "" when unknown."""
    if seconds is None:
        return ""
    s = int(seconds + 0.5)
    if s < 60:
        return f"{max(s, 1)} s left"
    if s < 3600:
        return f"about {round(s / 60)} min left"
    h, m = divmod(round(s / 60), 60)
    return f"about {h} h {m} min left" if m else f"about {h} h left"


def _permille(done: int, total: int) -> int:
    return int(1000 * done / total) if total else 0


class DownloadRow(QFrame):
    """One download: what it is, where it stands, and what can be done with it."""

    def __init__(self, page: DownloadsPage, entry_id: str) -> None:
        super().__init__()
        self.setObjectName("downloadRow")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.page, self.entry_id = page, entry_id
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        top = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("downloadTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.state = QLabel()
        self.state.setObjectName("downloadState")
        top.addWidget(self.title, 1)
        top.addWidget(self.state)
        layout.addLayout(top)

        self.file_label = QLabel()
        self.file_label.setObjectName("placeholder")
        self.file_bar = QProgressBar()
        self.total_bar = QProgressBar()
        for bar in (self.file_bar, self.total_bar):
            bar.setRange(0, 1000)
            bar.setTextVisible(True)
        self.file_bar.setFormat("%p% of this file")
        self.total_bar.setFormat("%p%")
        self.detail = QLabel()  # bytes, speed, time left; or why it stopped
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.file_label)
        layout.addWidget(self.file_bar)
        layout.addWidget(self.total_bar)
        layout.addWidget(self.detail)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        ctl = page.controller
        self.pause_button = self._button("Pause", lambda: ctl.pause(entry_id), buttons)
        self.resume_button = self._button("Resume", lambda: ctl.resume(entry_id), buttons)
        self.cancel_button = self._button("Cancel", lambda: ctl.cancel(entry_id), buttons)
        self.chat_button = self._button("Chat with it", self._chat, buttons)
        self.remove_button = self._button("Remove from list", lambda: ctl.remove(entry_id), buttons)
        layout.addLayout(buttons)
        self.refresh()

    @staticmethod
    def _button(text: str, slot: Any, row: QHBoxLayout) -> QPushButton:
        button = QPushButton(text)
        button.clicked.connect(slot)
        row.addWidget(button)
        return button

    def _chat(self) -> None:
        model_id = self.page.controller.entry(self.entry_id).model_id
        if model_id:
            self.page.ctx.use_model.emit(model_id)

    def refresh(self) -> None:
        ctl = self.page.controller
        e = ctl.entry(self.entry_id)
        self.title.setText(e.name)
        self.title.setToolTip(f"{e.repo} ({e.label})")
        state = e.state
        if state == "queued" and ctl.waiting_for_network():
            words = "Waiting (offline mode is on)"
        elif state == "queued" and e.done:
            words = "Waiting to continue"
        else:
            words = STATE_WORDS.get(state, state)
        self.state.setText(words)

        where = e.file_progress()
        if where is not None and len(e.files) > 1:
            i, path, fdone, fsize = where
            self.file_label.setText(f"File {i + 1} of {len(e.files)}: {path}")
        elif where is not None:
            i, path, fdone, fsize = where
            self.file_label.setText(path)
        else:
            fdone = fsize = 0
            self.file_label.setText(
                "Asking the Hub for the files…" if state == "downloading" else ""
            )
        self.file_bar.setValue(_permille(fdone, fsize) if state != "done" else 1000)
        self.total_bar.setValue(_permille(e.done, e.total) if state != "done" else 1000)
        show_bars = state not in ("done", "cancelled")
        self.file_bar.setVisible(show_bars and len(e.files) > 1)
        self.total_bar.setVisible(show_bars)
        self.file_label.setVisible(show_bars and bool(self.file_label.text()))

        amount = ""
        if e.total:
            amount = (
                f"{size_cell(e.done)} of {size_cell(e.total)}" if e.done else size_cell(e.total)
            )
        if state == "downloading":
            speed, left = ctl.rate(self.entry_id)
            parts = [amount, f"{size_cell(speed)}/s" if speed > 0 else "", duration(left)]
            self.detail.setText(" · ".join(p for p in parts if p))
        elif state == "failed":
            self.detail.setText(e.error or "The download stopped.")
        elif state == "done":
            self.detail.setText(f"{size_cell(e.total)}, checked against the Hub's SHA-256.")
        elif state == "cancelled":
            self.detail.setText("Cancelled; its partial files were deleted.")
        else:
            self.detail.setText(f"{amount} kept" if e.done else amount)

        self.pause_button.setVisible(state in ("queued", "downloading"))
        self.resume_button.setVisible(state in ("paused", "failed"))
        self.resume_button.setText("Retry" if state == "failed" and not e.done else "Resume")
        self.cancel_button.setVisible(state in ("queued", "downloading", "paused", "failed"))
        self.chat_button.setVisible(state == "done")
        self.chat_button.setEnabled(bool(e.model_id))
        self.remove_button.setVisible(state in ("done", "cancelled"))


class DownloadsPage(QWidget):
    def __init__(self, ctx: AppContext, controller: DownloadsController) -> None:
        super().__init__()
        self.ctx, self.controller = ctx, controller
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        title = QLabel("Downloads")
        title.setObjectName("pageTitle")
        layout.addWidget(title)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)

        self.empty = QWidget()
        empty_row = QHBoxLayout(self.empty)
        empty_row.setContentsMargins(0, 0, 0, 0)
        note = QLabel("Nothing is downloading. Find a model to bring home on the Discover page.")
        note.setObjectName("placeholder")
        note.setWordWrap(True)
        self.discover_button = QPushButton("Discover models")
        self.discover_button.clicked.connect(lambda: ctx.show_page.emit("discover"))
        empty_row.addWidget(note, 1)
        empty_row.addWidget(self.discover_button)
        layout.addWidget(self.empty)

        self._list = QWidget()
        self._list_layout = QVBoxLayout(self._list)
        self._list_layout.setContentsMargins(0, 0, 0, 0)
        self._list_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._list)
        layout.addWidget(scroll, 1)

        self._rows: dict[str, DownloadRow] = {}
        controller.changed.connect(self._changed)
        controller.progressed.connect(self._progressed)
        ctx.offline_changed.connect(lambda _on: self.reload())
        self._loaded = False

    def showEvent(self, event: Any) -> None:  # the queue is read when first shown
        if not self._loaded:
            self.reload()
        super().showEvent(event)

    # -- the public face --------------------------------------------------------------------
    def rows(self) -> list[DownloadRow]:
        """The rows as shown, oldest first."""
        self._ensure_loaded()
        return [self._rows[e.id] for e in self.controller.entries() if e.id in self._rows]

    def row(self, entry_id: str) -> DownloadRow:
        self._ensure_loaded()
        return self._rows[entry_id]

    def reload(self) -> None:
        self._loaded = True
        ids = [e.id for e in self.controller.entries()]
        for gone in set(self._rows) - set(ids):
            self._rows.pop(gone).deleteLater()
        for index, entry_id in enumerate(ids):
            row = self._rows.get(entry_id)
            if row is None:
                row = self._rows[entry_id] = DownloadRow(self, entry_id)
                self._list_layout.insertWidget(index, row)
            else:
                row.refresh()
        self._summarise()

    # -- updates ----------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self.reload()

    def _changed(self, entry_id: str) -> None:
        if not self._loaded:
            return
        if entry_id in self._rows and any(e.id == entry_id for e in self.controller.entries()):
            self._rows[entry_id].refresh()
            self._summarise()
        else:
            self.reload()

    def _progressed(self, entry_id: str) -> None:
        if self._loaded and entry_id in self._rows:
            self._rows[entry_id].refresh()
            self._summarise()

    def _summarise(self) -> None:
        entries = self.controller.entries()
        self.empty.setVisible(not entries)
        active = [e for e in entries if e.state in ("queued", "downloading", "paused")]
        if not active:
            self.summary.setText("")
            self.summary.setVisible(False)
            return
        done = sum(e.done for e in active)
        total = sum(e.total for e in active)
        text = f"{len(active)} unfinished · {size_cell(done) if done else '0 KB'} of {size_cell(total)}"
        running = self.controller.running_id()
        if running is not None:
            speed, left = self.controller.rate(running)
            if speed > 0:
                text += f" · {size_cell(speed)}/s"
        if self.controller.waiting_for_network():
            text += " · offline mode is on: downloads wait until it is turned off"
        self.summary.setText(text)
        self.summary.setVisible(True)
