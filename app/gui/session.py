"""The window's model: which one is chosen, loading it, whether it is ready, how it fits.

One :class:`ModelSession` per window; the chat page's model bar shows it, the My models page
picks for it, and the server shares the loaded engine through the same host.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from app.library_ops import Fit, fit_of
from models import BUNDLED_ID, ModelRecord
from models.errors import FiresideError, describe
from models.fit import load_context
from runtime import ModelInfo

from .context import AppContext
from .worker import Worker, run_job


class ModelSession(QObject):
    records_changed = Signal()  # the library's list, the choice or a fit verdict changed
    load_started = Signal(object)  # the record being loaded
    load_progress = Signal(object, object)
    ready = Signal(object, object)  # record, ModelInfo
    load_failed = Signal(object, str, bool)  # record, message, cancelled
    lost = Signal(str)  # the ready model is gone (its engine stopped, or it was removed)

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.selected: ModelRecord | None = None
        self.ready_record: ModelRecord | None = None
        self.fits: dict[str, Fit] = {}
        self._fit_pending = False
        self._load: Worker | None = None
        self._load_record: ModelRecord | None = None
        self.answering = lambda: False  # set by the chat: a model cannot change mid-answer

    # -- what there is -------------------------------------------------------------------
    @property
    def ready_id(self) -> str | None:
        return self.ready_record.id if self.ready_record is not None else None

    @property
    def loading(self) -> bool:
        return self._load is not None

    def records(self) -> list[ModelRecord]:
        return self.ctx.catalog.list() if self.ctx.catalog is not None else []

    def fit(self, model_id: str) -> Fit:
        return self.fits.get(model_id, Fit("unknown", "estimating the memory it needs…"))

    def info(self) -> ModelInfo | None:
        """The ready model's ModelInfo while its engine runs; None after a crash."""
        record = self.ready_record
        return self.ctx.host.info(record) if record is not None else None

    def context_length(self) -> int:
        info = self.info()
        if info is not None:
            return info.context_length
        if self.selected is not None and self.selected.context_length:
            return load_context(None, self.selected.context_length)
        return 0

    def refresh(self, select: str | None = None) -> None:
        """Re-read the library (after an import, a download, a removal); keeps the choice."""
        records = self.records()
        missing = [r for r in records if r.id not in self.fits]
        if missing and not self._fit_pending:
            self._fit_pending = True
            run_job(
                lambda _j: {r.id: fit_of(r) for r in missing},
                on_done=self._on_fits,
                on_finished=lambda: setattr(self, "_fit_pending", False),
                name="fireside-fit",
            )
        wanted = select or (self.selected.id if self.selected else None)
        wanted = wanted or self.ctx.settings.get("model_id") or BUNDLED_ID
        by_id = {r.id: r for r in records}
        self.selected = by_id.get(wanted) or (records[0] if records else None)
        self.records_changed.emit()

    def _on_fits(self, fits: dict[str, Fit]) -> None:
        self.fits.update(fits)
        if not self.ctx.closing:
            self.records_changed.emit()

    # -- choosing and loading ------------------------------------------------------------
    def choose(self, model_id: str) -> bool:
        """Make ``model_id`` the window's model and load it (unless it is ready already)."""
        if self.ctx.catalog is None:
            return False
        if self.answering():
            self.ctx.tell("Stop the current answer before loading another model.", "warning")
            self.records_changed.emit()
            return False
        try:
            record = self.ctx.catalog.get(model_id)
        except FiresideError as exc:
            self.ctx.tell(str(exc), "error")
            self.refresh()
            return False
        self.refresh(select=record.id)
        if self.ready_id != record.id or self.info() is None:
            self.load(record)
        return True

    def load_selected(self) -> None:
        if self.selected is None:
            self.ctx.tell(
                "There is no model in the library yet. Drop a .gguf file or a model folder on "
                "this window, or find one on the Discover page.",
                "info",
            )
            return
        self.load(self.selected)

    def load(self, record: ModelRecord) -> None:
        if self._load is not None:
            self._load.cancel()
        host = self.ctx.host
        self.ready_record = None

        def job(j: Any) -> Any:
            # Waits its turn if the server is answering with this model; a cancel ends the
            # half-loaded engine child (a load cannot be stopped politely).
            return host.load(record, progress=j.progress, cancel=j.cancel)

        worker = Worker(job, name="fireside-load")  # started once connected
        self._load, self._load_record = worker, record
        worker.progress.connect(lambda d, t: self._progress(worker, d, t))
        worker.done.connect(lambda info: self._loaded(worker, record, info))
        worker.failed.connect(lambda exc: self._failed(worker, record, exc))
        worker.finished.connect(lambda: self._ended(worker))
        self.load_started.emit(record)
        worker.start()

    def cancel_load(self) -> None:
        if self._load is not None:
            self._load.cancel()  # its failure reports "cancelled"

    def _progress(self, worker: Worker, done: int, total: int) -> None:
        if worker is self._load:
            self.load_progress.emit(done, total)

    def _loaded(self, worker: Worker, record: ModelRecord, info: ModelInfo) -> None:
        if worker is not self._load or worker.cancelled or self.ctx.closing:
            return
        self._load = None
        self.ready_record = record
        self.ctx.save_settings({"model_id": record.id})
        self.ready.emit(record, info)

    def _failed(self, worker: Worker, record: ModelRecord, exc: BaseException) -> None:
        if worker is not self._load or self.ctx.closing:
            return
        self._load = None
        if worker.cancelled:
            self.load_failed.emit(record, f"Loading {record.name} was cancelled.", True)
        else:
            self.load_failed.emit(record, f"Could not load {record.name}: {describe(exc)}", False)

    def _ended(self, worker: Worker) -> None:
        if worker is self._load:  # ended without done/failed reaching us
            self._load = None

    def wait_for_load(self, timeout: float) -> None:
        """At shutdown: cancel a load in flight and let it end."""
        worker = self._load
        if worker is not None:
            worker.cancel()
            worker.wait(timeout)

    def engine_stopped(self, why: str) -> None:
        """The engine of the ready model died (a crash): it has to be loaded again."""
        self.ready_record = None
        self.lost.emit(why)

    def forget(self, model_id: str) -> None:
        """``model_id`` left the library: unload it (off the GUI thread) and choose again."""
        if self.ready_id == model_id:
            host = self.ctx.host
            # It waits for an answer the server may be writing with it.
            run_job(lambda _j: host.unload(model_id), name="fireside-unload")
            self.ready_record = None
            self.lost.emit("Not loaded")
        if self.selected is not None and self.selected.id == model_id:
            self.selected = None
        self.fits.pop(model_id, None)
        self.refresh()
