"""The window's dialogs: conversation settings, copy-or-link for a dropped model, the library.

All of them are opened non-modally (``open()``) and report through signals, so nothing in
the window ever blocks waiting for them.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.library_ops import Fit, describe_record, human_params, human_size, reveal_folder
from app.settings import PRESETS, preset_params

CUSTOM = "Custom"


class ConversationSettingsDialog(QDialog):
    """System prompt and sampling parameters of one conversation, with named presets."""

    saved = Signal(dict)  # {"system_prompt", "preset", "params", "default"}

    def __init__(
        self, system_prompt: str, preset: str | None, params: dict[str, Any], parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Conversation settings")
        self.setMinimumWidth(460)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("System prompt (how the model should behave in this chat):"))
        self.system_prompt = QPlainTextEdit(system_prompt)
        self.system_prompt.setPlaceholderText("e.g. You are a concise assistant. Answer briefly.")
        self.system_prompt.setFixedHeight(90)
        layout.addWidget(self.system_prompt)

        form = QFormLayout()
        self.preset = QComboBox()
        self.preset.addItems([*PRESETS, CUSTOM])
        form.addRow("Preset", self.preset)

        def dspin(low: float, high: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
            box = QDoubleSpinBox()
            box.setRange(low, high)
            box.setSingleStep(step)
            box.setDecimals(decimals)
            return box

        self.temperature = dspin(0, 5, 0.05)
        self.top_p = dspin(0.01, 1, 0.01)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 1000)
        self.min_p = dspin(0, 1, 0.01)
        self.repeat_penalty = dspin(0.5, 2.0, 0.05)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(0, 1_000_000)
        self.max_tokens.setSpecialValueText("until the context is full")
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        form.addRow("Temperature", self.temperature)
        form.addRow("Top p", self.top_p)
        form.addRow("Top k", self.top_k)
        form.addRow("Min p", self.min_p)
        form.addRow("Repeat penalty", self.repeat_penalty)
        form.addRow("Longest answer (tokens)", self.max_tokens)
        form.addRow("Seed", self.seed)
        layout.addLayout(form)
        self.default = QCheckBox("Use these settings for new chats too")
        layout.addWidget(self.default)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        self._fields = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "min_p": self.min_p,
            "repeat_penalty": self.repeat_penalty,
        }
        self._set_params(params)
        self.preset.setCurrentText(preset if preset in PRESETS else CUSTOM)
        self.preset.currentTextChanged.connect(self._on_preset)
        for box in self._fields.values():
            box.valueChanged.connect(self._on_edit)

    def _set_params(self, params: dict[str, Any]) -> None:
        full = preset_params("Balanced") | dict(params)
        for name, box in self._fields.items():
            box.blockSignals(True)
            box.setValue(full[name])
            box.blockSignals(False)
        self.max_tokens.setValue(full.get("max_tokens") or 0)
        seed = full.get("seed")
        self.seed.setValue(-1 if seed is None else int(seed))
        self._extra = {k: v for k, v in full.items() if k not in self._fields}

    def _on_preset(self, name: str) -> None:
        if name in PRESETS:
            keep = self.params()
            self._set_params(
                preset_params(name) | {"max_tokens": keep["max_tokens"], "seed": keep["seed"]}
            )

    def _on_edit(self) -> None:
        current = self.params()
        for name in PRESETS:
            p = preset_params(name)
            if all(abs(float(p[k]) - float(current[k])) < 1e-9 for k in self._fields):
                self.preset.blockSignals(True)
                self.preset.setCurrentText(name)
                self.preset.blockSignals(False)
                return
        self.preset.blockSignals(True)
        self.preset.setCurrentText(CUSTOM)
        self.preset.blockSignals(False)

    def params(self) -> dict[str, Any]:
        data = dict(self._extra)
        for name, box in self._fields.items():
            data[name] = box.value()
        data["top_k"] = int(self.top_k.value())
        data["max_tokens"] = self.max_tokens.value() or None
        data["seed"] = None if self.seed.value() < 0 else self.seed.value()
        return data

    def _save(self) -> None:
        preset = self.preset.currentText()
        self.saved.emit(
            {
                "system_prompt": self.system_prompt.toPlainText().strip(),
                "preset": preset if preset in PRESETS else None,
                "params": self.params(),
                "default": self.default.isChecked(),
            }
        )
        self.accept()


class ImportChoiceDialog(QDialog):
    """Copy the dropped model into the library, or use it where it is."""

    chosen = Signal(str, str)  # path, "copy" | "link"

    def __init__(self, path: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.path = path
        self.setWindowTitle("Add a model")
        layout = QVBoxLayout(self)
        label = QLabel(
            f"<b>Add {path.rsplit('/', 1)[-1]} to your library?</b><br><br>"
            "<b>Copy</b> puts a copy in Fireside's library: the original can be moved or "
            "deleted later. <b>Link</b> uses the file where it is and takes no extra space, "
            "but stops working if the file moves."
        )
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(label)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.cancel_button = QPushButton("Cancel")
        self.link_button = QPushButton("Link")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setDefault(True)
        for b in (self.cancel_button, self.link_button, self.copy_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.cancel_button.clicked.connect(self.reject)
        self.link_button.clicked.connect(lambda: self._choose("link"))
        self.copy_button.clicked.connect(lambda: self._choose("copy"))

    def _choose(self, mode: str) -> None:
        self.accept()
        self.chosen.emit(self.path, mode)


class LibraryDialog(QDialog):
    """Every model in the library with its metadata; rename, remove, reveal, scan, use."""

    use_requested = Signal(str)  # model id
    remove_requested = Signal(str)
    scan_requested = Signal()
    import_requested = Signal()
    renamed = Signal()

    COLUMNS = (
        "Name",
        "Format",
        "Quantization",
        "Size",
        "Parameters",
        "Context",
        "Fits",
        "Source",
        "Location",
    )

    def __init__(self, catalog: Any, parent: QWidget, fits: dict[str, Fit] | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.fits = fits if fits is not None else {}
        self.setWindowTitle("Model library")
        self.resize(980, 420)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked
            | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(self.COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.itemChanged.connect(self._on_item_changed)
        layout.addWidget(self.table)
        self.message = QLabel()
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

        row = QHBoxLayout()
        self.use_button = QPushButton("Use")
        self.rename_button = QPushButton("Rename")
        self.remove_button = QPushButton("Remove")
        self.reveal_button = QPushButton("Show in file manager")
        self.scan_button = QPushButton("Scan for models")
        self.scan_button.setToolTip(
            "Look for models other apps have downloaded (Hugging Face cache, LM Studio, Ollama)"
        )
        self.import_button = QPushButton("Add a model…")
        for b in (self.use_button, self.rename_button, self.remove_button, self.reveal_button):
            row.addWidget(b)
        row.addStretch(1)
        row.addWidget(self.scan_button)
        row.addWidget(self.import_button)
        close = QPushButton("Close")
        close.clicked.connect(self.accept)
        row.addWidget(close)
        layout.addLayout(row)

        self.use_button.clicked.connect(lambda: self._with_selected(self.use_requested.emit))
        self.rename_button.clicked.connect(self._rename)
        self.remove_button.clicked.connect(lambda: self._with_selected(self.remove_requested.emit))
        self.reveal_button.clicked.connect(self._reveal)
        self.scan_button.clicked.connect(self.scan_requested)
        self.import_button.clicked.connect(self.import_requested)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.refresh()

    def refresh(self) -> None:
        self.table.blockSignals(True)
        records = self.catalog.list()
        self.table.setRowCount(len(records))
        for r, rec in enumerate(records):
            fit = self.fits.get(rec.id, Fit("…", "estimating the memory it needs"))
            values = (
                rec.name,
                rec.format,
                rec.quantization or "—",
                human_size(rec.size_bytes),
                human_params(rec.parameters),
                f"{rec.context_length:,}" if rec.context_length else "—",
                fit.verdict,
                rec.source,
                rec.path,
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                item.setData(Qt.ItemDataRole.UserRole, rec.id)
                if c != 0:
                    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                if c == 6:
                    item.setToolTip(fit.detail)
                elif c == 0:
                    item.setToolTip(describe_record(rec))
                self.table.setItem(r, c, item)
        self.table.blockSignals(False)
        self._update_buttons()

    def selected_id(self) -> str | None:
        items = self.table.selectedItems()
        return items[0].data(Qt.ItemDataRole.UserRole) if items else None

    def select(self, model_id: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) == model_id:
                self.table.selectRow(r)

    def _update_buttons(self) -> None:
        has = self.selected_id() is not None
        for b in (self.use_button, self.rename_button, self.remove_button, self.reveal_button):
            b.setEnabled(has)

    def _with_selected(self, fn: Any) -> None:
        model_id = self.selected_id()
        if model_id:
            fn(model_id)

    def _rename(self) -> None:
        items = self.table.selectedItems()
        if items:
            self.table.editItem(self.table.item(items[0].row(), 0))

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != 0:
            return
        from models.errors import FiresideError

        try:
            self.catalog.rename(item.data(Qt.ItemDataRole.UserRole), item.text())
            self.message.setText(f"Renamed to {item.text().strip()}.")
            self.renamed.emit()
        except FiresideError as exc:
            self.message.setText(str(exc))
            self.refresh()

    def _reveal(self) -> None:
        model_id = self.selected_id()
        if model_id:
            folder = reveal_folder(self.catalog.get(model_id))
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def show_message(self, text: str) -> None:
        self.message.setText(text)
