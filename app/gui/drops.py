"""Drag-and-drop: a model file or folder dropped anywhere on the window.

The page on show gets the first say (the Convert page takes a checkpoint folder as its
source, through its ``drop_path``); otherwise the drop is offered to the library as an
import. One model at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject

from .context import AppContext


def dropped_paths(event: Any) -> list[str]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


class DropHandler(QObject):
    """Installed on the window as an event filter; ``take(path)`` gets the chosen path."""

    def __init__(self, ctx: AppContext, window: Any, take: Callable[[str], None]) -> None:
        super().__init__(window)
        self.ctx, self._take = ctx, take
        window.setAcceptDrops(True)
        window.installEventFilter(self)

    def eventFilter(self, _obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt API)
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if dropped_paths(event):
                event.acceptProposedAction()
            else:
                event.ignore()
            return True
        if kind == QEvent.Type.Drop:
            self.drop(dropped_paths(event))
            if event.mimeData().hasUrls():
                event.acceptProposedAction()
            return True
        return False

    def drop(self, paths: list[str]) -> None:
        if not paths:
            return
        if len(paths) > 1:
            self.ctx.tell(
                "Drop one model at a time (a file, or a folder of models); "
                f"using {Path(paths[0]).name}."
            )
        self._take(paths[0])
