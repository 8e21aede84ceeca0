"""A line across the top of a page: what happened, and what to do about it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget


def sentence(text: str) -> str:
    """Messages from the lower layers start in lower case (for "fireside: ..."); a banner
    starts a sentence."""
    return text[:1].upper() + text[1:] if text else text


class Banner(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        self.action = QPushButton()
        self.action.hide()
        layout.addWidget(self.action)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setObjectName("bannerClose")  # dark on the banner's light colours, either theme
        close.setFixedWidth(28)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(close)
        self._callback: Any = None
        self.action.clicked.connect(self._act)
        self.hide()

    def show_message(
        self, text: str, kind: str = "warning", action: str | None = None, callback: Any = None
    ) -> None:
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(sentence(text))
        self._callback = callback
        self.action.setVisible(bool(action))
        if action:
            self.action.setText(action)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def _act(self) -> None:
        callback = self._callback
        self.hide()
        if callback:
            callback()
