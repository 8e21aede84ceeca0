"""The Convert page: a Hugging Face / PyTorch model (from the library, a chosen folder or one
dropped on the window) into GGUF, MLX or ONNX (the types whose converter is not installed are
shown greyed out, with the command that installs it), with the recommendation for this machine, the
expected size and whether it fits before starting; progress with time left and Cancel while
it runs; at the end the quality report and "Chat with it".

A source is checked as soon as it is chosen (config and headers only, no torch): an
unsupported architecture or a missing tokenizer is said in plain words and Convert stays off.
For the GGUF K-quants, an importance matrix (none, computed from the source, or a llama.cpp
file picked or dropped) guides the quantizer (convert_parts.ImatrixChoice).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from models.records import HF_FORMATS
from models.sizes import size_cell

from .context import AppContext
from .convert import (
    FIT_WORDS,
    TARGET_WORDS,
    TARGETS,
    ConvertController,
    check,
    expected_size,
    family,
    fit,
    is_mlx,
    recommended_target,
    target_label,
    unavailable,
)
from .convert_parts import ImatrixChoice, ResultPanel, is_imatrix_file
from .convert_parts import column as _column
from .convert_parts import label as _label
from .downloads_page import duration

CHOOSE_FOLDER = "__choose__"
INTRO = (
    "Turn a Hugging Face or PyTorch model into a compact GGUF, MLX or ONNX model that runs fast "
    "on this machine. Fireside checks the result against the original and keeps the report."
)


class ConvertPage(QWidget):
    source_changed = Signal(str)  # the chosen source folder ("" for none)
    report_shown = Signal(object)  # the QualityReport (or None) of a finished conversion

    def __init__(self, ctx: AppContext, controller: ConvertController) -> None:
        super().__init__()
        self.ctx, self.controller = ctx, controller
        self.folder: Path | None = None  # the chosen source
        self.source_id: str | None = None  # its library id, when it is in the library
        self.problem: str | None = None  # why the source cannot become the chosen target
        self.estimate_bytes = 0  # the expected size of the result
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        title = QLabel("Convert")
        title.setObjectName("pageTitle")
        layout.addWidget(title)
        intro = _label(INTRO, "placeholder")
        layout.addWidget(intro)

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.source_box = QComboBox()
        self.source_box.setObjectName("convertSource")
        self.source_box.activated.connect(self._source_picked)
        self.source_note = _label(name="convertSourceNote")
        form.addRow("Source", _column(self.source_box, self.source_note))
        self.target_box = QComboBox()
        self.target_box.setObjectName("convertTarget")
        self.target_box.currentIndexChanged.connect(lambda _i: self._update_plan())
        self.recommendation = _label(name="convertRecommendation")
        self.estimate = _label(name="convertEstimate")
        self.missing = _label(name="convertMissing")  # converters not installed, and how to
        form.addRow(
            "Convert to",
            _column(self.target_box, self.recommendation, self.estimate, self.missing),
        )
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("the name the library shows (optional)")
        self.imatrix = ImatrixChoice()
        self.imatrix.changed.connect(self._sync)
        form.addRow("Importance matrix", self.imatrix)
        self.form = form
        form.addRow("Name", self.name_edit)
        layout.addLayout(form)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.convert_button = QPushButton("Convert")
        self.convert_button.setObjectName("primaryButton")
        self.convert_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(controller.cancel)
        buttons.addWidget(self.convert_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)

        self.progress = QProgressBar()
        self.progress.setObjectName("convertProgress")
        self.progress.setRange(0, 1000)
        self.status = _label(name="convertStatus")
        layout.addWidget(self.progress)
        layout.addWidget(self.status)

        self.result = ResultPanel(ctx)
        layout.addWidget(self.result)
        layout.addStretch(1)

        self._fill_targets()
        self.reload_sources()
        controller.busy_changed.connect(lambda _busy: self._sync())
        controller.progressed.connect(self._show_progress)
        controller.converted.connect(self._converted)
        controller.failed.connect(self._failed)
        controller.cancelled.connect(lambda: self._say(controller.stage))
        ctx.catalog_ready.connect(lambda _c: self.reload_sources())
        ctx.library_changed.connect(lambda _id: self.reload_sources())
        self.result.setVisible(False)
        self._sync()

    # -- the public face --------------------------------------------------------------------
    def reload_sources(self) -> None:
        """List the library's Hugging Face / PyTorch models, keeping the current choice."""
        box = self.source_box
        box.blockSignals(True)
        box.clear()
        box.addItem("Choose a Hugging Face model…", None)
        catalog = self.ctx.catalog
        for record in catalog.list() if catalog is not None else []:
            if record.format in HF_FORMATS:
                kind = "safetensors" if record.format == "hf-safetensors" else "PyTorch"
                text = f"{record.name} · {kind} · {size_cell(record.size_bytes)}"
                box.addItem(text, record.id)
        if self.folder is not None and self.source_id is None:
            box.addItem(str(self.folder), str(self.folder))
        box.addItem("Choose a folder…", CHOOSE_FOLDER)
        current = self.source_id or (str(self.folder) if self.folder else None)
        index = box.findData(current) if current else 0
        box.setCurrentIndex(max(index, 0))
        box.blockSignals(False)

    def select_source(self, path_or_model_id: str) -> None:
        """Choose the source: a library id or a folder; it is checked at once."""
        ref = str(path_or_model_id)
        record = None
        if self.ctx.catalog is not None:
            from models import ModelNotFound

            try:
                record = self.ctx.catalog.get(ref)
            except ModelNotFound:
                record = self.ctx.catalog.find_by_path(ref) if Path(ref).exists() else None
        if record is not None and record.format in HF_FORMATS:
            self.folder, self.source_id = Path(record.path), record.id
        elif record is not None:
            self.folder, self.source_id = None, None
            self.problem = (
                f"{record.name} is a {record.format} model; conversion needs Hugging Face "
                f"weights (a folder with config.json and *.safetensors or pytorch_model.bin)"
            )
            self._sync()
            return
        else:
            self.folder, self.source_id = Path(ref).expanduser(), None
        self.reload_sources()
        self.result.setVisible(False)
        self._update_plan()
        self.source_changed.emit(str(self.folder))

    def drop_path(self, path: str) -> bool:
        """A folder dropped on the window while this page shows: True when it is taken as the
        source (a Hugging Face checkpoint folder) or as the importance matrix (a llama.cpp
        imatrix file: for a type it cannot guide, Q4_K_M is chosen), False to let the window
        import it."""
        from models.hf import is_hf_folder

        folder = Path(path)
        if is_imatrix_file(folder):
            if not self.imatrix.applies(self.selected_target()):
                self.select_target("gguf-q4_k_m")
            self.imatrix.take_file(folder)
            return True
        if not is_hf_folder(folder):
            return False
        self.select_source(str(folder))
        return True

    def selected_target(self) -> str:
        return str(self.target_box.currentData())

    def select_target(self, to: str) -> bool:
        index = self.target_box.findData(to)
        if index < 0:
            return False
        self.target_box.setCurrentIndex(index)
        return True

    def can_start(self) -> bool:
        return self.convert_button.isEnabled()

    def start(self) -> bool:
        """Convert the chosen source to the chosen target (what the Convert button does)."""
        if not self.can_start() or self.folder is None:
            return False
        self.result.setVisible(False)
        name = self.name_edit.text().strip() or None
        return self.controller.start(
            self.folder, self.selected_target(), name=name, source_id=self.source_id,
            imatrix=self.imatrix.spec(),
        )  # fmt: skip

    def shutdown(self) -> None:
        self.controller.shutdown()

    # -- choices ----------------------------------------------------------------------------
    def _fill_targets(self) -> None:
        best = recommended_target()
        missing: dict[str, str] = {}  # family -> why it cannot be made here
        for to, label in TARGETS:
            text = f"★ {label} (recommended)" if to == best else label
            self.target_box.addItem(text, to)
            self.target_box.setItemData(
                self.target_box.count() - 1, TARGET_WORDS[to], Qt.ItemDataRole.ToolTipRole
            )
            problem = unavailable(to)
            if problem:
                missing.setdefault(family(to), problem)
                item = self.target_box.model().item(self.target_box.count() - 1)
                item.setEnabled(False)
                item.setToolTip(problem)
        self.target_box.setCurrentIndex(self.target_box.findData(best))
        where = "on Apple Silicon" if is_mlx(best) else "for llama.cpp on this machine"
        self.recommendation.setText(
            f"Recommended {where}: <b>{target_label(best)}</b> — {TARGET_WORDS[best]}."
        )
        self.missing.setText(" ".join(f"{words}." for words in missing.values()))

    def _source_picked(self, index: int) -> None:
        data = self.source_box.itemData(index)
        if data == CHOOSE_FOLDER:
            start = str(self.folder.parent) if self.folder else str(Path.home())
            chosen = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model", start)
            if chosen:
                self.select_source(chosen)
            else:
                self.reload_sources()
        elif data:
            self.select_source(str(data))
        else:
            self.folder, self.source_id, self.problem = None, None, None
            self._update_plan()

    def _update_plan(self) -> None:
        """Check the source against the target and show the expected size and fit."""
        self.problem, self.estimate_bytes = None, 0
        folder, to = self.folder, self.selected_target()
        self._say("")
        self.form.setRowVisible(self.imatrix, self.imatrix.applies(to))
        self.imatrix.set_plan(folder, to)
        if folder is None:
            self.source_note.setText("")
            self.estimate.setText("")
            self._sync()
            return
        self.problem = check(folder, to)
        if self.problem is None:
            self.source_note.setText(self._describe_source(folder))
            try:
                self.estimate_bytes = expected_size(folder, to)
            except Exception as exc:  # an estimate must never block the page
                from models.errors import describe

                self.estimate.setText(f"The size could not be estimated: {describe(exc)}")
            else:
                verdict = fit(self.estimate_bytes, to)
                self.estimate.setText(
                    f"Expected size: about {size_cell(self.estimate_bytes)} · "
                    f"{FIT_WORDS.get(verdict, verdict)}"
                )
        else:
            self.source_note.setText("")
            self.estimate.setText("")
        self._sync()

    def _sync_notes(self) -> None:
        for label in (self.source_note, self.estimate, self.missing):
            label.setVisible(bool(label.text()))

    @staticmethod
    def _describe_source(folder: Path) -> str:
        from models.hf import read_hf_folder
        from models.sizes import human_count

        ckpt = read_hf_folder(folder)
        weights = "safetensors" if ckpt.weight_format == "safetensors" else "PyTorch weights"
        params = human_count(ckpt.parameter_count) if ckpt.parameter_count else ""
        parts = [ckpt.architecture or "", f"{params} parameters" if params else "",
                 f"{size_cell(ckpt.weight_bytes)} of {weights}"]  # fmt: skip
        return f"{folder.name}: " + ", ".join(p for p in parts if p)

    # -- progress and the result ------------------------------------------------------------
    def _sync(self) -> None:
        self._sync_notes()
        busy = self.controller.busy
        ready = self.folder is not None and not self.problem and not self.imatrix.problem
        self.convert_button.setEnabled(not busy and ready)
        self.cancel_button.setVisible(busy)
        self.source_box.setEnabled(not busy)
        self.target_box.setEnabled(not busy)
        self.name_edit.setEnabled(not busy)
        self.imatrix.setEnabled(not busy)
        self.progress.setVisible(busy)
        if self.problem and not busy:
            self._say(f"This model cannot be converted: {self.problem}", "problem")

    def _say(self, text: str, kind: str = "") -> None:
        self.status.setText(text)
        self.status.setProperty("kind", kind)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.status.setVisible(bool(text))

    def _show_progress(self) -> None:
        ctl = self.controller
        self.progress.setValue(int(1000 * ctl.fraction))
        if ctl.busy:
            left = duration(ctl.seconds_left)
            self._say(" · ".join(p for p in (ctl.stage, left) if p))

    def _converted(self, result: Any) -> None:
        self.result.show_result(result)
        self._say("")
        self.report_shown.emit(result.report)

    def _failed(self, message: str) -> None:
        self._say(f"The conversion stopped: {message}", "problem")
