"""The Chat page: conversations on the left; the model, the chat and the composer on the right.

An answer keeps streaming while the user looks at other pages; it is an
:class:`app.gui.answer.Answer`, committed to the history when it ends.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.history import Conversation, StoredMessage
from app.settings import DEFAULT_PRESET, preset_params
from models.errors import FiresideError
from runtime import GenerationParams

from .answer import Answer
from .banner import Banner
from .chatview import ChatView, MessageWidget
from .composer import Composer
from .context import AppContext
from .conversations import ConversationList
from .dialogs import ConversationSettingsDialog
from .markdown import MarkdownRenderer
from .meter import ContextMeter
from .model_bar import ModelBar
from .session import ModelSession


class ChatPage(QWidget):
    answer_finished = Signal(str)  # finish reason (tests and scripts wait on it)

    def __init__(self, ctx: AppContext, session: ModelSession, renderer: MarkdownRenderer) -> None:
        super().__init__()
        self.ctx, self.session, self.renderer = ctx, session, renderer
        self.history = ctx.history
        self.conversation: Conversation | None = None
        self._draft = self._new_chat_defaults()  # settings of a chat not yet saved
        self.answer: Answer | None = None
        self._editing_position: int | None = None
        session.answering = lambda: self.answer is not None

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(splitter)
        self.conversations = ConversationList(self.history)
        self.conversations.open_requested.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_chat)
        self.conversations.delete_requested.connect(self.delete_conversation)
        self.conversations.renamed.connect(self._renamed)
        self.conversations.problem.connect(lambda text: ctx.tell(text, "error"))
        splitter.addWidget(self.conversations)

        main = QWidget()
        layout = QVBoxLayout(main)
        layout.setContentsMargins(12, 10, 12, 10)
        self.model_bar = ModelBar(session)
        self.settings_button = QPushButton("Chat settings")
        self.settings_button.setToolTip("System prompt and sampling for this conversation")
        self.settings_button.clicked.connect(self.open_settings)
        self.model_bar.top.addWidget(self.settings_button)
        layout.addWidget(self.model_bar)
        self.chat = ChatView()
        layout.addWidget(self.chat, 1)
        self.meter = ContextMeter()
        layout.addWidget(self.meter)
        self.edit_banner = Banner()
        layout.addWidget(self.edit_banner)
        row = QHBoxLayout()
        self.composer = Composer()
        self.composer.submitted.connect(self.send)
        self.composer.escape.connect(self.stop)
        row.addWidget(self.composer, 1)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.send_button.clicked.connect(self._send_or_stop)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(row)
        splitter.addWidget(main)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([240, 860])

        session.ready.connect(lambda _r, _i: (self._refresh_meter(), self.update_controls()))
        session.load_started.connect(lambda _r: self.update_controls())
        session.load_failed.connect(lambda _r, _m, _c: self.update_controls())
        self.conversations.refresh()
        self.update_controls()

    # -- conversations -------------------------------------------------------------------
    def _new_chat_defaults(self) -> dict[str, Any]:
        settings = self.ctx.settings
        return {
            "system_prompt": settings.get("default_system_prompt") or "",
            "preset": settings.get("default_preset") or DEFAULT_PRESET,
            "params": settings.get("default_params") or preset_params(DEFAULT_PRESET),
        }

    def _renamed(self, conv: Conversation) -> None:
        if self.conversation and self.conversation.id == conv.id:
            self.conversation = conv

    def new_chat(self) -> None:
        self._leave_conversation()
        self.conversation = None
        self._draft = self._new_chat_defaults()
        self.chat.clear_messages()
        self.conversations.refresh(None)
        self.meter.show_use(0, self.session.context_length())
        self.update_controls()
        self.composer.setFocus()

    def _leave_conversation(self) -> None:
        """Before showing another chat: an answer still streaming here is stopped and kept."""
        self._cancel_edit()
        if self.answer is not None:
            self.answer.detach()

    def open_conversation(self, conv_id: int) -> None:
        try:
            conv = self.history.get(conv_id)
        except FiresideError as exc:
            self.ctx.tell(str(exc), "error")
            self.conversations.refresh()
            return
        self._leave_conversation()
        self.conversation = conv
        self.chat.clear_messages()
        for message in self.history.messages(conv_id):
            self._add_stored(message)
        self.chat.scroll_to_bottom()
        self.conversations.refresh(conv_id)
        self._refresh_meter()
        self.update_controls()

    def confirm_delete_current(self) -> None:
        if self.conversation is not None:
            self.conversations.confirm_delete(self.conversation.id)

    def delete_conversation(self, conv_id: int) -> None:
        if self.answer is not None and self.answer.conversation_id == conv_id:
            self.answer.finish_now()
        self.history.delete(conv_id)
        if self.conversation is not None and self.conversation.id == conv_id:
            self.new_chat()
        self.conversations.refresh()

    def _add_stored(self, message: StoredMessage) -> MessageWidget:
        widget = self._message_widget(message.role, message.position, message.model_id)
        widget.set_text(message.content)
        if message.role == "assistant":
            widget.set_stats(
                ttft_s=message.time_to_first_token_s,
                tokens_per_s=message.tokens_per_s,
                tokens=message.completion_tokens,
                finish_reason=message.finish_reason,
            )
            if message.error:
                widget.show_notice(message.error, error=True)
        return self.chat.add(widget)

    def _message_widget(self, role: str, position: int, model_id: str | None) -> MessageWidget:
        author = self._model_name(model_id) if role == "assistant" else "You"
        widget = MessageWidget(role, position, self.renderer, author=author)
        widget.edit_requested.connect(self.edit_message)
        widget.regenerate_requested.connect(self.regenerate)
        widget.load_again_requested.connect(self.session.load_selected)
        return widget

    def _model_name(self, model_id: str | None) -> str:
        catalog = self.ctx.catalog
        if not model_id or catalog is None:
            return model_id or "Assistant"
        try:
            return catalog.get(model_id).name
        except FiresideError:
            return model_id

    # -- this chat's settings ------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        if self.conversation is None:
            return self._draft
        conv = self.conversation
        return {"system_prompt": conv.system_prompt, "preset": conv.preset, "params": conv.params}

    def open_settings(self) -> ConversationSettingsDialog:
        current = self._settings()
        dialog = ConversationSettingsDialog(
            current["system_prompt"], current["preset"], current["params"], self
        )
        dialog.saved.connect(self.apply_settings)
        dialog.open()
        return dialog

    def apply_settings(self, values: dict[str, Any]) -> None:
        try:
            GenerationParams.from_dict(values["params"])
        except FiresideError as exc:
            self.ctx.tell(str(exc), "error")
            return
        changes = {k: values[k] for k in ("system_prompt", "preset", "params")}
        if self.conversation is None:
            self._draft = changes
        else:
            self.conversation = self.history.update(self.conversation.id, **changes)
        if values.get("default"):
            self.ctx.save_settings({f"default_{k}": v for k, v in changes.items()})

    # -- chatting ------------------------------------------------------------------------
    def _send_or_stop(self) -> None:
        if self.answer is not None:
            self.stop()
        else:
            self.send()

    def send(self, text: str | None = None) -> bool:
        """Send the composer's text (or ``text``); False when it cannot be sent now."""
        if text is None:
            text = self.composer.toPlainText()
        if not text.strip() or not self._can_send():
            return False
        if self.conversation is None:
            selected = self.session.selected
            self.conversation = self.history.create(
                model_id=selected.id if selected else None, **self._draft
            )
        conv_id = self.conversation.id
        if self._editing_position is not None:
            position = self._editing_position
            self._cancel_edit()
            self.history.truncate(conv_id, position)
            self.chat.remove_from(position)
        message = self.history.add_message(conv_id, "user", text)
        self.conversation = self.history.get(conv_id)
        self.composer.clear()
        self.chat.add(self._message_widget("user", message.position, None)).set_text(text)
        self.chat.scroll_to_bottom()
        self.conversations.refresh(conv_id)
        self._start_answer()
        return True

    def _can_send(self) -> bool:
        if self.answer is not None:
            return False
        # A model the server unloaded meanwhile (to make room for another) is loaded again
        # by the answer itself; only a crash or a failed load clears ready_record.
        if self.session.ready_record is None:
            if not self.session.loading:
                self.ctx.tell(
                    "No model is loaded.", "warning", "Load it", self.session.load_selected
                )
            return False
        return True

    def _history_messages(self) -> list[dict[str, str]]:
        assert self.conversation is not None
        messages: list[dict[str, str]] = []
        if self.conversation.system_prompt.strip():
            messages.append({"role": "system", "content": self.conversation.system_prompt})
        for m in self.history.messages(self.conversation.id):
            if m.role == "assistant" and not m.content.strip():
                continue
            messages.append({"role": m.role, "content": m.content})
        return messages

    def _start_answer(self) -> None:
        assert self.conversation is not None and self.session.ready_record is not None
        conv = self.conversation
        try:
            params = GenerationParams.from_dict(conv.params) if conv.params else GenerationParams()
        except FiresideError as exc:
            self.ctx.tell(f"This chat's settings are invalid: {exc}", "error")
            return
        record = self.session.ready_record
        widget = self._message_widget("assistant", len(self.history.messages(conv.id)), record.id)
        self.chat.add(widget)
        self.chat.scroll_to_bottom()
        self.answer = Answer(
            host=self.ctx.host,
            history=self.history,
            record=record,
            conversation_id=conv.id,
            messages=self._history_messages(),
            params=params,
            widget=widget,
        )
        self.answer.ended.connect(self._answer_ended)
        self.answer.start()
        self.update_controls()

    def _answer_ended(self, answer: Answer) -> None:
        if answer is not self.answer:
            return
        self.answer = None
        widget = answer.widget
        if widget is not None and not answer.text.strip() and answer.reason != "error":
            self.chat.remove_from(widget.position)  # stopped before the first word
        crashed = answer.reason == "error" and self.session.info() is None
        if widget is not None and answer.reason == "error":
            widget.load_again_button.setVisible(crashed)
        if crashed:
            self.session.engine_stopped("Not loaded (the engine stopped)")
            self.ctx.tell(
                answer.error or "The engine stopped.",
                "error",
                "Load the model again",
                self.session.load_selected,
            )
        elif answer.reason == "error" and answer.error:
            self.ctx.tell(answer.error, "error")
        if answer.used_tokens is not None and self.session.info() is not None:
            self.meter.show_use(answer.used_tokens, self.session.context_length())
        if self.conversation and self.conversation.id == answer.conversation_id:
            self.conversation = self.history.get(answer.conversation_id)
        self.conversations.refresh()
        self.update_controls()
        self.answer_finished.emit(answer.reason or "")

    def stop(self) -> None:
        """Stop the answer being written (Esc); what was written so far is kept."""
        if self.answer is not None:
            self.answer.stop()

    def finish_now(self) -> None:
        """At shutdown: the answer being written is stopped and kept."""
        if self.answer is not None:
            self.answer.finish_now()

    def regenerate(self) -> None:
        """Answer the last question again (the last answer is replaced)."""
        if self.conversation is None or not self._can_send():
            return
        messages = self.history.messages(self.conversation.id)
        if not messages:
            return
        if messages[-1].role == "assistant":
            self.history.truncate(self.conversation.id, messages[-1].position)
            self.chat.remove_from(messages[-1].position)
        self._start_answer()

    def edit_message(self, position: int) -> None:
        """Put an earlier message back in the composer; sending replaces it and what followed."""
        if self.conversation is None or self.answer is not None:
            return
        for m in self.history.messages(self.conversation.id):
            if m.position == position and m.role == "user":
                self._editing_position = position
                self.composer.setPlainText(m.content)
                self.composer.setFocus()
                self.edit_banner.show_message(
                    "Editing an earlier message: sending replaces it and everything after it.",
                    "info",
                    "Cancel editing",
                    self._cancel_edit,
                )
                return

    def _cancel_edit(self) -> None:
        if self._editing_position is not None:
            self._editing_position = None
            self.composer.clear()
        self.edit_banner.hide()

    def _refresh_meter(self) -> None:
        used = 0
        if self.conversation is not None:
            for m in reversed(self.history.messages(self.conversation.id)):
                if m.role == "assistant" and m.prompt_tokens is not None:
                    used = m.prompt_tokens + (m.completion_tokens or 0)
                    break
        self.meter.show_use(used, self.session.context_length())

    def update_controls(self) -> None:
        busy = self.answer is not None
        self.send_button.setText("Stop" if busy else "Send")
        self.send_button.setToolTip("Stop the answer (Esc)" if busy else "Send (Enter)")
        self.chat.set_busy(busy)
        self.model_bar.set_busy(busy)
        if self.session.ready_record is None and self.session.loading:
            placeholder = "Loading the model… you can type already."
        else:
            placeholder = "Message the model… (Enter sends, Shift+Enter adds a line)"
        if self.composer.placeholderText() != placeholder:
            self.composer.setPlaceholderText(placeholder)
            self.composer.viewport().update()  # Qt does not repaint a changed placeholder
