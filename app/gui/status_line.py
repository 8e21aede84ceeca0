"""The window's status bar, shown only while there is something to say: the local API's
address while it serves (a click shows the Server page), and offline mode."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QLabel, QPushButton, QStatusBar

from .context import AppContext
from .server_controller import ServerController


class StatusLine(QObject):
    def __init__(
        self,
        ctx: AppContext,
        server: ServerController,
        bar: QStatusBar,
        show_server: Callable[[], None],
    ) -> None:
        super().__init__(bar)
        self.ctx, self.server, self.bar = ctx, server, bar
        bar.setSizeGripEnabled(False)
        self.server_button = QPushButton()
        self.server_button.setObjectName("serverStatus")
        self.server_button.setFlat(True)
        self.server_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.server_button.setToolTip("The address, and a snippet to paste")
        self.server_button.clicked.connect(show_server)
        self.offline_label = QLabel("Offline mode")
        self.offline_label.setObjectName("offlineStatus")
        self.offline_label.setToolTip("Fireside makes no network request (File ▸ Offline mode)")
        bar.addPermanentWidget(self.server_button)
        bar.addPermanentWidget(self.offline_label)
        server.state_changed.connect(self.update)
        ctx.offline_changed.connect(lambda _on: self.update())
        self.update()

    def update(self) -> None:
        server = self.server
        if server.server is not None:
            self.server_button.setText(f"● Serving the API at {server.base_url}")
        elif server.busy:
            self.server_button.setText(
                "Starting the API…" if server.starting else "Stopping the API…"
            )
        serving = server.server is not None or server.busy
        self.server_button.setVisible(serving)
        self.offline_label.setVisible(self.ctx.offline)
        self.bar.setVisible(serving or self.ctx.offline)
