"""The engine: a backend living in a child process.

A native crash in llama.cpp, MLX or torch (a segfault on a hostile file, the OOM killer)
ends the child, never the window, the server or the chat history. The parent notices
within a poll interval and reports it in plain words; the next ``load`` starts a fresh child.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import models.errors as model_errors
from models.records import ModelRecord

from . import errors as runtime_errors
from .backend import BackendOptions
from .errors import EngineCrashed, ModelLoadError
from .params import GenerationParams
from .types import Chunk, Message, ModelInfo, Progress

POLL_S = 0.05


def _error_class(name: str) -> type[Exception]:
    for module in (runtime_errors, model_errors):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, model_errors.FiresideError):
            return cls
    return model_errors.FiresideError


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped responding"
    if code < 0:
        try:
            return f"crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"crashed (signal {-code})"
    return f"exited unexpectedly (status {code})"


def _child_main(conn: Any, cancel: Any) -> None:  # pragma: no cover - runs in the child
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    from .dispatch import create_backend

    backend = None

    def send_error(exc: BaseException) -> None:
        if isinstance(exc, model_errors.FiresideError):
            conn.send(("error", type(exc).__name__, str(exc)))
        else:
            conn.send(("error", "FiresideError", f"the engine failed: {type(exc).__name__}: {exc}"))

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        op = msg[0]
        try:
            if op == "load":
                _, record, options, override = msg
                if backend is not None:
                    backend.unload()
                    backend = None
                candidate = create_backend(record, options, override)
                info = candidate.load(lambda d, t: conn.send(("progress", d, t)))
                backend = candidate
                conn.send(("loaded", info))
            elif op in ("chat", "complete"):
                _, payload, params = msg
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
                        conn.send(("chunk", chunk))
                except Exception as exc:
                    if not started:
                        raise
                    conn.send(("chunk", Chunk("", 0, 0, "error", error=str(exc))))
            elif op == "tokenize":
                conn.send(
                    ("result", len(backend.prompt_tokens(msg[1], msg[2])[0]) if backend else 0)
                )
            elif op == "unload":
                if backend is not None:
                    backend.unload()
                backend = None
                conn.send(("ok",))
            elif op == "exit":
                return
        except Exception as exc:
            send_error(exc)


class Engine:
    """One model at a time, in a child process. Thread-safe; ``cancel`` may be called anytime."""

    def __init__(self) -> None:
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Any = None
        self._cancel = self._ctx.Event()
        self._lock = threading.Lock()
        self.info: ModelInfo | None = None
        self.record: ModelRecord | None = None

    # -- process management --------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        proc = self._proc  # read once: another thread may close the engine meanwhile
        return proc.pid if proc is not None and proc.is_alive() else None

    def _start(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_child_main, args=(child, self._cancel), name="fireside-engine", daemon=True
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent

    def _crashed(self) -> EngineCrashed:
        code = None
        if self._proc is not None:
            self._proc.join(timeout=1)
            code = self._proc.exitcode
        name = self.record.name if self.record else "the model"
        self._proc = self._conn = None
        self.info = None
        return EngineCrashed(
            f"the engine running {name} {_describe_exit(code)}. Your conversation is safe; "
            f"load the model again to continue"
        )

    def _recv(self) -> tuple:
        while True:
            try:
                if self._conn.poll(POLL_S):
                    return self._conn.recv()
            except (EOFError, OSError):
                raise self._crashed() from None
            if not self._proc.is_alive():
                # Drain what it sent before dying.
                try:
                    if self._conn.poll(0):
                        return self._conn.recv()
                except (EOFError, OSError):
                    pass
                raise self._crashed()

    def _send(self, msg: tuple) -> None:
        try:
            self._conn.send(msg)
        except (BrokenPipeError, OSError):
            raise self._crashed() from None

    @staticmethod
    def _raise(msg: tuple) -> None:
        raise _error_class(msg[1])(msg[2])

    # -- the API ------------------------------------------------------------------------
    def load(
        self,
        record: ModelRecord,
        options: BackendOptions | None = None,
        *,
        backend: str | None = None,
        progress: Progress | None = None,
    ) -> ModelInfo:
        with self._lock:
            self._start()
            self.record, self.info = record, None
            self._send(("load", record, options or BackendOptions(), backend))
            while True:
                msg = self._recv()
                if msg[0] == "progress":
                    if progress:
                        progress(msg[1], msg[2])
                elif msg[0] == "loaded":
                    self.info = msg[1]
                    return msg[1]
                elif msg[0] == "error":
                    self._raise(msg)

    def _stream(self, op: str, payload: Any, params: GenerationParams | None) -> Iterator[Chunk]:
        with self._lock:
            if self._proc is None or not self._proc.is_alive() or self.info is None:
                raise ModelLoadError("no model is loaded")
            self._cancel.clear()
            self._send((op, payload, params or GenerationParams()))
            n_prompt = n_gen = 0
            done = False
            try:
                while True:
                    try:
                        msg = self._recv()
                    except EngineCrashed as exc:
                        done = True
                        yield Chunk("", n_prompt, n_gen, "error", error=str(exc))
                        return
                    if msg[0] == "error":
                        done = True
                        self._raise(msg)
                    chunk: Chunk = msg[1]
                    n_prompt, n_gen = chunk.prompt_tokens, chunk.completion_tokens
                    done = chunk.finish_reason is not None
                    yield chunk
                    if done:
                        return
            finally:
                if not done:
                    # The caller stopped reading (closed the iterator, or it was collected):
                    # stop the child and take the rest of this answer off the pipe, so the
                    # next request does not read stale chunks.
                    self._drain()

    def _drain(self) -> None:
        self._cancel.set()
        while True:
            try:
                msg = self._recv()
            except EngineCrashed:
                return
            if msg[0] == "error" or (msg[0] == "chunk" and msg[1].finish_reason is not None):
                return

    def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> Iterator[Chunk]:
        """Answer a conversation. Runs in the child; chunks arrive as they are made.

        Consume it to the end (or call ``cancel()`` and then consume it): the engine serves
        one stream at a time.
        """
        return self._stream("chat", [dict(m) for m in messages], params)

    def complete(self, prompt: str, params: GenerationParams | None = None) -> Iterator[Chunk]:
        return self._stream("complete", prompt, params)

    def count_prompt_tokens(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> int:
        with self._lock:
            if self.info is None:
                return 0
            self._send(("tokenize", [dict(m) for m in messages], params or GenerationParams()))
            msg = self._recv()
            if msg[0] == "error":
                self._raise(msg)
            return int(msg[1])

    def cancel(self) -> None:
        """Stop the current answer; its stream ends with finish_reason 'cancelled'."""
        self._cancel.set()

    def kill(self) -> None:
        """End the child at once, whatever it is doing (a load cannot be stopped politely).

        The call in progress fails with :class:`EngineCrashed`; the next ``load`` starts a
        fresh child. Safe from any thread.
        """
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()

    def unload(self) -> None:
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self.info = None
                return
            self._send(("unload",))
            msg = self._recv()
            self.info = None
            if msg[0] == "error":
                self._raise(msg)

    def close(self) -> None:
        """Stop the child process (gracefully, then by force)."""
        self._cancel.set()
        with self._lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
            self.info = None
            if proc is None:
                return
            try:
                conn.send(("exit",))
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=3)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=3)
            conn.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
