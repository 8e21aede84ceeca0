"""Offline mode in the window: File ▸ Offline mode and the status bar's mark.

The same setting as ``fireside offline on|off`` (models.hub owns what it means); the item
shows offline mode as it holds, the setting or ``$HF_HUB_OFFLINE``. The pages read
``ctx.offline`` and follow ``ctx.offline_changed``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction

from .context import AppContext
from .worker import run_job


class OfflineSwitch(QObject):
    def __init__(self, ctx: AppContext, parent: QObject) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.action = QAction("Offline mode", parent, checkable=True)
        self.action.setToolTip(
            "Make no network request at all (no Hub search or download). "
            "Models run on this computer either way."
        )
        self.action.setChecked(ctx.offline)
        self.action.triggered.connect(self.set_offline)
        QTimer.singleShot(0, self._read)  # after the window is shown

    def _read(self) -> None:
        """Read on a worker: importing models.hub would add to the start-up."""

        def job(_j: Any) -> bool:
            from models.hub import is_offline

            return is_offline()

        run_job(job, on_done=self._show, name="fireside-offline")

    def _show(self, on: bool) -> None:
        if not self.ctx.closing:
            self.action.setChecked(on)
            self.ctx.set_offline(on)

    def set_offline(self, on: bool) -> None:
        from models.hub import enforce_offline, is_offline, relax_offline

        self.ctx.save_settings({"offline": bool(on)})
        if on:
            enforce_offline()  # engines started from now on inherit it
        else:
            relax_offline()
            if is_offline():
                self.ctx.tell(
                    "HF_HUB_OFFLINE is set in the environment Fireside was started from, so "
                    "offline mode stays on until Fireside is started without it."
                )
        self._show(is_offline())
