"""The window's dialogs: conversation settings, and copy-or-link for a dropped model.

All of them are opened non-modally (``open()``) and report through signals, so nothing in
the window ever blocks waiting for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

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
        # A Hugging Face / PyTorch folder: offer to make a GGUF or MLX model of it next.
        self.convert_box = QCheckBox("Convert after adding (opens the Convert page)")
        self.convert_box.setVisible((Path(path) / "config.json").is_file())
        layout.addWidget(self.convert_box)
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

    @property
    def convert_after(self) -> bool:
        return self.convert_box.isVisibleTo(self) and self.convert_box.isChecked()

    def _choose(self, mode: str) -> None:
        self.accept()
        self.chosen.emit(self.path, mode)
