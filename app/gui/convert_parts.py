"""The Convert page's parts: its note labels, the importance-matrix choice and the result panel.

``ImatrixChoice`` is shown only for the GGUF types an importance matrix guides (the K-quants
and Q4_0): none, computed from the source (about a minute for a small model, through the
page's own progress and Cancel), or a llama.cpp imatrix file (.gguf or .dat, picked or
dropped). A type that is made only with one (Q3_K_M, Q2_K, IQ4_XS) turns "compute" on and
says why; a file that cannot guide this model is said in plain words, and Convert stays off.
``ResultPanel`` shows a finished conversion: its quality report, where its importance matrix
came from, and "Chat with it".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from models.sizes import size_cell

from .context import AppContext
from .convert import AUTO, IMATRIX_TARGETS, NEEDS_IMATRIX, check_imatrix, imatrix_words
from .convert import target_label as label_of

NONE, FILE = "none", "file"
CHOICES = (
    (NONE, "No importance matrix"),
    (AUTO, "Compute from the source (about a minute for a small model)"),
    (FILE, "Use a llama.cpp imatrix file…"),
)
IMATRIX_SUFFIXES = (".dat", ".gguf")
ABOUT = (
    "An importance matrix tells the quantizer which weights matter most, so the result "
    "follows the original more closely."
)


def label(text: str = "", name: str | None = None, wrap: bool = True) -> QLabel:
    widget = QLabel(text)
    if name:
        widget.setObjectName(name)
    widget.setWordWrap(wrap)
    widget.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return widget


def column(*widgets: QWidget) -> QWidget:
    """Widgets stacked tightly: a form field with its notes under it."""
    box = QWidget()
    stack = QVBoxLayout(box)
    stack.setContentsMargins(0, 0, 0, 4)
    stack.setSpacing(3)
    for widget in widgets:
        stack.addWidget(widget)
    return box


def is_imatrix_file(path: str | Path) -> bool:
    """A llama.cpp imatrix file by its look: a .dat file, or a .gguf whose type says imatrix
    (a GGUF model is not one: the window imports that)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() not in IMATRIX_SUFFIXES:
        return False
    if path.suffix.lower() == ".dat":
        return True
    try:
        import gguf

        field = gguf.GGUFReader(path).get_field("general.type")
        return field is not None and field.contents() == "imatrix"
    except Exception:  # not a readable GGUF: not ours to take
        return False


class ImatrixChoice(QWidget):
    """The importance-matrix row: ``set_plan(folder, to)`` when the source or type changes,
    ``spec()`` for the controller, ``problem`` while it cannot be used."""

    changed = Signal()  # the choice, the file or the problem moved

    def __init__(self) -> None:
        super().__init__()
        self.folder: Path | None = None
        self.to = ""
        self.path: Path | None = None  # the chosen imatrix file
        self.problem: str | None = None  # why the choice cannot guide this conversion
        self.box = QComboBox()
        self.box.setObjectName("convertImatrix")
        for data, text in CHOICES:
            self.box.addItem(text, data)
        self.box.currentIndexChanged.connect(lambda _i: self._choice_moved())
        self.file_label = label(name="convertImatrixFile")
        self.file_button = QPushButton("Choose file…")
        self.file_button.clicked.connect(self.pick_file)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.file_label, 1)
        row.addWidget(self.file_button)
        self.file_row = QWidget()
        self.file_row.setLayout(row)
        self.note = label(name="convertImatrixNote")
        stack = QVBoxLayout(self)
        stack.setContentsMargins(0, 0, 0, 4)
        stack.setSpacing(3)
        for widget in (self.box, self.file_row, self.note):
            stack.addWidget(widget)

    # -- what the page asks -----------------------------------------------------------------
    @staticmethod
    def applies(to: str) -> bool:
        return to in IMATRIX_TARGETS

    def choice(self) -> str:
        return str(self.box.currentData())

    def choose(self, data: str) -> None:
        self.box.setCurrentIndex(self.box.findData(data))

    def spec(self) -> str | None:
        """What the controller takes: None, ``"auto"`` or the file's path."""
        if not self.applies(self.to) or self.choice() == NONE:
            return None
        if self.choice() == AUTO:
            return AUTO
        return str(self.path) if self.path else None

    def set_plan(self, folder: Path | None, to: str) -> None:
        """The source or the type changed: a type that needs a matrix turns "compute" on
        (never a silent failure), a chosen file is checked against the new pair."""
        self.folder, self.to = folder, to
        none_item = self.box.model().item(self.box.findData(NONE))
        needs = to in NEEDS_IMATRIX
        none_item.setEnabled(not needs)
        none_item.setToolTip(
            f"{label_of(to)} is made only with an importance matrix" if needs else ""
        )
        if needs and self.choice() == NONE:
            self.box.blockSignals(True)
            self.choose(AUTO)
            self.box.blockSignals(False)
        self._refresh()

    def take_file(self, path: str | Path) -> None:
        """Use this llama.cpp imatrix file (picked or dropped)."""
        self.path = Path(path).expanduser()
        self.box.blockSignals(True)
        self.choose(FILE)
        self.box.blockSignals(False)
        self._refresh()

    def pick_file(self) -> None:
        start = str(self.path.parent if self.path else self.folder or Path.home())
        chosen, _filter = QFileDialog.getOpenFileName(
            self, "Choose a llama.cpp importance matrix", start,
            "Importance matrix (*.gguf *.dat);;All files (*)",
        )  # fmt: skip
        if chosen:
            self.take_file(chosen)

    # -- inside -------------------------------------------------------------------------
    def _choice_moved(self) -> None:
        if self.choice() == FILE and self.path is None:
            self.pick_file()  # a cancelled dialog leaves the choice saying what is missing
        self._refresh()

    def _refresh(self) -> None:
        self.problem = None
        choice, needs = self.choice(), self.to in NEEDS_IMATRIX
        self.file_row.setVisible(choice == FILE)
        self.file_label.setText(str(self.path) if self.path else "No file chosen yet")
        if choice == FILE and self.applies(self.to):
            if self.path is None:
                self.problem = "choose a llama.cpp imatrix file (.gguf or .dat), or compute one"
            else:
                self.problem = check_imatrix(self.path, self.folder, self.to)
        if self.problem:
            note = f"This importance matrix cannot be used: {self.problem}."
        elif needs:
            how = "Fireside computes one from the source first" if choice == AUTO else ABOUT
            note = f"{label_of(self.to)} needs an importance matrix: {how}."
        else:
            note = ABOUT
        self.note.setText(note)
        self.note.setProperty("kind", "problem" if self.problem else "")
        self.changed.emit()


class ResultPanel(QFrame):
    """A finished conversion: what is in the library, its quality report, "Chat with it"."""

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.model_id: str | None = None
        self.setObjectName("convertResult")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        box = QVBoxLayout(self)
        self.title = label(name="convertResultTitle")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.verdict = label(name="qualityVerdict")
        self.numbers = label(name="qualityNumbers")
        self.imatrix = label(name="convertResultImatrix")
        row = QHBoxLayout()
        row.addStretch(1)
        self.chat_button = QPushButton("Chat with it")
        self.chat_button.clicked.connect(self._chat)
        row.addWidget(self.chat_button)
        for widget in (self.title, self.verdict, self.numbers, self.imatrix):
            box.addWidget(widget)
        box.addLayout(row)

    def show_result(self, result: Any) -> None:
        """``result``: what ``quant.convert_into_library`` returned."""
        record, report = result.record, result.report
        self.model_id = record.id
        self.title.setText(f"{record.name} ({record.quantization}) is in your library")
        if report is not None:
            self.verdict.setText(report.describe())
            self.numbers.setText(
                f"Mean KL divergence {report.kl:.4f} · same top token {report.top1:.1%} · "
                f"{report.tokens} tokens · {size_cell(record.size_bytes)}"
            )
        else:
            self.verdict.setText(
                f"No quality report: {result.report_problem}" if result.report_problem else ""
            )
            self.numbers.setText(size_cell(record.size_bytes))
        if result.note:
            self.numbers.setText(self.numbers.text() + f" · note: {result.note}")
        spec = record.provenance.get("imatrix")
        self.imatrix.setText(f"Importance matrix: {imatrix_words(spec)}" if spec else "")
        self.imatrix.setVisible(bool(spec))
        self.setVisible(True)

    def _chat(self) -> None:
        if self.model_id:
            self.ctx.use_model.emit(self.model_id)
