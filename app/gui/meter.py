"""How much of the model's context this chat uses, with a word when it is nearly full."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

WARN = 0.8
FULL = 0.97


class ContextMeter(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setObjectName("contextMeter")
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(160)
        self.bar.setRange(0, 1000)
        self.label = QLabel()
        self.label.setObjectName("messageStats")
        self.label.setWordWrap(True)
        row.addWidget(self.bar)
        row.addWidget(self.label, 1)
        self.used = self.total = 0
        self.show_use(0, 0)

    @property
    def level(self) -> str:
        fraction = self.used / self.total if self.total else 0.0
        return "full" if fraction >= FULL else "warn" if fraction >= WARN else "ok"

    def show_use(self, used: int, total: int) -> None:
        self.used, self.total = used, total
        self.bar.setValue(int(1000 * min(1.0, used / total)) if total else 0)
        level = self.level
        self.bar.setProperty("level", level)
        self.bar.style().unpolish(self.bar)
        self.bar.style().polish(self.bar)
        if not total:
            self.label.setText("")
            return
        text = f"Context: {used:,} / {total:,} tokens"
        if level == "full":
            text += " — full: the oldest messages are being left out. Start a new chat to keep everything."
        elif level == "warn":
            text += " — nearly full: the oldest messages will soon be left out."
        self.label.setText(text)
        self.bar.setToolTip(text)
