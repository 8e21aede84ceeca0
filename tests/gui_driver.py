"""Drives the real Fireside window in a subprocess, for tests that must kill or watch the app.

    python tests/gui_driver.py chat       start, load the bundled model, chat once, quit
    python tests/gui_driver.py sigkill    start, finish one exchange, then stream a long answer
                                          and print STREAMING (the test SIGKILLs the app then)

It prints one line per milestone (READY, ANSWERED <conversation id>, STREAMING <id>, DONE).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    mode = sys.argv[1]
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui import theme
    from app.gui.window import MainWindow
    from app.settings import preset_params

    app = QApplication(sys.argv[:1])
    theme.apply(app)
    from runtime import BackendOptions

    # One thread: on a busy shared machine, two spinning llama.cpp threads run ~10x slower.
    window = MainWindow(backend_options=BackendOptions(n_threads=1))
    window.show()
    state = {"answers": 0}
    short = {**preset_params("Deterministic"), "max_tokens": 8}
    long = {**preset_params("Balanced"), "max_tokens": 4000, "seed": 1}

    def on_ready(_record: object, _info: object) -> None:
        say("READY")
        window.chat_page.apply_settings({"system_prompt": "", "preset": None, "params": short})
        window.chat_page.send("Say hello.")

    def on_answer(reason: str) -> None:
        state["answers"] += 1
        say(f"ANSWERED {window.chat_page.conversation.id} {reason}")
        if mode == "chat":
            window.close()
            app.quit()
            return
        if state["answers"] == 1:
            window.chat_page.apply_settings({"system_prompt": "", "preset": None, "params": long})
            window.chat_page.send("Write a very long story about a lighthouse keeper.")
            poll.start()

    def check_streaming() -> None:
        gen = window.chat_page.answer
        if gen is not None and len(gen.parts) >= 5:
            poll.stop()
            say(f"STREAMING {gen.conversation_id}")

    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(check_streaming)
    window.session.ready.connect(on_ready)
    window.session.load_failed.connect(
        lambda _r, message, _c: (say(f"FAILED {message}"), app.exit(3))
    )
    window.chat_page.answer_finished.connect(on_answer)
    QTimer.singleShot(120_000, lambda: (say("TIMEOUT"), app.exit(2)))
    code = app.exec()
    window.shutdown()
    say("DONE")
    return code


if __name__ == "__main__":
    sys.exit(main())
