"""The downloads controller: owns the download queue (models.hub.queue) and runs one
download at a time off the GUI thread, through the one job runner.

Pages and the window talk to it by its public methods and signals only. A finished download
asks the library to show the new model (``ctx.library_changed``); a failure reaches the
banner in plain words (``ctx.tell``). Downloads interrupted by quitting or a crash continue
on the next start, from their partial files, unless offline mode is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from .context import AppContext
from .worker import Job, Worker, run_job

if TYPE_CHECKING:
    from models.hub import DownloadEntry, DownloadQueue


class DownloadsController(QObject):
    """The queue's face for the window: ``enqueue``, ``pause``, ``resume``, ``cancel``."""

    changed = Signal(str)  # an entry's id: added, its state changed, or removed
    progressed = Signal(str)  # an entry's bytes moved: read entry(id) and rate(id)
    active_count_changed = Signal(int)  # waiting or running downloads (for a badge)

    def __init__(self, ctx: AppContext, queue: DownloadQueue | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self._queue = queue
        self._worker: Worker | None = None
        self._running: str | None = None
        self._meter: Any = None
        self._rate: tuple[float, float | None] = (0.0, None)
        self._count = -1
        self._seen = ""  # the running entry's state as last announced
        self._held = False  # offline mode from $HF_HUB_OFFLINE or the setting stopped a run
        ctx.offline_changed.connect(self._offline_changed)
        QTimer.singleShot(0, self._start_next)  # resume interrupted downloads once shown

    # -- reading ----------------------------------------------------------------------------
    @property
    def queue(self) -> DownloadQueue:
        if self._queue is None:  # models.hub is imported off the start-up path
            from models.hub import DownloadQueue

            self._queue = DownloadQueue()
        return self._queue

    def entries(self) -> list[DownloadEntry]:
        return self.queue.entries()

    def entry(self, entry_id: str) -> DownloadEntry:
        return self.queue.get(entry_id)

    def find(self, repo: str, label: str) -> DownloadEntry | None:
        """The newest download of this repository's variant (not a cancelled one)."""
        return self.queue.find(repo, label)

    def active_count(self) -> int:
        """Downloads waiting or running (paused, failed and finished ones do not count)."""
        return self.queue.active_count()

    def running_id(self) -> str | None:
        return self._running

    def waiting_for_network(self) -> bool:
        """True while offline mode (the window's, the setting or $HF_HUB_OFFLINE) holds the
        queue: nothing starts until it is turned off."""
        return self.ctx.offline or self._held

    def rate(self, entry_id: str) -> tuple[float, float | None]:
        """``(bytes per second, seconds left or None)`` of the running download."""
        return self._rate if entry_id == self._running else (0.0, None)

    # -- changing ---------------------------------------------------------------------------
    def enqueue(
        self,
        repo: str,
        quant: str | None = None,
        *,
        label: str | None = None,
        revision: str | None = None,
        size: int = 0,
    ) -> str:
        """Queue one GGUF variant (``quant``: its name) or a model folder (None); its id."""
        entry = self.queue.add(repo, quant, label=label, revision=revision, size=size)
        self._changed(entry.id)
        if self.ctx.offline:
            self.ctx.tell(
                f"{entry.name} is queued; it downloads when offline mode is turned off.", "info"
            )
        self._start_next()
        return entry.id

    def pause(self, entry_id: str) -> None:
        self.queue.pause(entry_id)
        self._changed(entry_id)

    def resume(self, entry_id: str) -> None:
        """Continue a paused or failed download from where it stopped."""
        self.queue.resume(entry_id)
        self._changed(entry_id)
        self._start_next()

    def cancel(self, entry_id: str) -> None:
        """Give the download up and delete its partial files."""
        self.queue.cancel(entry_id)
        self._changed(entry_id)

    def remove(self, entry_id: str) -> None:
        """Take a finished, cancelled or failed download off the list."""
        self.queue.remove(entry_id)
        self._changed(entry_id)

    def shutdown(self, timeout: float = 5.0) -> None:
        """The window is closing: stop the transfer, keeping it for the next start."""
        worker = self._worker
        if worker is not None:
            worker.cancel()
            worker.wait(timeout)

    # -- running ----------------------------------------------------------------------------
    def _start_next(self) -> None:
        if self._worker is not None or self.ctx.closing or self.waiting_for_network():
            self._emit_count()
            return
        entry = self.queue.next_queued()
        if entry is None:
            self._emit_count()
            return
        from models.hub import Meter

        entry_id = self._running = entry.id
        self._meter, self._rate, self._seen = Meter(), (0.0, None), entry.state
        queue, catalog, offline = self.queue, self.ctx.catalog, self.ctx.offline or None

        def job(j: Job) -> Any:
            def progress(done: int, total: int) -> None:  # a fraction: Qt ints are 32-bit
                j.progress(done * 1000 // total if total else 0, 1000)

            return queue.run(
                entry_id, progress=progress, cancel=j.cancel, catalog=catalog, offline=offline
            )

        self._worker = run_job(
            job,
            on_progress=lambda *_: self._moved(entry_id),
            on_done=self._ended,
            on_error=lambda exc: self._failed(entry_id, exc),
            on_finished=self._finished,
            name="fireside-download",
        )
        self._changed(entry_id)

    def _moved(self, entry_id: str) -> None:
        entry = self.queue.get(entry_id)
        if self._meter is not None and entry_id == self._running:
            self._rate = self._meter.update(entry.done, entry.total)
        if entry.state != self._seen:  # it went from waiting to downloading on the worker
            self._seen = entry.state
            self.changed.emit(entry_id)
        self.progressed.emit(entry_id)

    def _ended(self, entry: DownloadEntry) -> None:
        self._changed(entry.id)
        if self.ctx.closing:
            return
        if entry.state == "done" and entry.model_id:
            model_id = entry.model_id
            self.ctx.library_changed.emit(model_id)
            self.ctx.tell(
                f"{entry.name} is downloaded and in your library.",
                "info",
                "Chat with it",
                lambda: self.ctx.use_model.emit(model_id),
            )
        elif entry.state == "failed":
            text = f"Could not download {entry.name}: {entry.error}"
            self.ctx.tell(text, "error", "Resume", lambda: self.resume(entry.id))

    def _failed(self, entry_id: str, exc: BaseException) -> None:
        from models.hub import HubOffline

        if isinstance(exc, HubOffline):
            self._held = True  # not again until offline mode is turned off
        self._changed(entry_id)
        if not isinstance(exc, HubOffline) and not self.ctx.closing:
            self.ctx.error(f"Could not download {self.queue.get(entry_id).name}", exc)

    def _finished(self) -> None:
        self._worker = None
        self._running = None
        self._meter = None
        if not self.ctx.closing:
            self._start_next()

    def _offline_changed(self, on: bool) -> None:
        if on and self._worker is not None:
            self._worker.cancel()  # back in the queue: it continues when offline mode is off
        elif not on:
            self._held = False
            self._start_next()

    def _changed(self, entry_id: str) -> None:
        self.changed.emit(entry_id)
        self._emit_count()

    def _emit_count(self) -> None:
        count = self.active_count()
        if count != self._count:
            self._count = count
            self.active_count_changed.emit(count)
