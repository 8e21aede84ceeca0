"""The model host: one place that owns loaded models for every face (HTTP server, chat window).

    host = ModelHost(idle_unload_s=300)
    request = host.chat(record, messages, params)   # nothing happens until it is iterated
    for chunk in request:                           # waits its turn, loads the model if needed
        ...
    request.cancel()                                # from any thread: leaves the queue, or stops
                                                    # the engine; the iterator then ends
    host.load(record, progress=..., cancel=event)   # load ahead of the first answer (the window)
    host.info(record)                               # its ModelInfo while loaded, else None
    host.close()

Rules it keeps:
- A model is loaded into its own :class:`Engine` (a child process) on its first request and
  unloaded (the child ends, its memory goes back) after ``idle_unload_s`` without requests.
- Requests for one model are admitted in the order they arrived, as many at once as its
  engine serves in parallel (llama.cpp's slots; one for the other engines); the rest wait.
- At most ``max_loaded`` local models are loaded at once; a request for another model
  unloads the one used least recently once it is idle (remote models do not count).
- A cancelled request frees the engine at once (the answer stops within a token or one prompt
  step, and the rest is drained), so the next request in line starts right away.

No Qt: the chat window wraps a request in a worker thread and turns chunks into signals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from models.errors import Cancelled, FiresideError
from models.records import ModelRecord

from .backend import BackendOptions
from .engine import Engine
from .host_slots import LoadedModel, ModelSlot
from .params import GenerationParams
from .types import Chunk, Message, ModelInfo, Progress

WAIT_POLL_S = 0.05


def _is_remote(record: ModelRecord) -> bool:
    return record.format == "remote"


class HostRequest:
    """One answer: iterate it for :class:`Chunk` s; ``cancel()`` from any thread.

    The last chunk carries the finish reason (``cancelled`` after ``cancel()``). Errors
    before the first chunk (model load, bad parameters) are raised from the iteration.
    """

    def __init__(
        self,
        host: ModelHost,
        record: ModelRecord,
        op: str,
        payload: Any,
        params: GenerationParams | None,
        progress: Progress | None,
    ) -> None:
        self._host, self.record, self._op = host, record, op
        self._payload, self._params, self._progress = payload, params, progress
        self._cancelled = threading.Event()
        self._lock = threading.Lock()  # guards _stream: a late cancel never hits the next answer
        self._stream: Any = None
        self._started = False
        self.info: ModelInfo | None = None  # set once the model is loaded

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self._stream is not None:
                self._stream.cancel()

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError("a HostRequest can be iterated once")
        self._started = True
        return self._run()

    def _run(self) -> Iterator[Chunk]:
        host = self._host
        try:
            slot = host._acquire(self.record, self._cancelled)
        except Cancelled:
            yield Chunk("", 0, 0, "cancelled")
            return
        try:
            engine = host._ensure_loaded(slot, self._progress)
            self.info = engine.info
            if self._cancelled.is_set():
                yield Chunk("", 0, 0, "cancelled")
                return
            gen = (
                engine.stream(self._payload, self._params)
                if self._op == "chat"
                else engine.complete(self._payload, self._params)
            )
            with self._lock:
                self._stream = gen
                if self._cancelled.is_set():
                    gen.cancel()
            try:
                yield from gen
            finally:
                with self._lock:
                    self._stream = None
                gen.close()  # stops and drains the answer if it was left unfinished
        finally:
            host._release(slot)


class ModelHost:
    """Loads, shares, queues and unloads models for all of Fireside's faces. Thread-safe."""

    def __init__(
        self,
        *,
        idle_unload_s: float | None = 300.0,
        max_loaded: int = 1,
        options: BackendOptions | None = None,
        engine_factory: Callable[[], Engine] = Engine,
    ) -> None:
        if max_loaded < 1:
            raise ValueError("max_loaded must be at least 1")
        self.idle_unload_s = idle_unload_s if idle_unload_s and idle_unload_s > 0 else None
        self.max_loaded = max_loaded
        self.options = options or BackendOptions()
        self._engine_factory = engine_factory
        self._cond = threading.Condition()
        self._slots: dict[tuple[str, str], ModelSlot] = {}
        self._closed = False
        self._reaper: threading.Thread | None = None
        if self.idle_unload_s is not None:
            self._reaper = threading.Thread(
                target=self._reap, name="fireside-host-reaper", daemon=True
            )
            self._reaper.start()

    # -- the API ------------------------------------------------------------------------
    def chat(
        self,
        record: ModelRecord,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        *,
        progress: Progress | None = None,
    ) -> HostRequest:
        """An answer to ``messages`` from ``record``; starts when iterated."""
        return HostRequest(self, record, "chat", [dict(m) for m in messages], params, progress)

    def complete(
        self,
        record: ModelRecord,
        prompt: str,
        params: GenerationParams | None = None,
        *,
        progress: Progress | None = None,
    ) -> HostRequest:
        """A plain continuation of ``prompt`` (no chat template); starts when iterated."""
        return HostRequest(self, record, "complete", prompt, params, progress)

    def load(
        self,
        record: ModelRecord,
        *,
        progress: Progress | None = None,
        cancel: Any = None,
    ) -> ModelInfo:
        """Load ``record`` now, waiting its turn, so its first answer starts at once.

        Returns at once if it is loaded already. ``cancel`` (anything with ``is_set()``) stops
        the wait, or the load itself by ending the half-loaded child (a load cannot be stopped
        politely); :class:`Cancelled` is raised then, and nothing stays loaded.
        """
        slot = self._acquire(record, cancel)
        done = threading.Event()
        watcher = None
        if cancel is not None and not slot.loaded:

            def watch() -> None:
                while not done.wait(WAIT_POLL_S):
                    if cancel.is_set() and slot.engine is not None:
                        slot.engine.kill()  # again each poll: the child may start late

            watcher = threading.Thread(target=watch, name="fireside-load-cancel", daemon=True)
            watcher.start()
        try:
            try:
                engine = self._ensure_loaded(slot, progress)
            except FiresideError:
                if cancel is not None and cancel.is_set():
                    raise Cancelled(f"loading {record.name} was cancelled") from None
                raise
            if cancel is not None and cancel.is_set():  # it finished just as it was cancelled
                self._close_engine(slot)
                raise Cancelled(f"loading {record.name} was cancelled")
            assert engine.info is not None
            return engine.info
        finally:
            done.set()
            if watcher is not None:
                watcher.join()
            self._release(slot)

    def info(self, record: ModelRecord) -> ModelInfo | None:
        """What the loaded ``record`` says about itself; None while it is not loaded."""
        with self._cond:
            slot = self._slots.get((record.id, record.path))
            if slot is None or not slot.loaded:
                return None
            return slot.engine.info if slot.engine is not None else None

    def status(self) -> list[LoadedModel]:
        now = time.monotonic()
        with self._cond:
            return [
                LoadedModel(
                    model_id=s.record.id,
                    loaded=s.loaded,
                    busy=s.busy,
                    queued=len(s.waiting),
                    idle_s=0.0 if s.busy else now - s.last_used,
                    info=s.engine.info if s.engine is not None else None,
                    pid=s.engine.pid if s.engine is not None else None,
                    active=s.active,
                )
                for s in self._slots.values()
            ]

    def unload(self, model_id: str | None = None) -> None:
        """Unload one model (waiting for its current answer), or every idle model."""
        with self._cond:
            slots = [s for s in self._slots.values() if model_id is None or s.record.id == model_id]
        for slot in slots:
            if model_id is None:
                with self._cond:
                    if slot.busy or slot.waiting:
                        continue
                    slot.exclusive = True
            else:
                slot = self._acquire(slot.record, None, exclusive=True)
            try:
                self._close_engine(slot)
            finally:
                self._release(slot, exclusive=True)

    def close(self) -> None:
        """Stop everything: cancel queued and running answers, end every engine."""
        with self._cond:
            self._closed = True
            slots = list(self._slots.values())
            self._cond.notify_all()
        for slot in slots:
            engine = slot.engine
            if engine is not None:
                engine.cancel()
                engine.close()
                slot.engine = None

    def __enter__(self) -> ModelHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queueing ------------------------------------------------------------------------
    def _acquire(
        self, record: ModelRecord, cancelled: Any, *, exclusive: bool = False
    ) -> ModelSlot:
        """Wait for this model's turn (first come, first served); Cancelled if cancelled.

        ``exclusive``: wait until nothing else runs on it, and keep it alone (to unload)."""
        ticket = object()
        key = (record.id, record.path)
        with self._cond:
            self._check_open()
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = ModelSlot(record)
            slot.waiting.append(ticket)
            try:
                while not slot.admits(exclusive) or slot.waiting[0] is not ticket:
                    if cancelled is not None and cancelled.is_set():
                        raise Cancelled("the request was cancelled while waiting its turn")
                    self._check_open()
                    self._cond.wait(WAIT_POLL_S)
                if cancelled is not None and cancelled.is_set():
                    raise Cancelled("the request was cancelled while waiting its turn")
            except BaseException:
                slot.waiting.remove(ticket)
                self._cond.notify_all()
                raise
            slot.waiting.popleft()
            if exclusive:
                slot.exclusive = True
            else:
                slot.active += 1
            slot.record = record  # the newest description (e.g. a renamed model)
            self._cond.notify_all()  # the next in line may be admitted beside this one
            return slot

    def _release(self, slot: ModelSlot, *, exclusive: bool = False) -> None:
        with self._cond:
            if exclusive:
                slot.exclusive = False
            else:
                slot.active -= 1
            slot.last_used = time.monotonic()
            if not slot.loaded and not slot.waiting and not slot.busy:
                self._slots.pop((slot.record.id, slot.record.path), None)
            self._cond.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise FiresideError("the model host has been shut down")

    # -- loading and unloading -----------------------------------------------------------
    def _ensure_loaded(self, slot: ModelSlot, progress: Progress | None) -> Engine:
        if slot.loaded:
            return slot.engine  # type: ignore[return-value]
        if slot.engine is not None:
            self._close_engine(slot)  # its child died while idle: start afresh
        self._make_room(slot)
        if slot.engine is None:
            slot.engine = self._engine_factory()
        try:
            slot.engine.load(slot.record, self.options, progress=progress)
        except BaseException:
            self._close_engine(slot)
            raise
        with self._cond:
            self._cond.notify_all()  # its other slots may take the next requests now
        return slot.engine

    def _make_room(self, wanted: ModelSlot) -> None:
        """Unload least-recently-used idle models until one more fits under ``max_loaded``.

        Remote models hold no weights here, so they neither count nor make room.
        """
        if _is_remote(wanted.record):
            return
        while True:
            with self._cond:
                self._check_open()
                others = [
                    s
                    for s in self._slots.values()
                    if s is not wanted and s.loaded and not _is_remote(s.record)
                ]
                if len(others) < self.max_loaded:
                    return
                idle = [s for s in others if not s.busy and not s.waiting]
                if not idle:
                    idle = [s for s in others if not s.busy]
                if not idle:
                    self._cond.wait(WAIT_POLL_S)
                    continue
                victim = min(idle, key=lambda s: s.last_used)
                victim.exclusive = True
            try:
                self._close_engine(victim)
            finally:
                self._release(victim, exclusive=True)

    def _close_engine(self, slot: ModelSlot) -> None:
        engine, slot.engine = slot.engine, None
        if engine is not None:
            engine.close()

    def _reap(self) -> None:
        assert self.idle_unload_s is not None
        period = min(1.0, self.idle_unload_s / 4)
        while True:
            time.sleep(period)
            now = time.monotonic()
            victims = []
            with self._cond:
                if self._closed:
                    return
                for s in self._slots.values():
                    if (
                        s.loaded
                        and not s.busy
                        and not s.waiting
                        and now - s.last_used >= self.idle_unload_s
                    ):
                        s.exclusive = True
                        victims.append(s)
            for s in victims:
                try:
                    self._close_engine(s)
                finally:
                    self._release(s, exclusive=True)
