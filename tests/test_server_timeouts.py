"""Slow and stuck clients: a request body that dribbles in gets a 408 naming the limit (a
real ``fireside serve`` on 127.0.0.1, a raw socket as the slow client), and a streamed answer
whose client stops taking it is cancelled, which frees the model (the feed between the
answer's thread and the event loop, with a scripted answer)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from server_tools import start_server

from app.server import ServerConfig, ServerConfigError
from app.server.feed import END, Feed
from runtime.types import Chunk

STALL_S = 0.3


def test_a_body_that_does_not_arrive_in_time_gets_a_408(tmp_path: Path) -> None:
    server = start_server(tmp_path / "logs", "--client-timeout", "1", home=tmp_path / "home")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                b'{"model": '  # ... and nothing more
            )
            started = time.monotonic()
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                part = sock.recv(65536)
                if not part:
                    break
                reply += part
            waited = time.monotonic() - started
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), reply[:300]
        message = json.loads(body)["error"]["message"]
        assert "1 s" in message and "--client-timeout" in message, message
        assert waited < 10, "the slow client was waited for far past the limit"
        # the server still answers everyone else
        with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


class ScriptedAnswer:
    """An answer that streams a chunk every 10 ms until cancelled (as the host's do)."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def __iter__(self):
        for i in range(3000):
            if self.cancelled.is_set():
                yield Chunk("", 5, i, "cancelled")
                return
            time.sleep(0.01)
            yield Chunk("x", 5, i + 1)
        yield Chunk("", 5, 3000, "length")

    def cancel(self) -> None:
        self.cancelled.set()


def test_an_answer_nobody_takes_is_cancelled_after_the_stall_limit() -> None:
    async def client_stops_reading() -> tuple[float, list]:
        answer = ScriptedAnswer()
        feed = Feed(answer, stall_s=STALL_S)
        feed.start()
        taken = [await feed.next() for _ in range(3)]  # then the client stops taking
        started = time.monotonic()
        while not answer.cancelled.is_set() and time.monotonic() - started < 10:
            await asyncio.sleep(0.02)
        stalled_for = time.monotonic() - started
        rest = []
        while (item := await feed.next()) is not END and item.finish_reason is None:
            rest.append(item)
        return stalled_for, [*taken, item]

    stalled_for, items = asyncio.run(client_stops_reading())
    assert STALL_S <= stalled_for < 5, stalled_for
    assert items[-1].finish_reason == "cancelled"


def test_a_slow_but_steady_reader_is_not_cut_off() -> None:
    answer = ScriptedAnswer()

    async def slow_reader() -> int:
        feed = Feed(answer, stall_s=STALL_S)
        feed.start()
        for _ in range(40):  # slower than the answer comes (a backlog builds), never stalled
            await feed.next()
            await asyncio.sleep(STALL_S / 4)
        return feed.produced - feed.taken

    backlog = asyncio.run(slow_reader())
    try:
        assert backlog > 1, "the reader kept up; the test proves nothing"
        assert not answer.cancelled.is_set()
    finally:
        answer.cancel()


@pytest.mark.parametrize("bad", [0, -1.0])
def test_the_client_timeout_must_be_positive(bad: float) -> None:
    with pytest.raises(ServerConfigError, match="client timeout must be a positive"):
        ServerConfig(client_timeout_s=bad)
