"""The bridge from a runtime answer (a blocking iterator of chunks) to the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from .errors import ClientGone

DISCONNECT_POLL_S = 0.2
END = object()  # what ``Feed.next`` returns once the answer has no more chunks


class Feed:
    """Runs a HostRequest on its own thread and hands its chunks to the event loop.

    A client that stops taking the answer (connected, but not reading: the socket is full and
    each send waits) would keep the model working for nobody: when chunks have waited for more
    than ``stall_s`` since the client last took one, the answer is cancelled, which frees the
    model for the next request."""

    def __init__(self, hreq: Any, stall_s: float | None = None) -> None:
        self.hreq = hreq
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.done = False
        self.stall_s = stall_s
        self.produced = self.taken = 0
        self.taken_at = time.monotonic()

    def start(self) -> None:
        threading.Thread(target=self._produce, name="fireside-http-answer", daemon=True).start()

    def _put(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the server is shutting down and its loop is gone
            self.hreq.cancel()

    def _produce(self) -> None:
        try:
            for chunk in self.hreq:
                self._put(chunk)
                self.produced += 1
                if self.stalled():
                    self.hreq.cancel()  # its last chunk (cancelled) ends the stream
        except BaseException as exc:
            self._put(exc)
        else:
            self._put(END)

    def stalled(self) -> bool:
        """Chunks are waiting and the client has taken none of them for ``stall_s``."""
        waiting = self.produced - self.taken > 1
        return bool(self.stall_s) and waiting and time.monotonic() - self.taken_at > self.stall_s

    async def next(self, request: Any = None) -> Any:
        """The next chunk, exception or END; cancels the answer if the client went away."""
        if request is None:
            item = await self.queue.get()
        else:
            while True:
                try:
                    item = await asyncio.wait_for(self.queue.get(), DISCONNECT_POLL_S)
                    break
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        self.cancel()
                        raise ClientGone() from None
        self.taken += 1
        self.taken_at = time.monotonic()
        finished = getattr(item, "finish_reason", None) is not None
        if item is END or isinstance(item, BaseException) or finished:
            self.done = True
        return item

    def cancel(self) -> None:
        if not self.done:
            self.hreq.cancel()
