"""The chat page's model picker: the library's models with their fit, what is loaded, and the
load in progress (with Cancel)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.library_ops import describe_record

from .session import ModelSession


class ModelBar(QWidget):
    def __init__(self, session: ModelSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model:"))
        self.combo = QComboBox()
        self.combo.setMinimumWidth(200)
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(30)
        self.combo.activated.connect(self._chosen)
        top.addWidget(self.combo)
        self.status = QLabel()
        self.status.setObjectName("modelStatus")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(80)
        top.addWidget(self.status, 1)
        self.top = top
        outer.addLayout(top)
        row = QHBoxLayout()
        self.task_label = QLabel()
        self.task_bar = QProgressBar()
        self.task_bar.setFixedWidth(110)
        self.task_bar.setTextVisible(False)
        self.task_cancel = QPushButton("Cancel")
        self.task_cancel.clicked.connect(self._cancel)
        for w in (self.task_label, self.task_bar, self.task_cancel):
            row.addWidget(w)
            w.hide()
        row.addStretch(1)
        outer.addLayout(row)

        session.records_changed.connect(self.refresh)
        session.load_started.connect(self._load_started)
        session.load_progress.connect(self._progress)
        session.ready.connect(self._ready)
        session.load_failed.connect(lambda _r, _m, cancelled: self._not_loaded())
        session.lost.connect(self._lost)
        self.refresh()

    def refresh(self) -> None:
        session = self.session
        self.combo.blockSignals(True)
        self.combo.clear()
        if session.ctx.catalog is None:
            self.combo.addItem("Opening the library…", None)
        for i, rec in enumerate(session.records()):
            fit = session.fit(rec.id)
            text = describe_record(rec)
            if fit.verdict != "unknown":
                text += f" · {fit.verdict}"
            self.combo.addItem(text, rec.id)
            self.combo.setItemData(i, f"{rec.path}\n{fit.detail}", Qt.ItemDataRole.ToolTipRole)
            if session.selected is not None and rec.id == session.selected.id:
                self.combo.setCurrentIndex(i)
        self.combo.blockSignals(False)

    def _chosen(self, index: int) -> None:
        model_id = self.combo.itemData(index)
        if model_id:
            self.session.choose(model_id)

    def _load_started(self, record: object) -> None:
        self.status.setText("")
        self.task_label.setText(f"Loading {getattr(record, 'name', 'the model')}…")
        self.task_bar.setRange(0, 0)
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.show()

    def _progress(self, done: int, total: int) -> None:
        if total > 0:
            self.task_bar.setRange(0, 1000)
            self.task_bar.setValue(int(1000 * min(done, total) / total))

    def _hide_task(self) -> None:
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.hide()

    def _ready(self, record: object, info: object) -> None:
        self._hide_task()
        parallel = getattr(info, "parallel", 1)
        at_once = f" each · {parallel} requests at once" if parallel > 1 else ""
        self.status.setText(
            f"Ready · {getattr(info, 'backend', '')} · "
            f"context {getattr(info, 'context_length', 0):,}{at_once}"
        )
        self.status.setToolTip(getattr(record, "path", ""))

    def _not_loaded(self) -> None:
        self._hide_task()
        self.status.setText("Not loaded")

    def _lost(self, why: str) -> None:
        self.status.setText(why)

    def _cancel(self) -> None:
        self.session.cancel_load()
        self.task_label.setText("Cancelling…")

    def set_busy(self, busy: bool) -> None:
        self.combo.setEnabled(not busy)
