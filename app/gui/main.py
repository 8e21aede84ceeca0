"""``fireside`` with no command: open the window."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from . import theme

    app = QApplication.instance() or QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("Fireside")
    app.setApplicationDisplayName("Fireside")
    app.setDesktopFileName("fireside")
    theme.apply(app)
    app.setWindowIcon(theme.app_icon())

    from .window import MainWindow

    window = MainWindow()

    def follow_system(*_args: object) -> None:
        palette = theme.apply(app)
        window.renderer.palette = palette
        window.renderer._md = None  # re-create with the new code colours
        chat = window.chat_page
        if chat.conversation is not None and chat.answer is None:
            chat.open_conversation(chat.conversation.id)  # re-render in the new colours

    app.styleHints().colorSchemeChanged.connect(follow_system)

    # Ctrl-C in the terminal and SIGTERM close the window properly (history saved, engine
    # stopped); the timer lets Python's signal handlers run while Qt's loop waits.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: window.close())
    tick = QTimer()
    tick.start(250)
    tick.timeout.connect(lambda: None)
    window.show()
    from models.hub import apply_offline_mode

    apply_offline_mode()  # before the window starts an engine (children inherit it)
    code = app.exec()
    window.shutdown()
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
