"""The engine process's own side: one reader loop on the pipe from the parent, and a thread
per stream, each running the backend's answer and sending its chunks back with their
request id (runtime.engine is the parent's side). Errors cross the pipe whole."""

from __future__ import annotations

import pickle
import signal
import threading
from typing import Any

import models.errors as model_errors

from .errors import ModelLoadError
from .types import Chunk


def whole_error(exc: BaseException) -> model_errors.FiresideError:
    """The error to send to the parent as it is (class, message and attributes, pickled):
    one of ours from any layer, or a plain sentence for anything else. Never a class name."""
    if isinstance(exc, model_errors.FiresideError):
        exc.__traceback__ = None
        exc.__cause__ = exc.__context__ = None
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:
            return model_errors.FiresideError(str(exc))
    return model_errors.FiresideError(f"the engine failed: {model_errors.describe(exc)}")


class Child:  # pragma: no cover - runs in the child
    """The child's side: one reader loop (this thread) and a thread per stream."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.send_lock = threading.Lock()
        self.backend: Any = None
        self.streams: dict[int, threading.Event] = {}
        self.threads: dict[int, threading.Thread] = {}
        self.gate = threading.Semaphore(1)

    def send(self, *msg: Any) -> None:
        with self.send_lock:
            self.conn.send(msg)

    def stop_streams(self) -> None:
        for event in list(self.streams.values()):
            event.set()
        for thread in list(self.threads.values()):
            thread.join()

    def run_stream(self, rid: int, op: str, payload: Any, params: Any) -> None:
        cancel = self.streams[rid]
        try:
            with self.gate:
                backend = self.backend
                if backend is None:
                    raise ModelLoadError("no model is loaded")
                gen = (
                    backend.stream(payload, params, cancel)
                    if op == "chat"
                    else backend.complete(payload, params, cancel)
                )
                started = False
                try:
                    for chunk in gen:
                        started = True
                        self.send("chunk", rid, chunk)
                except Exception as exc:
                    if not started:
                        raise
                    self.send("chunk", rid, Chunk("", 0, 0, "error", error=str(whole_error(exc))))
        except Exception as exc:
            self.send("error", rid, whole_error(exc))
        finally:
            self.streams.pop(rid, None)
            self.threads.pop(rid, None)

    def handle(self, msg: tuple) -> bool:
        op, rid = msg[0], msg[1]
        if op == "load":
            _, _, record, options, override = msg
            self.stop_streams()
            if self.backend is not None:
                self.backend.unload()
                self.backend = None
            from .dispatch import create_backend

            candidate = create_backend(record, options, override)
            info = candidate.load(lambda d, t: self.send("progress", rid, d, t))
            self.backend = candidate
            self.gate = threading.Semaphore(max(1, info.parallel))
            self.send("loaded", rid, info)
        elif op in ("chat", "complete"):
            self.streams[rid] = threading.Event()
            thread = threading.Thread(
                target=self.run_stream, args=(rid, op, msg[2], msg[3]), daemon=True
            )
            self.threads[rid] = thread
            thread.start()
        elif op == "cancel":
            targets = self.streams.values() if msg[2] is None else [self.streams.get(msg[2])]
            for event in list(targets):
                if event is not None:
                    event.set()
        elif op == "tokenize":
            n = len(self.backend.prompt_tokens(msg[2], msg[3])[0]) if self.backend else 0
            self.send("result", rid, n)
        elif op == "unload":
            self.stop_streams()
            if self.backend is not None:
                self.backend.unload()
            self.backend = None
            self.send("ok", rid)
        elif op == "exit":
            self.shut_down()
            return False
        return True

    def shut_down(self) -> None:
        self.stop_streams()
        if self.backend is not None:
            self.backend.unload()
            self.backend = None

    def main(self) -> None:
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                self.shut_down()  # the parent is gone
                return
            try:
                if not self.handle(msg):
                    return
            except Exception as exc:
                self.send("error", msg[1], whole_error(exc))


def child_main(conn: Any) -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    Child(conn).main()
