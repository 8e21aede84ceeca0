"""Screenshots of the window's main states, for a look before a release.

    apt-get install xvfb libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
        libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-shape0 \
        libegl1 libgl1 libfontconfig1 libdbus-1-3 fonts-dejavu-core   # Debian/Ubuntu, once
    Xvfb :99 -screen 0 1400x900x24 &
    DISPLAY=:99 QT_QPA_PLATFORM=xcb .venv/bin/python packaging/screenshots.py [--out DIR]

(or pass ``--xvfb`` to have the script start and stop Xvfb itself). Uses a private temporary
FIRESIDE_HOME, the bundled model, and the tests' fake Hub on 127.0.0.1 (no network); writes
PNGs (default: build/screenshots/): the chat's states (first start, streaming, an answer,
its settings, a dropped file, a bad file, a crashed engine), then every page (My models,
Discover results and a repository's variants, Downloads in progress, Convert to GGUF and to
ONNX with their quality reports, Server) at the default size, then at 1024x700, light and
dark.
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
sys.path.insert(1, str(ROOT / "tests"))  # the fake Hub and the test checkpoint

QUESTION = "Write a short Python function that checks whether a number is prime, and explain it."


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


SHOW_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
BIG = "smollm2-135m-instruct-q8_0.gguf"


def start_fake_hub(home: Path):
    """The tests' fake Hub, serving the bundled model's real bytes under two names."""
    from fake_hub import FakeHub

    from models.bundled import bundled_model_path

    data = bundled_model_path().read_bytes()
    hub = FakeHub().start()
    hub.add_repo(
        SHOW_REPO,
        {"smollm2-135m-instruct-q4_k_m.gguf": data, BIG: data + bytes(40 << 20), "README.md": b"#"},
        downloads=48_211,
        likes=112,
        tags=["gguf", "license:apache-2.0"],
    )
    weights = {"config.json": b"{}", "model.safetensors": bytes(4096)}
    hub.add_repo("someone/SmolLM2-1.7B-Instruct-MLX-4bit", weights, tags=["mlx"], likes=9)
    hub.add_repo("someone/SmolLM2-360M", weights, tags=["safetensors"], downloads=3_020)
    hub.add_repo("someone/SmolLM2-gated-GGUF", {"README.md": b"#"}, tags=["gguf"], gated=True)
    os.environ["HF_ENDPOINT"] = hub.url
    os.environ["HF_HUB_CACHE"] = str(home / "hf-cache")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.pop(name, None)
    return hub


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
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from app.gui import theme
    from app.gui.window import NAV, MainWindow
    from app.settings import preset_params
    from models import BUNDLED_ID
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
        pixmap = QGuiApplication.primaryScreen().grabWindow(0).copy(window.frameGeometry())
        path = out / f"{name}.png"
        pixmap.save(str(path))
        print(path)

    hub = start_fake_hub(home)
    window = MainWindow(backend_options=BackendOptions(n_threads=1))
    window.setGeometry(40, 30, 1280, 820)
    window.show()
    wait(lambda: window.session.ready_id is not None)
    snap("01-first-start")

    params = {**preset_params("Precise"), "max_tokens": 220, "seed": 7}
    window.chat_page.apply_settings({"system_prompt": "", "preset": "Precise", "params": params})
    window.chat_page.composer.setPlainText(QUESTION)
    window.chat_page.send()
    wait(lambda: window.chat_page.answer is not None and len(window.chat_page.answer.parts) > 40)
    snap("02-streaming")
    wait(lambda: window.chat_page.answer is None)
    window.chat_page.composer.setPlainText("Thanks! Now make it faster for big numbers.")
    snap("03-answer")

    dialog = window.chat_page.open_settings()
    dialog.move(window.x() + 380, window.y() + 120)
    snap("04-settings")
    dialog.reject()

    window.show_page("models")
    window.models_page.select(BUNDLED_ID)
    snap("05-my-models")
    window.show_page("chat")

    from models.bundled import bundled_model_path

    dropped = home / "Downloads" / "SmolLM2-copy.gguf"
    dropped.parent.mkdir()
    shutil.copyfile(bundled_model_path(), dropped)
    window.drops.drop([str(dropped)])
    window.jobs.import_dialog.move(window.x() + 420, window.y() + 300)
    snap("06-drop-import")
    window.jobs.import_dialog.reject()

    bad = home / "Downloads" / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(2048))
    done = []
    window.jobs.import_done.connect(done.append)
    window.jobs.import_model(str(bad), "link")
    wait(lambda: bool(done))
    snap("07-bad-file")
    window.banner.hide()

    window.chat_page.apply_settings(
        {"system_prompt": "", "preset": None, "params": {**params, "max_tokens": 400}}
    )
    window.chat_page.send("Tell me a story about a lighthouse.")
    wait(lambda: window.chat_page.answer is not None and len(window.chat_page.answer.parts) > 20)
    os.kill(window.engine_pids()[0], signal.SIGKILL)
    wait(lambda: window.chat_page.answer is None)
    snap("08-engine-crashed")
    window.banner.hide()
    window.session.load_selected()
    wait(lambda: window.session.ready_id is not None)

    # the pages, against the fake Hub
    discover = window.discover_page
    shown = []
    discover.results_shown.connect(shown.append)
    window.show_page("discover")
    discover.search("SmolLM2")
    wait(lambda: bool(shown))
    snap("09-discover-results")
    discover.open_result(SHOW_REPO)
    wait(lambda: discover.repo_title.text() == SHOW_REPO)
    snap("10-discover-variants")
    hub.throttle[BIG] = 0.05  # slow enough to be seen downloading
    discover.download_button("Q8_0").click()
    window.show_page("downloads")
    wait(lambda: any(e.done for e in window.downloads.entries()), timeout=60)
    spin(1.5)
    snap("11-downloads")

    served = []
    window.server.changed.connect(served.append)
    window.ctx.settings.set("server_port", 8080 if port_free(8080) else 0)
    window.server_action.trigger()  # Server > Serve the local API
    wait(lambda: bool(served))
    if not served[0]:
        raise SystemExit(f"the server did not start: {window.banner.text()}")
    snap("12-serving")

    # Convert: the tests' Hugging Face checkpoint (built once into .fireside-test-cache/)
    from hf_checkpoint import build_hf_checkpoint

    checkpoint = build_hf_checkpoint(ROOT / ".fireside-test-cache")
    convert = window.convert_page
    results = []
    window.converter.converted.connect(results.append)
    window.show_page("convert")
    convert.select_source(str(checkpoint))
    convert.select_target("gguf-q3_k_m")  # a type made only with an importance matrix
    snap("13-convert-imatrix")
    convert.select_target("gguf-q4_k_m")
    snap("13-convert-options")
    convert.start()
    wait(lambda: window.converter.fraction > 0.3, timeout=300)
    snap("14-converting")
    wait(lambda: bool(results), timeout=600)
    snap("15-quality-report")
    converted = results[0].record
    window.show_page("models")
    window.models_page.select(converted.id)
    snap("16-my-models-provenance")
    # the same source as ONNX int8 (the [onnx] extra), to its quality report
    window.show_page("convert")
    convert.select_source(str(checkpoint))
    if convert.select_target("onnx-int8") and convert.can_start():
        snap("17-convert-onnx-options")
        convert.start()
        wait(lambda: len(results) > 1, timeout=600)
        snap("18-convert-onnx-report")

    # every page again: small, then dark
    for tag, size, dark in (
        ("small", (1024, 700), False),
        ("small-dark", (1024, 700), True),
        ("dark", (1280, 820), True),
    ):
        theme.apply(app, dark=dark)
        window.renderer.palette = theme.DARK if dark else theme.LIGHT
        window.renderer._md = None
        window.resize(*size)
        for name, _label, _key in NAV:
            if name in window.pages:
                window.show_page(name)
                if name == "chat":
                    window.chat_page.open_conversation(window.chat_page.conversation.id)
                snap(f"{tag}-{name}")
    theme.apply(app, dark=False)

    window.close()
    hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
