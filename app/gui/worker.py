"""The one worker abstraction: run a plain-Python job off the GUI thread, talk back by signals.

A job is a callable taking a :class:`Job` (``job.progress(done, total)``, ``job.cancel`` with
``is_set()``). If it returns an iterator, every item is sent to the GUI as ``yielded`` as it
comes (a generation's chunks); what it finally returns arrives as ``done``, an exception as
``failed``. ``finished`` always comes last. The widget never waits for the job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Signal

from models.work import Progress

_live: set[Worker] = set()  # keeps running workers (and their signals) alive


class Job:
    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self.cancel = threading.Event()

    def progress(self, done: int, total: int) -> None:
        self._worker.progress.emit(int(done), int(total))


class Worker(QObject):
    """Connect its signals first, then ``start()``: a fast job may end at once."""

    yielded = Signal(object)
    progress = Signal(object, object)  # done, total: Python ints (files pass 2 GiB)
    done = Signal(object)
    failed = Signal(object)  # the exception
    finished = Signal()

    def __init__(self, fn: Callable[[Job], Any], name: str = "fireside-worker") -> None:
        super().__init__()
        self._fn = fn
        self.job = Job(self)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.running = False

    def start(self) -> Worker:
        _live.add(self)
        self.running = True
        self.finished.connect(self._forget)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.job.cancel.set()

    @property
    def cancelled(self) -> bool:
        return self.job.cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests and shutdown only; never on a user action)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            result = self._fn(self.job)
            if isinstance(result, Iterator):
                for item in result:
                    if not self._emit(self.yielded, item):
                        return
                result = None
            self._emit(self.done, result)
        except BaseException as exc:  # reported to the GUI, never lost in a thread
            self._emit(self.failed, exc)
        finally:
            self.running = False
            self._emit(self.finished)

    @staticmethod
    def _emit(signal: Any, *args: Any) -> bool:
        """False once the window is gone (Qt deleted this object as the app quit)."""
        try:
            signal.emit(*args)
        except RuntimeError:
            return False
        return True

    def _forget(self) -> None:
        _live.discard(self)


def run_job(
    fn: Callable[[Job], Any],
    *,
    on_yield: Callable[[Any], None] | None = None,
    on_progress: Progress | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_finished: Callable[[], None] | None = None,
    name: str = "fireside-worker",
) -> Worker:
    """Start ``fn`` on a worker thread with its signals connected to these GUI callbacks."""
    worker = Worker(fn, name)
    if on_yield:
        worker.yielded.connect(on_yield)
    if on_progress:
        worker.progress.connect(on_progress)
    if on_done:
        worker.done.connect(on_done)
    if on_error:
        worker.failed.connect(on_error)
    if on_finished:
        worker.finished.connect(on_finished)
    return worker.start()
