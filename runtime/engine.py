"""The engine: a backend living in a child process, serving several streams at once.

A native crash in llama.cpp, MLX or torch (a segfault on a hostile file, the OOM killer)
ends the child, never the window, the server or the chat history. The parent notices
within a poll interval and reports it in plain words; the next ``load`` starts a fresh child.

Every message on the pipe carries a request id, so concurrent streams share one child: the
child runs each stream on a thread of its own (as many at once as the backend serves in
parallel; llama.cpp batches them, the others take turns), and the parent's reader thread
hands each message to the stream it belongs to. The child's side is runtime.engine_child.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import queue
import signal
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any

from models.records import ModelRecord

from .backend import BackendOptions
from .engine_child import child_main
from .errors import EngineCrashed, ModelLoadError
from .params import GenerationParams
from .types import Chunk, Message, ModelInfo, Progress

POLL_S = 0.05


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped responding"
    if code < 0:
        try:
            return f"crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"crashed (signal {-code})"
    return f"exited unexpectedly (status {code})"


class EngineStream:
    """One answer from the engine: iterate it for chunks; ``cancel()`` from any thread.

    Closing it before the end (or dropping it) stops the answer in the child and takes the
    rest off the pipe, so its slot is free for the next request.
    """

    def __init__(self, engine: Engine, op: str, payload: Any, params: GenerationParams) -> None:
        self._engine, self._op, self._payload, self._params = engine, op, payload, params
        self._rid: int | None = None
        self._queue: queue.SimpleQueue | None = None
        self._cancelled = False
        self._done = False
        self._gen = self._run()

    def __iter__(self) -> Iterator[Chunk]:
        return self

    def __next__(self) -> Chunk:
        return next(self._gen)

    def cancel(self) -> None:
        self._cancelled = True
        if self._rid is not None and not self._done:
            self._engine._post(("cancel", 0, self._rid))

    def close(self) -> None:
        self._gen.close()

    def _run(self) -> Generator[Chunk, None, None]:
        engine = self._engine
        if engine.info is None or engine.pid is None:
            raise ModelLoadError("no model is loaded")
        self._rid, self._queue = engine._open(self._op, self._payload, self._params)
        if self._cancelled:  # cancelled before it started
            engine._post(("cancel", 0, self._rid))
        n_prompt = n_gen = 0
        try:
            while True:
                msg = self._queue.get()
                if msg[0] == "crashed":
                    self._done = True
                    yield Chunk("", n_prompt, n_gen, "error", error=msg[1])
                    return
                if msg[0] == "error":
                    self._done = True
                    raise msg[2]
                chunk: Chunk = msg[2]
                n_prompt, n_gen = chunk.prompt_tokens, chunk.completion_tokens
                self._done = chunk.finish_reason is not None
                yield chunk
                if self._done:
                    return
        finally:
            if not self._done:
                engine._post(("cancel", 0, self._rid))
                while True:  # drain what the child still sends for this answer
                    msg = self._queue.get()
                    if msg[0] in ("crashed", "error") or msg[2].finish_reason is not None:
                        break
            engine._forget(self._rid)


class Engine:
    """One model at a time, in a child process; several streams at once. Thread-safe.

    ``start="fork"`` starts the child as a copy of this process, skipping a fresh
    interpreter's start-up (about 0.3 s): for a one-shot answer from a process that has no
    threads yet (the CLI). Everything long-lived uses the default, a fresh interpreter.
    """

    def __init__(self, start: str = "spawn") -> None:
        if start not in mp.get_all_start_methods():
            start = "spawn"
        self._ctx: Any = mp.get_context(start)
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()  # one load/unload/close at a time
        self._send_lock = threading.Lock()
        self._queues: dict[int, queue.SimpleQueue] = {}
        self._queues_lock = threading.Lock()
        self._ids = itertools.count(1)
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
            target=child_main, args=(child,), name="fireside-engine", daemon=True
        )
        proc.start()
        child.close()
        self._proc, self._conn = proc, parent
        threading.Thread(
            target=self._read, args=(proc, parent), name="fireside-engine-reader", daemon=True
        ).start()

    def _read(self, proc: Any, conn: Any) -> None:
        """Hand every message from the child to the request it answers; report its death."""
        while True:
            try:
                if conn.poll(POLL_S):
                    msg = conn.recv()
                    with self._queues_lock:
                        q = self._queues.get(msg[1])
                    if q is not None:
                        q.put(msg)
                    continue
            except (EOFError, OSError):
                pass
            else:
                if proc.is_alive():
                    continue
            break
        proc.join(timeout=1)
        if self._proc is proc:
            self._proc = self._conn = None
            self.info = None
        name = self.record.name if self.record else "the model"
        text = (
            f"the engine running {name} {_describe_exit(proc.exitcode)}. Your conversation is "
            f"safe; load the model again to continue"
        )
        with self._queues_lock:
            waiting = list(self._queues.values())
        for q in waiting:
            q.put(("crashed", text))

    def _post(self, msg: tuple) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            with self._send_lock:
                conn.send(msg)
        except (BrokenPipeError, OSError):
            pass  # the reader reports the death to everyone waiting

    def _open(self, op: str, *args: Any) -> tuple[int, queue.SimpleQueue]:
        rid = next(self._ids)
        q: queue.SimpleQueue = queue.SimpleQueue()
        with self._queues_lock:
            self._queues[rid] = q
        if self._conn is None:
            q.put(("crashed", "the engine is not running; load the model again"))
        else:
            self._post((op, rid, *args))
        return rid, q

    def _forget(self, rid: int) -> None:
        with self._queues_lock:
            self._queues.pop(rid, None)

    def _call(self, op: str, *args: Any, progress: Progress | None = None) -> tuple:
        rid, q = self._open(op, *args)
        try:
            while True:
                msg = q.get()
                if msg[0] == "progress":
                    if progress:
                        progress(msg[2], msg[3])
                    continue
                if msg[0] == "crashed":
                    raise EngineCrashed(msg[1])
                if msg[0] == "error":
                    raise msg[2]
                return msg
        finally:
            self._forget(rid)

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
            msg = self._call(
                "load", record, options or BackendOptions(), backend, progress=progress
            )
            self.info = msg[2]
            return msg[2]

    def stream(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> EngineStream:
        """Answer a conversation. Runs in the child; chunks arrive as they are made.

        Several streams may run at once (up to ``info.parallel`` are served together; the
        rest wait in the child). Consume each to the end, or close or cancel it.
        """
        return EngineStream(self, "chat", [dict(m) for m in messages], params or GenerationParams())

    def complete(self, prompt: str, params: GenerationParams | None = None) -> EngineStream:
        return EngineStream(self, "complete", prompt, params or GenerationParams())

    def count_prompt_tokens(
        self, messages: Sequence[Message], params: GenerationParams | None = None
    ) -> int:
        if self.info is None:
            return 0
        msg = self._call("tokenize", [dict(m) for m in messages], params or GenerationParams())
        return int(msg[2])

    def cancel(self) -> None:
        """Stop every answer in progress; each stream ends with finish_reason 'cancelled'."""
        self._post(("cancel", 0, None))

    def kill(self) -> None:
        """End the child at once, whatever it is doing (a load cannot be stopped politely).

        Calls in progress fail with :class:`EngineCrashed`; the next ``load`` starts a
        fresh child. Safe from any thread.
        """
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()

    def unload(self) -> None:
        with self._lock:
            if self.pid is None:
                self.info = None
                return
            try:
                self._call("unload")
            finally:
                self.info = None

    def close(self) -> None:
        """Stop the child process (gracefully, then by force)."""
        self.cancel()
        with self._lock:
            proc, conn = self._proc, self._conn
            if proc is None:
                self.info = None
                return
            self._post(("exit", 0))
            proc.join(timeout=3)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=3)
            self._proc = self._conn = None
            self.info = None
            conn.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
