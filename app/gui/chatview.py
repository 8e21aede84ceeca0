"""The chat in the middle of the window: one widget per message in a scrolling column.

A streaming answer is appended at the end of its document: finished Markdown blocks are
rendered once, the unfinished tail is plain text until its block is complete, and the whole
answer is rendered once more when it ends. Appending a token never re-renders the message.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QEvent, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QDesktopServices,
    QGuiApplication,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextOption,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from .markdown import BlockSplitter, MarkdownRenderer
from .thought import ThoughtPanel

SOFT_BLOCK_CHARS = 300


class MessageBody(QTextBrowser):
    """Read-only rich text that is exactly as tall as its content."""

    copied = Signal(str)

    def __init__(self, renderer: MarkdownRenderer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.renderer = renderer
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setOpenLinks(False)
        self.setAcceptDrops(False)  # drops go to the window (model import)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(2)
        self.document().setDefaultStyleSheet(
            "p { margin-top: 0px; margin-bottom: 6px; } pre { margin: 0px; }"
            "h1, h2, h3 { margin-top: 4px; margin-bottom: 4px; }"
        )
        self.anchorClicked.connect(self._on_link)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self.code: list[str] = []
        self.source = ""
        # streaming state
        self._parts: list[str] = []
        self._splitter: BlockSplitter | None = None
        self._tail_start = 0
        self._plain = QTextCharFormat()
        self._code = QTextCharFormat()
        self._code.setFontFamilies(["monospace"])
        self._code.setFontFixedPitch(True)
        self._soft_block = QTextBlockFormat()
        self._soft_block.setTopMargin(0)
        self._soft_block.setBottomMargin(0)
        self.setFixedHeight(24)

    # -- sizing --------------------------------------------------------------------------
    def _fit_height(self, size: object = None) -> None:
        height = math.ceil(self.document().size().height()) + 2
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self._fit_height()

    # -- content -------------------------------------------------------------------------
    def set_plain(self, text: str) -> None:
        self.source = text
        self.code = []
        self.setPlainText(text)

    def set_markdown(self, text: str) -> None:
        self.source = text
        rendered = self.renderer.render(text)
        self.code = rendered.code
        self.setHtml(rendered.html)

    def begin_stream(self) -> None:
        self.clear()
        self.code, self.source, self._parts = [], "", []
        self._splitter = BlockSplitter()
        self._tail_start = 0

    def append(self, text: str) -> None:
        """Add streamed text at the end: O(len(text)) plus, at a block's end, that block."""
        if not text or self._splitter is None:
            return
        self._parts.append(text)
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        splitter = self._splitter
        splitter.feed(text)
        self._insert_plain(cursor, text, splitter.in_fence)
        if splitter.boundary:
            finished = splitter.take()
            rendered = self.renderer.render(finished, code_offset=len(self.code))
            self.code.extend(rendered.code)
            cursor.setPosition(self._tail_start)
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            cursor.insertHtml(rendered.html)
            cursor.insertBlock(QTextBlockFormat(), self._plain)
            self._tail_start = cursor.position()
            if splitter.text:
                self._insert_plain(cursor, splitter.text, splitter.in_fence)

    def _insert_plain(self, cursor: QTextCursor, text: str, code: bool = False) -> None:
        """Insert streamed text; a paragraph that grows long is continued in a new text block
        (at a space, so it reads the same), because Qt lays out a whole block on each change."""
        fmt = self._code if code else self._plain
        if cursor.block().length() + len(text) > SOFT_BLOCK_CHARS and "\n" not in text:
            cut = text.rfind(" ")
            if cut >= 0:
                cursor.insertText(text[: cut + 1], fmt)
                cursor.insertBlock(self._soft_block, fmt)
                text = text[cut + 1 :]
        cursor.insertText(text, fmt)

    def end_stream(self, text: str | None = None) -> str:
        """Render the whole answer (``text``, or what was streamed) once, properly."""
        if text is None:
            text = "".join(self._parts)
        self._splitter = None
        self._parts = []
        self.set_markdown(text)
        return text

    @property
    def streaming(self) -> bool:
        return self._splitter is not None

    def streamed_text(self) -> str:
        return "".join(self._parts) if self._splitter is not None else self.source

    def _on_link(self, url: QUrl) -> None:
        if url.scheme() == "copy":
            try:
                code = self.code[int(url.path())]
            except (ValueError, IndexError):
                return
            QGuiApplication.clipboard().setText(code)
            self.copied.emit(code)
        elif url.scheme() in ("http", "https", "mailto"):
            QDesktopServices.openUrl(url)  # the user's browser, at the user's click


def _small_button(text: str, tip: str) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.setFlat(True)
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    button.setObjectName("messageAction")
    return button


class MessageWidget(QFrame):
    """One message: who said it, the text, its actions and (answers) its numbers."""

    edit_requested = Signal(int)  # position
    regenerate_requested = Signal()
    load_again_requested = Signal()

    def __init__(
        self,
        role: str,
        position: int,
        renderer: MarkdownRenderer,
        *,
        author: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.role = role
        self.position = position
        self.setObjectName("userMessage" if role == "user" else "assistantMessage")
        self.setFrameShape(QFrame.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.setSpacing(4)

        header = QHBoxLayout()
        header.setSpacing(2)
        self.author = QLabel(author or ("You" if role == "user" else "Assistant"))
        self.author.setObjectName("messageAuthor")
        header.addWidget(self.author)
        header.addStretch(1)
        self.copy_button = _small_button("Copy", "Copy this message")
        self.copy_button.clicked.connect(self._copy)
        header.addWidget(self.copy_button)
        self.edit_button = _small_button("Edit", "Edit this message and send it again")
        self.edit_button.clicked.connect(lambda: self.edit_requested.emit(self.position))
        self.regenerate_button = _small_button("Regenerate", "Answer this again")
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        header.addWidget(self.edit_button)
        header.addWidget(self.regenerate_button)
        self.edit_button.setVisible(role == "user")
        self.regenerate_button.setVisible(False)
        layout.addLayout(header)

        self.body = MessageBody(renderer, self)
        layout.addWidget(self.body)
        self.thought = ThoughtPanel(self)  # a reasoning model's thinking, collapsed
        layout.addWidget(self.thought)

        self.notice = QLabel()
        self.notice.setObjectName("messageNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)

        footer = QHBoxLayout()
        self.stats = QLabel()
        self.stats.setObjectName("messageStats")
        self.stats.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        footer.addWidget(self.stats, 1)
        self.load_again_button = QPushButton("Load the model again")
        self.load_again_button.clicked.connect(self.load_again_requested)
        self.load_again_button.hide()
        footer.addWidget(self.load_again_button)
        layout.addLayout(footer)
        self.stats.hide()

    def set_text(self, text: str) -> None:
        if self.role == "user":
            self.body.set_plain(text)
        else:
            self.body.set_markdown(text)

    def text(self) -> str:
        return self.body.streamed_text()

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def show_notice(self, text: str, *, error: bool = False) -> None:
        if not text:
            self.notice.hide()
            return
        self.notice.setProperty("error", error)
        self.notice.setText(text[:1].upper() + text[1:])
        self.notice.style().unpolish(self.notice)
        self.notice.style().polish(self.notice)
        self.notice.show()

    def set_stats(
        self,
        *,
        ttft_s: float | None,
        tokens_per_s: float | None,
        tokens: int | None,
        finish_reason: str | None,
    ) -> None:
        parts = []
        if ttft_s is not None:
            parts.append(f"first token {ttft_s * 1000:.0f} ms")
        if tokens_per_s:
            parts.append(f"{tokens_per_s:.1f} tokens/s")
        if tokens:
            parts.append(f"{tokens} tokens")
        label = {
            "cancelled": "stopped",
            "length": "cut at the token limit",
            "error": "failed",
            "interrupted": "interrupted",
            # a draft kept when the app was killed mid-answer: Regenerate writes it anew
            "unfinished": "unfinished (Fireside closed while writing it)",
        }
        if finish_reason in label:
            parts.append(label[finish_reason])
        self.stats.setText(" · ".join(parts))
        self.stats.setVisible(bool(parts))


class ChatView(QScrollArea):
    """The column of messages; sticks to the bottom while an answer streams."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(False)
        self._inner = QWidget()
        self._inner.setObjectName("chatColumn")
        self._layout = QVBoxLayout(self._inner)
        self._layout.setContentsMargins(24, 16, 24, 16)
        self._layout.setSpacing(10)
        self.placeholder = QLabel(
            "<h2>Ask anything.</h2><p>Fireside runs the model on this computer. "
            "Nothing you type leaves it.</p><p>Drop a model file (.gguf) or folder anywhere "
            "on this window to add it to your library.</p>"
        )
        self.placeholder.setObjectName("placeholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self._layout.addStretch(1)
        self._layout.addWidget(self.placeholder)
        self._layout.addStretch(1)
        self.setWidget(self._inner)
        self.messages: list[MessageWidget] = []
        self._stick = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scroll)
        bar.rangeChanged.connect(self._on_range)

    def _on_scroll(self, value: int) -> None:
        self._stick = value >= self.verticalScrollBar().maximum() - 8

    def _on_range(self, _low: int, high: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(high)

    def scroll_to_bottom(self) -> None:
        self._stick = True
        QTimer.singleShot(
            0, lambda: self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())
        )

    def _show_placeholder(self, show: bool) -> None:
        self.placeholder.setVisible(show)
        # stretches: index 0 (above) and the last (below); with messages, only below
        self._layout.setStretch(0, 1 if show else 0)

    def add(self, widget: MessageWidget) -> MessageWidget:
        self._show_placeholder(False)
        self._layout.insertWidget(self._layout.count() - 1, widget)
        self.messages.append(widget)
        self._update_actions()
        return widget

    def clear_messages(self) -> None:
        for widget in self.messages:
            widget.hide()
            widget.deleteLater()
        self.messages = []
        self._show_placeholder(True)

    def remove_from(self, position: int) -> None:
        keep = [w for w in self.messages if w.position < position]
        for widget in self.messages[len(keep) :]:
            widget.hide()
            widget.deleteLater()
        self.messages = keep
        self._show_placeholder(not keep)
        self._update_actions()

    def _update_actions(self, busy: bool = False) -> None:
        last = self.messages[-1] if self.messages else None
        for widget in self.messages:
            widget.regenerate_button.setVisible(
                not busy and widget is last and widget.role == "assistant"
            )
            widget.edit_button.setVisible(widget.role == "user" and not busy)

    def set_busy(self, busy: bool) -> None:
        self._update_actions(busy)
