"""One answer being written: its chunks reach the screen at most every frame or two, and when
it ends (finished, stopped, failed, or the window closing) it is committed to the history.

The chat page starts an :class:`Answer`, may detach it from the screen (the user opened
another chat: it finishes in the background and is still saved to its own chat), and hears
``ended`` once, after the commit.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.history import History, HistoryError
from models import ModelRecord
from models.errors import describe
from runtime import GenerationParams, ModelHost

from .chatview import MessageWidget
from .worker import Worker

FLUSH_MS = 30
DRAFT_EVERY_S = 1.0  # a killed window loses at most about this much of an answer
UNFINISHED = "unfinished"  # a draft's finish reason until the answer ends


class Answer(QObject):
    ended = Signal(object)  # this Answer, after its message was saved (or not: nothing written)

    def __init__(
        self,
        *,
        host: ModelHost,
        history: History,
        record: ModelRecord,
        conversation_id: int,
        messages: list[dict[str, str]],
        params: GenerationParams,
        widget: MessageWidget | None,
    ) -> None:
        super().__init__()
        self.history = history
        self.conversation_id = conversation_id
        self.model_id = record.id
        self.widget = widget
        self.parts: list[str] = []
        self._pending: list[str] = []
        self.notices: list[str] = []
        self.last: Any = None  # the last chunk
        self.reason: str | None = None
        self.error: str | None = None
        self.refused = False  # the engine refused before answering (no message was started)
        self.done = False
        self._draft_id: int | None = None  # the answer saved as it grows
        self._saved_at = 0.0
        self.request = host.chat(record, messages, params)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(FLUSH_MS)
        self._timer.timeout.connect(self._flush)
        request = self.request
        self.worker = Worker(lambda _j: iter(request), name="fireside-generate")
        self.worker.yielded.connect(self._on_chunk)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(lambda: self._finish(self.last, forced=True))

    def start(self) -> Answer:
        if self.widget is not None:
            self.widget.body.begin_stream()
        self.worker.start()
        return self

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def stop(self) -> None:
        """Stop writing (Esc); what was written so far is kept."""
        self.request.cancel()

    def detach(self) -> None:
        """The user left this chat: stop, and save it to its chat when it ends."""
        self.stop()
        self.widget = None

    def finish_now(self, timeout: float = 5) -> None:
        """At shutdown or when deleting its chat: stop, wait, commit what came."""
        self.stop()
        self.worker.wait(timeout)
        self._finish(self.last, forced=True)

    def _on_chunk(self, chunk: Any) -> None:
        if self.done:
            return
        self.last = chunk
        if chunk.notice:
            self.notices.append(chunk.notice)
            if self.widget is not None:
                self.widget.show_notice("; ".join(self.notices))
        if chunk.reasoning and self.widget is not None:
            self.widget.thought.append(chunk.reasoning)
        if chunk.text:
            if self.widget is not None:
                self.widget.thought.done()
            self._pending.append(chunk.text)
            self.parts.append(chunk.text)
            if not self._timer.isActive():
                self._timer.start()
        if chunk.finish_reason is not None:
            self._finish(chunk)

    def _flush(self) -> None:
        if self._pending:
            text = "".join(self._pending)
            self._pending.clear()
            if self.widget is not None:
                self.widget.body.append(text)
            self._save_draft()

    def _save_draft(self) -> None:
        """Keep what has been written so far (marked unfinished), at most once a second, so
        a killed window or a power cut loses about a second of the answer, not all of it."""
        now = time.monotonic()
        if self._draft_id is not None and now - self._saved_at < DRAFT_EVERY_S:
            return  # before joining the parts: this runs on every flush
        text = self.text
        if not text.strip():
            return
        try:
            if self._draft_id is None:
                draft = self.history.add_message(
                    self.conversation_id, "assistant", text, model_id=self.model_id,
                    finish_reason=UNFINISHED,
                )  # fmt: skip
                self._draft_id = draft.id
            else:
                self.history.update_message(self._draft_id, content=text)
        except (HistoryError, OSError):
            return  # the chat was deleted, or the disk refused: the end will say so
        self._saved_at = now

    def _on_failed(self, exc: BaseException) -> None:
        """The engine refused before answering (context overflow, no model, bad settings)."""
        if self.done:
            return
        self.refused = True
        self.reason, self.error = "error", describe(exc)
        self.done = True
        self._timer.stop()
        if self.widget is not None:
            self.widget.body.end_stream()
            self.widget.show_notice(self.error, error=True)
        self.ended.emit(self)

    def _finish(self, chunk: Any, *, forced: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self._flush()
        self._timer.stop()
        text = self.text
        reason = chunk.finish_reason if chunk is not None else None
        self.reason = "cancelled" if forced and reason is None else reason
        self.error = chunk.error if chunk is not None else None
        timings = chunk.timings if chunk is not None else None
        if self.widget is not None:
            self.widget.body.end_stream(text)
            self.widget.thought.done()
        if text.strip():
            final = {
                "finish_reason": self.reason,
                "error": self.error,
                "prompt_tokens": chunk.prompt_tokens if chunk else None,
                "completion_tokens": chunk.completion_tokens if chunk else None,
                "time_to_first_token_s": timings.time_to_first_token_s if timings else None,
                "tokens_per_s": timings.generation_tokens_per_s if timings else None,
                "total_s": timings.total_s if timings else None,
            }
            try:
                if self._draft_id is not None:
                    self.history.update_message(self._draft_id, content=text, **final)
                else:
                    self.history.add_message(
                        self.conversation_id, "assistant", text, model_id=self.model_id, **final
                    )
            except (HistoryError, OSError) as exc:  # the answer stays on screen, said so
                self.error = describe(exc)
        if self.widget is not None and (text.strip() or self.reason == "error"):
            self.widget.set_stats(
                ttft_s=timings.time_to_first_token_s if timings else None,
                tokens_per_s=timings.generation_tokens_per_s if timings else None,
                tokens=chunk.completion_tokens if chunk else None,
                finish_reason=self.reason,
            )
            if self.error:
                self.widget.show_notice(self.error, error=True)
        self.ended.emit(self)

    @property
    def used_tokens(self) -> int | None:
        chunk = self.last
        return chunk.prompt_tokens + chunk.completion_tokens if chunk is not None else None
