"""Changing the library from the window: add a dropped or chosen model (copy or link), scan
other apps' model folders, remove a model. One at a time, off the GUI thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from models import ModelRecord
from models.errors import Cancelled, FiresideError, describe

from .banner import sentence
from .context import AppContext
from .dialogs import ImportChoiceDialog
from .session import ModelSession
from .worker import Worker


class LibraryJobs(QObject):
    started = Signal(str)  # what is being done, in words
    progress = Signal(object, object)  # done, total: Python ints (files pass 2 GiB)
    ended = Signal()
    import_done = Signal(object)  # the list of records added, or the exception
    message = Signal(str)  # what happened (the My models page shows it)

    def __init__(self, ctx: AppContext, session: ModelSession, parent: QWidget) -> None:
        super().__init__(parent)
        self.ctx, self.session, self.parent_widget = ctx, session, parent
        self.worker: Worker | None = None
        self.import_dialog: ImportChoiceDialog | None = None

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def wait(self, timeout: float) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.worker.wait(timeout)

    def _run(self, fn: Any, text: str, on_done: Any, on_error: Any) -> None:
        worker = Worker(fn, name="fireside-library")
        self.worker = worker
        worker.progress.connect(self.progress)
        worker.done.connect(lambda result: (self._end(worker), on_done(result)))
        worker.failed.connect(lambda exc: (self._end(worker), on_error(exc)))
        worker.finished.connect(lambda: self._end(worker))
        self.started.emit(text)
        worker.start()

    def _end(self, worker: Worker) -> None:
        if self.worker is worker:
            self.worker = None
            self.ended.emit()

    # -- adding --------------------------------------------------------------------------
    def choose_file(self) -> None:
        dialog = QFileDialog(
            self.parent_widget, "Add a model", str(Path.home()), "Models (*.gguf);;All files (*)"
        )
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self.offer_import)
        dialog.open()

    def offer_import(self, path: str) -> ImportChoiceDialog | None:
        if self.busy:
            self.ctx.tell("Another import or scan is running; wait for it or cancel it.", "warning")
            return None
        dialog = ImportChoiceDialog(path, self.parent_widget)
        dialog.chosen.connect(lambda p, mode: self.import_model(p, mode, dialog.convert_after))
        dialog.open()
        self.import_dialog = dialog
        return dialog

    def import_model(self, path: str, mode: str, convert: bool = False) -> None:
        """Add ``path`` (copy or link); with ``convert``, open it on the Convert page after."""
        from app.library_ops import import_model

        catalog = self.ctx.catalog
        if self.busy or catalog is None:
            return
        name = Path(path).name

        def job(j: Any) -> Any:
            return import_model(path, mode, catalog, progress=j.progress, cancel=j.cancel)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, Cancelled):
                self.ctx.tell(f"Adding {name} was cancelled; nothing was added.", "info")
            else:
                self.ctx.tell(
                    f"Could not add {name}: {describe(exc)}. Nothing was added to your library.",
                    "error",
                )
            self.import_done.emit(exc)

        verb = "Copying" if mode == "copy" else "Adding"
        self._run(job, f"{verb} {name}…", lambda r: self._imported(r, convert), failed)

    def _imported(self, records: list[ModelRecord], convert: bool = False) -> None:
        if records:
            first = records[0]
            more = f" and {len(records) - 1} more" if len(records) > 1 else ""
            self.ctx.tell(f"Added {first.name}{more} to your library.", "info")
            self.ctx.library_changed.emit(first.id)
            if convert:
                self.ctx.convert.emit(first.id)
            else:
                self.session.choose(first.id)
        self.import_done.emit(records)

    # -- scanning ------------------------------------------------------------------------
    def scan(self) -> None:
        from app.library_ops import scan_stores

        catalog = self.ctx.catalog
        if self.busy or catalog is None:
            if self.busy:
                self.ctx.tell("Wait for the current import or scan to finish.", "warning")
            return

        def done(text: str) -> None:
            self.ctx.tell(text, "info")
            self.message.emit(text)
            self.ctx.library_changed.emit("")

        self._run(
            lambda _j: scan_stores(catalog),
            "Scanning for models…",
            done,
            lambda exc: self.ctx.error("The scan failed", exc),
        )

    # -- removing ------------------------------------------------------------------------
    def confirm_remove(self, model_id: str) -> QMessageBox | None:
        if self.ctx.catalog is None:
            return None
        try:
            record = self.ctx.catalog.get(model_id)
        except FiresideError as exc:
            self.ctx.tell(str(exc), "error")
            return None
        what = (
            "Its files in the library will be deleted."
            if record.owned
            else f"Its files stay where they are ({record.path})."
        )
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Remove model",
            f"Remove {record.name} from your library? {what}",
            QMessageBox.StandardButton.Cancel,
            self.parent_widget,
        )
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.buttonClicked.connect(lambda b: self.remove(model_id) if b is remove else None)
        box.open()
        return box

    def remove(self, model_id: str) -> None:
        from app.library_ops import remove_model

        if self.ctx.catalog is None:
            return
        if model_id == self.session.ready_id and self.session.answering():
            self.ctx.tell("Stop the answer before removing the model that writes it.", "warning")
            return
        try:
            text = remove_model(model_id, self.ctx.catalog)
        except FiresideError as exc:
            self.message.emit(sentence(str(exc)))
            self.ctx.tell(str(exc), "error")
            return
        self.session.forget(model_id)
        self.message.emit(sentence(text) + ".")
        self.ctx.library_changed.emit("")
