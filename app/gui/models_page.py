"""The My models page: every model in the library with what Fireside knows of it (format,
quantization, size, fit, where it came from and how it was made); chat with one, rename,
remove, show it in the file manager, add one, scan other apps' folders."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.library_ops import describe_record, reveal_folder
from models import ModelRecord
from models.errors import FiresideError
from models.records import HF_FORMATS
from models.sizes import human_count, size_cell

from .context import AppContext
from .library_jobs import LibraryJobs
from .session import ModelSession

COLUMNS = ("Name", "Format", "Quantization", "Size", "Parameters", "Context", "Fits", "Source")
FIT_COLUMN = 6


def details_html(
    record: ModelRecord, fit_detail: str, engine: str = "", speed: str | None = None
) -> str:
    """What the details pane says about one model (``engine``: what runs it and why;
    ``speed``: the stored ``fireside bench`` result on this machine)."""
    rows = [
        ("Location", record.path),
        ("Architecture", record.architecture or "—"),
        ("Chat template", "yes" if record.has_chat_template else "none (plain continuation)"),
        ("Memory", fit_detail),
        ("Engine", engine or "—"),
        ("Speed here", speed or f"not measured yet (fireside bench {record.id})"),
        ("Added", record.added_at.replace("T", " ")[:16]),
    ]
    for key, value in sorted(record.provenance.items()):
        if key == "quality" and isinstance(value, dict):  # the conversion's quality report
            value = value.get("summary") or "—"
        elif isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        rows.append((key.replace("_", " ").capitalize(), str(value)))
    cells = "".join(
        f"<tr><td><b>{k}</b></td><td>&nbsp;{_escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<h3>{_escape(record.name)}</h3><table>{cells}</table>"


def engine_lines(record: ModelRecord) -> tuple[str, str | None]:
    """(the engine that runs it and why, the bench result here): small reads, no engine."""
    if record.format == "remote":
        return "the server it lives on", None
    from runtime.choice import bench_summary
    from runtime.dispatch import decide
    from runtime.errors import BackendUnavailable

    try:
        name, why = decide(record)  # reads the library only: no engine is imported
    except BackendUnavailable as exc:
        return f"none here: {exc}", None
    return f"{name}: {why}", bench_summary(record)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ModelsPage(QWidget):
    def __init__(self, ctx: AppContext, session: ModelSession, jobs: LibraryJobs) -> None:
        super().__init__()
        self.ctx, self.session, self.jobs = ctx, session, jobs
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        title = QLabel("My models")
        title.setObjectName("pageTitle")
        top = QHBoxLayout()
        top.addWidget(title, 1)
        layout.addLayout(top)

        split = QSplitter(Qt.Orientation.Vertical)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._on_item_changed)
        self.table.itemSelectionChanged.connect(self._on_selection)
        split.addWidget(self.table)
        self.details = QTextBrowser()
        self.details.setObjectName("modelDetails")
        self.details.setOpenLinks(False)
        split.addWidget(self.details)
        split.setSizes([320, 180])
        layout.addWidget(split, 1)

        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        task = QHBoxLayout()
        self.task_label = QLabel()
        self.task_bar = QProgressBar()
        self.task_bar.setFixedWidth(140)
        self.task_bar.setTextVisible(False)
        self.task_cancel = QPushButton("Cancel")
        self.task_cancel.clicked.connect(jobs.cancel)
        for w in (self.task_label, self.task_bar, self.task_cancel):
            task.addWidget(w)
            w.hide()
        task.addStretch(1)
        layout.addLayout(task)

        row = QHBoxLayout()
        self.use_button = QPushButton("Chat with it")
        self.rename_button = QPushButton("Rename")
        self.remove_button = QPushButton("Remove")
        self.reveal_button = QPushButton("Show in file manager")
        self.convert_button = QPushButton("Convert…")
        self.convert_button.setToolTip("Make a GGUF or MLX model of this Hugging Face model")
        self.scan_button = QPushButton("Scan for models")
        self.scan_button.setToolTip(
            "Look for models other apps have downloaded (Hugging Face cache, LM Studio, Ollama)"
        )
        self.import_button = QPushButton("Add a model…")
        for b in (
            self.use_button,
            self.rename_button,
            self.remove_button,
            self.reveal_button,
            self.convert_button,
        ):
            row.addWidget(b)
        row.addStretch(1)
        top.addWidget(self.scan_button)
        top.addWidget(self.import_button)
        layout.addLayout(row)

        self.use_button.clicked.connect(lambda: self._with_selected(ctx.use_model.emit))
        self.rename_button.clicked.connect(self._rename)
        self.remove_button.clicked.connect(lambda: self._with_selected(jobs.confirm_remove))
        self.reveal_button.clicked.connect(self._reveal)
        self.convert_button.clicked.connect(lambda: self._with_selected(ctx.convert.emit))
        self.scan_button.clicked.connect(jobs.scan)
        self.import_button.clicked.connect(jobs.choose_file)
        jobs.started.connect(self._task_started)
        jobs.progress.connect(self._task_progress)
        jobs.ended.connect(self._task_ended)
        jobs.message.connect(self.message.setText)
        session.records_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        keep = self.selected_id() or (self.session.selected.id if self.session.selected else None)
        records = self.session.records()
        self.table.blockSignals(True)
        self.table.setRowCount(len(records))
        for r, rec in enumerate(records):
            fit = self.session.fit(rec.id)
            values = (
                rec.name,
                rec.format,
                rec.quantization or "—",
                size_cell(rec.size_bytes),
                human_count(rec.parameters),
                f"{rec.context_length:,}" if rec.context_length else "—",
                "…" if fit.verdict == "unknown" else fit.verdict,
                rec.source,
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                item.setData(Qt.ItemDataRole.UserRole, rec.id)
                if c != 0:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                item.setToolTip(fit.detail if c == FIT_COLUMN else describe_record(rec))
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        if keep:
            self.select(keep)
        self._on_selection()

    def selected_id(self) -> str | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def select(self, model_id: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == model_id:
                self.table.selectRow(r)

    def _record(self) -> ModelRecord | None:
        model_id = self.selected_id()
        if model_id is None or self.ctx.catalog is None:
            return None
        try:
            return self.ctx.catalog.get(model_id)
        except FiresideError:
            return None

    def _on_selection(self) -> None:
        record = self._record()
        for b in (self.use_button, self.rename_button, self.remove_button, self.reveal_button):
            b.setEnabled(record is not None)
        self.convert_button.setEnabled(record is not None and record.format in HF_FORMATS)
        if record is None:
            empty = not self.table.rowCount()
            self.details.setHtml(
                "<p>Your library is empty. Add a model (a .gguf file or a model folder), "
                "drop one on this window, or find one on the Discover page.</p>"
                if empty
                else "<p>Choose a model to see its details.</p>"
            )
            return
        self.details.setHtml(
            details_html(record, self.session.fit(record.id).detail, *engine_lines(record))
        )

    def _with_selected(self, fn: Any) -> None:
        model_id = self.selected_id()
        if model_id:
            fn(model_id)

    def _rename(self) -> None:
        items = self.table.selectedItems()
        if items:
            self.table.editItem(self.table.item(items[0].row(), 0))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0 or self.ctx.catalog is None:
            return
        try:
            self.ctx.catalog.rename(item.data(Qt.ItemDataRole.UserRole), item.text())
        except FiresideError as exc:
            self.message.setText(str(exc))
            self.refresh()
            return
        self.message.setText(f"Renamed to {item.text().strip()}.")
        self.session.refresh()

    def _reveal(self) -> None:
        record = self._record()
        if record is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(reveal_folder(record))))

    def _task_started(self, text: str) -> None:
        self.task_label.setText(text)
        self.task_bar.setRange(0, 0)
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.show()

    def _task_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.task_bar.setRange(0, 1000)
            self.task_bar.setValue(int(1000 * min(done, total) / total))

    def _task_ended(self) -> None:
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.hide()
