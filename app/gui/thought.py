"""A reasoning model's thinking under its answer: collapsed to one line ("Thought for N
words"), opened by a click; while the model is still thinking the line says so. The text
is the chunks' ``reasoning`` (runtime.reasoning), shown plain and dimmed."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QLabel, QToolButton, QVBoxLayout, QWidget


class ThoughtPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("thoughtPanel")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.toggle = QToolButton(self)
        self.toggle.setObjectName("thoughtToggle")
        self.toggle.setAutoRaise(True)
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setCursor(Qt.CursorShape.PointingHandCursor)
        self.toggle.setToolTip("Show or hide what the model thought before answering")
        self.toggle.clicked.connect(lambda: self._opened(not self.label.isVisible()))
        layout.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignLeft)
        self.label = QLabel(self)
        self.label.setObjectName("thoughtText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.label.setContentsMargins(18, 0, 0, 4)
        self.label.hide()
        layout.addWidget(self.label)
        self.text = ""
        self.thinking = False
        self.hide()

    def append(self, text: str) -> None:
        """More of the thought, as it streams."""
        if not text:
            return
        self.text += text
        self.thinking = True
        if self.label.isVisible():
            self.label.setText(self.text.strip())
        self._caption()
        self.show()

    def done(self) -> None:
        """The thought is over (the answer began, or the answer ended)."""
        if self.thinking:
            self.thinking = False
            self._caption()

    def _caption(self) -> None:
        words = len(self.text.split())
        what = "Thinking" if self.thinking else "Thought"
        self.toggle.setText(
            f"{what}… ({words} words)" if self.thinking else f"{what} for {words} words"
        )

    def _opened(self, shown: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow)
        self.label.setText(self.text.strip())
        self.label.setVisible(shown)
