"""The chat page's list of conversations: new, search, open, rename in place, delete."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.history import History
from models.errors import FiresideError


class ConversationList(QWidget):
    open_requested = Signal(int)
    new_requested = Signal()
    delete_requested = Signal(int)  # confirmed by the user
    renamed = Signal(object)  # the Conversation
    problem = Signal(str)

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history = history
        self.current: int | None = None
        self.setObjectName("sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        self.new_button = QPushButton("＋  New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)
        layout.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _t: self.refresh())
        layout.addWidget(self.search)
        self.list = QListWidget()
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setUniformItemSizes(True)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemClicked.connect(self._clicked)
        self.list.itemChanged.connect(self._renamed)
        layout.addWidget(self.list, 1)
        self.setMinimumWidth(180)

    def refresh(self, current: int | None | bool = False) -> None:
        """Re-read the list; ``current`` (an id, or None for none) changes the highlight."""
        if current is not False:
            self.current = current  # type: ignore[assignment]
        self.list.blockSignals(True)
        self.list.clear()
        for conv in self.history.list(self.search.text()):
            item = QListWidgetItem(conv.title)
            item.setData(Qt.ItemDataRole.UserRole, conv.id)
            item.setToolTip(f"{conv.title}\nlast used {conv.updated_at.replace('T', ' ')[:16]}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.list.addItem(item)
            if conv.id == self.current:
                item.setSelected(True)
                self.list.setCurrentItem(item)
        if self.current is None:
            self.list.clearSelection()
        self.list.blockSignals(False)

    def _clicked(self, item: QListWidgetItem) -> None:
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        if conv_id != self.current:
            self.open_requested.emit(conv_id)

    def _renamed(self, item: QListWidgetItem) -> None:
        try:
            conv = self.history.rename(item.data(Qt.ItemDataRole.UserRole), item.text())
        except FiresideError as exc:
            self.problem.emit(str(exc))
            self.refresh()
            return
        self.renamed.emit(conv)
        self.refresh()

    def _menu(self, pos: Any) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Delete", lambda: self.confirm_delete(conv_id))
        menu.popup(self.list.viewport().mapToGlobal(pos))

    def rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def confirm_delete(self, conv_id: int) -> QMessageBox:
        title = self.history.get(conv_id).title
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete conversation",
            f"Delete “{title}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.buttonClicked.connect(
            lambda b: self.delete_requested.emit(conv_id) if b is delete else None
        )
        box.open()
        return box
