"""Screenshots of the window's main states, for a look before a release.

    apt-get install xvfb libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
        libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 \
        libegl1 libgl1 libfontconfig1 libdbus-1-3 fonts-dejavu-core   # Debian/Ubuntu, once
    Xvfb :99 -screen 0 1400x900x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python packaging/screenshots.py [--out DIR]

(or pass ``--xvfb`` to have the script start and stop Xvfb itself). Uses a private temporary
FIRESIDE_HOME and the bundled model; writes PNGs (default: build/screenshots/):
01-first-start, 02-streaming, 03-answer, 04-settings, 05-library, 06-drop-import,
07-bad-file, 08-engine-crashed, 09-dark, 10-serving, 11-server-settings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTION = "Write a short Python function that checks whether a number is prime, and explain it."


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "screenshots")
    parser.add_argument("--xvfb", action="store_true", help="start Xvfb :99 for the run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    xvfb = None
    if args.xvfb:
        xvfb = subprocess.Popen(["Xvfb", ":99", "-screen", "0", "1400x900x24"])
        os.environ["DISPLAY"] = ":99"
        time.sleep(1.0)
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    home = Path(tempfile.mkdtemp(prefix="fireside-shots-"))
    os.environ["FIRESIDE_HOME"] = str(home)
    try:
        return shoot(args.out, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(5)


def shoot(out: Path, home: Path) -> int:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent, QGuiApplication
    from PySide6.QtWidgets import QApplication

    from app.gui import theme
    from app.gui.window import MainWindow
    from app.settings import preset_params
    from runtime import BackendOptions

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Fireside")
    theme.apply(app, dark=False)
    app.setWindowIcon(theme.app_icon())

    def spin(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait(cond, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise SystemExit("timed out waiting for the window")
            app.processEvents()
            time.sleep(0.01)

    def snap(name: str) -> None:
        spin(0.4)
        pixmap = QGuiApplication.primaryScreen().grabWindow(0)
        path = out / f"{name}.png"
        pixmap.save(str(path))
        print(path)

    window = MainWindow(backend_options=BackendOptions(n_threads=1))
    window.setGeometry(40, 30, 1280, 820)
    window.show()
    wait(lambda: window.ready_model is not None)
    snap("01-first-start")

    params = {**preset_params("Precise"), "max_tokens": 220, "seed": 7}
    window.apply_settings({"system_prompt": "", "preset": "Precise", "params": params})
    window.composer.setPlainText(QUESTION)
    window.send()
    wait(lambda: window.generation is not None and len(window.generation.parts) > 40)
    snap("02-streaming")
    wait(lambda: window.generation is None)
    window.composer.setPlainText("Thanks! Now make it faster for big numbers.")
    snap("03-answer")

    dialog = window.open_settings()
    dialog.move(window.x() + 380, window.y() + 120)
    snap("04-settings")
    dialog.reject()

    library = window.open_library()
    library.move(window.x() + 150, window.y() + 160)
    snap("05-library")
    library.close()

    from models.bundled import bundled_model_path

    dropped = home / "Downloads" / "SmolLM2-copy.gguf"
    dropped.parent.mkdir()
    shutil.copyfile(bundled_model_path(), dropped)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    window.dropEvent(
        QDropEvent(
            QPointF(400, 400),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
    )
    window.import_dialog.move(window.x() + 420, window.y() + 300)
    snap("06-drop-import")
    window.import_dialog.reject()

    bad = home / "Downloads" / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(2048))
    done = []
    window.import_done.connect(done.append)
    window.import_model(str(bad), "link")
    wait(lambda: bool(done))
    snap("07-bad-file")
    window.banner.hide()

    window.apply_settings(
        {"system_prompt": "", "preset": None, "params": {**params, "max_tokens": 400}}
    )
    window.send("Tell me a story about a lighthouse.")
    wait(lambda: window.generation is not None and len(window.generation.parts) > 20)
    os.kill(window.engine_pids()[0], signal.SIGKILL)
    wait(lambda: window.generation is None)
    snap("08-engine-crashed")

    theme.apply(app, dark=True)
    window.renderer.palette = theme.DARK
    window.renderer._md = None
    window.banner.hide()
    window.load_selected()
    wait(lambda: window.ready_model is not None)
    window.open_conversation(window.conversation.id)  # re-render with the dark code colours
    snap("09-dark")

    theme.apply(app, dark=False)
    window.renderer.palette = theme.LIGHT
    window.renderer._md = None
    window.open_conversation(window.conversation.id)
    window.new_chat()
    window.settings.set("server_port", 8080 if port_free(8080) else 0)
    served = []
    window.server_changed.connect(served.append)
    window.server_action.trigger()  # Server > Serve the local API
    wait(lambda: bool(served))
    if not served[0]:
        raise SystemExit(f"the server did not start: {window.banner.text()}")
    window.server_dialog.move(window.x() + 330, window.y() + 170)
    snap("10-serving")
    window.stop_server()
    wait(lambda: len(served) > 1)
    settings = window.open_server_settings()
    settings.move(window.x() + 400, window.y() + 200)
    snap("11-server-settings")
    settings.reject()

    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
