"""An answer as the API shapes that are not OpenAI's chat write it: text pieces and whole
tool calls in order, then its end (finish reason, last chunk, notice); and the watcher that
ends the text at a stop sequence and says which one (Anthropic's ``stop_sequence``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .feed import END
from .tools import notice_for, reader_for


class StopWatcher:
    """Text in, text out up to the first stop sequence (``matched`` then names it); the end
    of the text that could begin one is held back until it is known."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops, self.pending, self.matched = stops, "", None

    def feed(self, text: str) -> str:
        if not self.stops or self.matched is not None:
            return text if self.matched is None else ""
        self.pending += text
        hits = [(i, s) for s in self.stops if (i := self.pending.find(s)) >= 0]
        if hits:
            cut, self.matched = min(hits)
            out, self.pending = self.pending[:cut], ""
            return out
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.pending)), 0, -1):
                if s.startswith(self.pending[-k:]):
                    keep = max(keep, k)
                    break
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out

    def finish(self) -> str:
        out, self.pending = self.pending, ""
        return out


async def pieces(
    feed: Any, first: Any, req: Any, watch: StopWatcher | None = None
) -> AsyncIterator[tuple]:
    """The answer as ("thinking", str), ("text", str), each call as ("tool_start", start),
    ("tool_args", piece)... and ("tool", call) (runtime.tool_reader), then ("end", finish, last chunk, notice);
    or ("error", message) when the engine fails part way."""
    watch = watch or StopWatcher(())
    calls = reader_for(req)

    def whole(parts: list[Any]) -> list[tuple]:
        from runtime.tools import ArgsPiece, CallStart

        out: list[tuple] = []
        for p in parts:
            if isinstance(p, str):
                out.extend([("text", p)] if p else [])
            elif isinstance(p[1], CallStart):
                out.append(("tool_start", p[1]))
            elif isinstance(p[1], ArgsPiece):
                out.append(("tool_args", p[1].text))
            else:
                out.append(("tool", p[1]))
        return out

    def split(text: str) -> list[tuple]:
        if not text:
            return []
        if calls is None:
            return [("text", text)]
        return whole(calls.feed(text))

    item, last = first, first
    while True:
        if isinstance(item, BaseException):
            from models.errors import describe

            yield ("error", describe(item))
            return
        if item is END:
            break
        last = item
        if item.finish_reason == "error":
            yield ("error", item.error or "the engine failed")
            return
        if item.reasoning:
            yield ("thinking", item.reasoning)
        for piece in split(watch.feed(item.text)):
            yield piece
        if watch.matched is not None:
            feed.cancel()  # the text ended at a stop sequence: the rest is not wanted
            break
        if item.finish_reason is not None:
            break
        item = await feed.next()
    for piece in split(watch.finish()):
        yield piece
    if calls is not None:
        for piece in whole(calls.finish()):
            yield piece
    finish = "stop" if watch.matched is not None else last.finish_reason
    yield ("end", finish, last, notice_for(bool(calls and calls.malformed)))
