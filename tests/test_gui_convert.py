"""The Convert page, offscreen (pytest-qt): the real checkpoint converted from the page to
Q4_K_M, MLX 4-bit and ONNX int8 through the real controller, job runner, converter and
quality report; the result in the library with its report; a cancel half way leaving
nothing; an unsupported folder refused before any work; a converter that is not installed
greyed out with its install command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import pytestqt  # noqa: F401  (the test extra has it; missing, the tests fail)
from PySide6.QtCore import Qt

from app.gui.context import AppContext
from app.gui.convert import ConvertController
from app.gui.convert_page import ConvertPage
from app.history import History
from app.settings import Settings
from models import Catalog
from models.library import import_model
from runtime import ModelHost

pytestmark = [pytest.mark.gui, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 180_000


class Window:
    """What the main window does with this page: one context, the controller, the page, and
    the banner's messages collected."""

    def __init__(self, qtbot) -> None:
        self.host = ModelHost(idle_unload_s=None)
        self.ctx = AppContext(settings=Settings(), history=History(), host=self.host)
        self.ctx.set_catalog(Catalog())
        self.banner: list[tuple[str, str]] = []
        self.actions: dict[str, object] = {}
        self.ctx.notify.connect(lambda text, kind: self.banner.append((kind, text)))
        self.ctx.ask.connect(self._ask)
        self.controller = ConvertController(self.ctx)
        self.page = ConvertPage(self.ctx, self.controller)
        qtbot.addWidget(self.page)
        self.page.resize(840, 660)  # a 1024x700 window less its sidebar
        self.page.show()

    def _ask(self, text: str, kind: str, action: str, callback: object) -> None:
        self.banner.append((kind, text))
        self.actions[action] = callback

    def close(self) -> None:
        self.ctx.closing = True
        self.controller.shutdown()
        self.host.close()


@pytest.fixture
def window(qtbot, fresh_home):
    w = Window(qtbot)
    yield w
    w.close()


def library_files(home: Path) -> list[str]:
    folder = home / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def convert_from_page(qtbot, w: Window, to: str):
    page = w.page
    assert page.select_target(to)
    assert page.can_start(), page.status.text()
    with qtbot.waitSignal(w.controller.converted, timeout=WAIT_MS) as done:
        qtbot.mouseClick(page.convert_button, Qt.MouseButton.LeftButton)
        assert w.controller.busy and page.cancel_button.isVisible()
    qtbot.waitUntil(lambda: not w.controller.busy)
    return done.args[0]


def test_convert_to_q4_k_m_and_mlx_4bit_from_the_page(qtbot, window, hf_checkpoint, fresh_home):
    w, page = window, window.page
    (source,) = import_model(hf_checkpoint, mode="link", catalog=w.ctx.catalog)
    page.reload_sources()
    labels = [page.source_box.itemText(i) for i in range(page.source_box.count())]
    assert any(source.name in t and "safetensors" in t for t in labels), labels
    assert labels[-1] == "Choose a folder…"
    assert page.selected_target() == "gguf-q4_k_m"  # the recommendation on Linux
    assert page.target_box.currentText() == "★ GGUF Q4_K_M (recommended)"
    assert "Recommended for llama.cpp" in page.recommendation.text()

    page.select_source(source.id)
    assert page.source_box.currentData() == source.id
    assert "LlamaForCausalLM" in page.source_note.text()
    assert page.estimate.text().startswith("Expected size: about") and "Fits in memory" in (
        page.estimate.text()
    )
    expected = page.estimate_bytes
    seen: list[float] = []
    w.controller.progressed.connect(lambda: seen.append(w.controller.fraction))

    result = convert_from_page(qtbot, w, "gguf-q4_k_m")
    record, report = result.record, result.report
    assert seen == sorted(seen) and max(seen) == 1.0 and len(seen) > 3
    assert abs(record.size_bytes - expected) < 0.1 * expected, (record.size_bytes, expected)
    assert 0.005 < report.kl < 0.1 and 0.75 < report.top1 < 0.99, report
    assert page.result.isVisible() and "is in your library" in page.result.title.text()
    assert page.result.verdict.text() == report.describe()
    assert (
        "Mean KL divergence" in page.result.numbers.text()
        and "same top token" in page.result.numbers.text()
    )
    assert w.controller.stage == "Done" and not page.cancel_button.isVisible()

    stored = Catalog(fresh_home / "fireside.db").get(record.id)
    assert stored.source == "converted" and stored.quantization == "Q4_K_M" and stored.owned
    quality = stored.provenance["quality"]
    assert quality["kind"] == "gguf-q4_k_m" and quality["summary"] == report.describe()
    assert quality["verdict"] == report.verdict and quality["tokens"] == report.tokens
    assert stored.provenance["source_id"] == source.id
    assert stored.provenance["origin"] == str(hf_checkpoint.resolve())
    assert library_files(fresh_home) == [Path(stored.path).name]
    assert any("is in your library" in text for _, text in w.banner)
    with qtbot.waitSignal(w.ctx.use_model, timeout=1000) as chat:
        qtbot.mouseClick(page.result.chat_button, Qt.MouseButton.LeftButton)
    assert chat.args == [record.id]

    result = convert_from_page(qtbot, w, "mlx-4bit")
    mlx = Catalog(fresh_home / "fireside.db").get(result.record.id)
    assert mlx.format == "mlx" and mlx.provenance["quality"]["kind"] == "mlx-4bit"
    assert mlx.provenance["quality"]["kl"] == pytest.approx(result.report.kl, abs=1e-6)
    assert result.report.kl > report.kl  # 4-bit embeddings and g64 groups lose more
    assert page.result.verdict.text() == result.report.describe()
    assert len(library_files(fresh_home)) == 2


def test_onnx_int8_from_the_page_with_its_report(qtbot, window, hf_checkpoint, fresh_home):
    w, page = window, window.page
    index = page.target_box.findData("onnx-int8")
    assert page.target_box.model().item(index).isEnabled()
    assert not page.missing.text()  # the [onnx] extra is installed here
    page.select_source(str(hf_checkpoint))
    assert page.select_target("onnx-int8") and page.can_start(), page.status.text()
    assert "Fits in memory" in page.estimate.text()
    expected = page.estimate_bytes

    result = convert_from_page(qtbot, w, "onnx-int8")
    stored = Catalog(fresh_home / "fireside.db").get(result.record.id)
    assert (stored.format, stored.quantization, stored.owned) == ("onnx", "ONNX int8", True)
    assert abs(stored.size_bytes - expected) < 0.05 * expected, (stored.size_bytes, expected)
    quality = stored.provenance["quality"]
    assert quality["kind"] == "onnx-int8" and "ONNX Runtime" in quality["method"]
    assert result.report.kl < 0.01 and result.report.top1 > 0.85, result.report
    assert page.result.verdict.text() == result.report.describe()
    assert "same top token" in page.result.numbers.text()
    assert library_files(fresh_home) == [Path(stored.path).name]


def test_a_converter_not_installed_is_greyed_out_with_its_command(
    qtbot, fresh_home, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)  # as without the [onnx] extra
    w = Window(qtbot)
    try:
        page = w.page
        for to in ("onnx-int8", "onnx-int4"):
            item = page.target_box.model().item(page.target_box.findData(to))
            assert not item.isEnabled() and "pip install 'fireside[onnx,torch]'" in item.toolTip()
        assert page.missing.text() == (
            "ONNX conversion needs onnxruntime_genai, which is not installed: "
            "pip install 'fireside[onnx,torch]'."
        )
        assert page.missing.isVisible()
        gguf = page.target_box.model().item(page.target_box.findData("gguf-q4_k_m"))
        assert gguf.isEnabled()
    finally:
        w.close()


@pytest.mark.parametrize("when", ["converting", "checking"])
def test_cancel_half_way_leaves_nothing(qtbot, window, hf_checkpoint, fresh_home, when) -> None:
    w, page = window, window.page
    page.select_source(str(hf_checkpoint))
    assert page.select_target("gguf-q8_0")
    ctl = w.controller

    def halfway() -> None:
        if (
            when == "converting"
            and 0.2 < ctl.fraction < 0.6
            or when == "checking"
            and ctl.stage == "Checking the quality…"
        ):
            ctl.cancel()

    ctl.progressed.connect(halfway)
    with qtbot.waitSignal(ctl.cancelled, timeout=WAIT_MS):
        assert page.start()
    qtbot.waitUntil(lambda: not ctl.busy)
    assert page.status.text() == "Cancelled; nothing was kept."
    assert library_files(fresh_home) == []
    assert not [r for r in w.ctx.catalog.list() if r.source == "converted"]
    assert not page.result.isVisible() and page.can_start()


def test_a_crashed_conversion_says_so_and_keeps_nothing(qtbot, window, hf_checkpoint, fresh_home):
    """The conversion runs in a child process; killed half way (a native crash, the OOM
    killer), it is reported in plain words and nothing reaches the library."""
    import multiprocessing
    import os
    import signal

    w, page = window, window.page
    page.select_source(str(hf_checkpoint))
    assert page.select_target("gguf-q8_0")
    ctl = w.controller
    with qtbot.waitSignal(ctl.failed, timeout=WAIT_MS) as failed:
        assert page.start()
        qtbot.waitUntil(lambda: ctl.fraction > 0.2, timeout=WAIT_MS)
        (child,) = [p for p in multiprocessing.active_children() if p.name == "fireside-convert"]
        os.kill(child.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: not ctl.busy)
    assert "stopped unexpectedly" in failed.args[0] and "nothing was added" in failed.args[0]
    assert "Error" not in failed.args[0] and "Traceback" not in failed.args[0]
    assert any("stopped unexpectedly" in text for kind, text in w.banner if kind == "error")
    assert not [r for r in w.ctx.catalog.list() if r.source == "converted"]
    assert library_files(fresh_home) == []  # not even the partial file
    assert page.can_start()  # and it can be tried again


def test_an_unsupported_folder_is_refused_before_any_work(
    qtbot, window, hf_checkpoint, tmp_path, fresh_home
) -> None:
    w, page = window, window.page
    gpt2 = tmp_path / "gpt2-like"
    gpt2.mkdir()
    config = json.loads((hf_checkpoint / "config.json").read_text())
    (gpt2 / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    (gpt2 / "model.safetensors").symlink_to(hf_checkpoint / "model.safetensors")
    (gpt2 / "tokenizer.json").symlink_to(hf_checkpoint / "tokenizer.json")
    assert page.drop_path(str(gpt2)), "a checkpoint folder is taken as the source"
    assert not page.can_start()
    assert "GPT2LMHeadModel" in page.status.text() and "LlamaForCausalLM" in page.status.text()
    assert page.status.text().startswith("This model cannot be converted:")
    assert not w.controller.start(gpt2, "gguf-q4_k_m") and not w.controller.busy
    assert any("GPT2LMHeadModel" in text for kind, text in w.banner if kind == "error")

    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps(config))
    (bare / "model.safetensors").symlink_to(hf_checkpoint / "model.safetensors")
    page.select_source(str(bare))
    assert not page.can_start() and "no tokenizer" in page.status.text()
    assert page.select_target("mlx-4bit") and "no tokenizer" in page.status.text()

    assert not page.drop_path(str(tmp_path / "nothing-here"))
    assert not page.drop_path(str(hf_checkpoint / "model.safetensors"))
    page.select_source(str(hf_checkpoint))
    assert page.can_start() and not page.status.text()
    assert library_files(fresh_home) == []


def test_choosing_a_source_imports_no_torch(hf_checkpoint) -> None:
    script = (
        "import sys\n"
        "from app.gui.convert import check, expected_size, fit\n"
        f"folder = {str(hf_checkpoint)!r}\n"
        "for to in ('gguf-q4_k_m', 'gguf-q8_0', 'mlx-4bit', 'onnx-int8'):\n"
        "    assert check(folder, to) is None, check(folder, to)\n"
        "    assert expected_size(folder, to) > 50_000_000\n"
        "    assert fit(expected_size(folder, to), to) == 'fits'\n"
        "heavy = ('torch', 'transformers', 'mlx', 'mlx_lm', 'onnxruntime_genai', 'onnx_ir')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_building_the_page_loads_no_converter(fresh_home) -> None:
    """The window builds this page while it starts: which types this machine can make is
    asked of quant.needs, without numpy, gguf or a converter's module."""
    script = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from app.gui.context import AppContext\n"
        "from app.gui.convert import ConvertController\n"
        "from app.gui.convert_page import ConvertPage\n"
        "from app.history import History\n"
        "from app.settings import Settings\n"
        "ctx = AppContext(settings=Settings(), history=History(), host=None)\n"
        "page = ConvertPage(ctx, ConvertController(ctx))\n"
        "assert page.target_box.count() == 15, page.target_box.count()\n"
        "loaded = ('numpy', 'gguf', 'quant.targets', 'quant.mlx', 'quant.onnx', 'quant.to_gguf')\n"
        "loaded = [m for m in loaded if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", FIRESIDE_HOME=str(fresh_home))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- the importance matrix ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_llama(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (hidden 64, two layers): its matrix is computed in under a second."""
    from tiny_models import build_tiny

    return build_tiny(
        "LlamaForCausalLM", tmp_path_factory.mktemp("gui-imatrix") / "tiny", hf_checkpoint
    )


def test_the_page_knows_which_types_take_a_matrix_as_quant_does() -> None:
    from app.gui.convert import IMATRIX_TARGETS, NEEDS_IMATRIX, TARGETS
    from quant import OUTPUT_TYPES

    assert {n for n, t in OUTPUT_TYPES.items() if t.mixed} == IMATRIX_TARGETS
    assert {n for n, t in OUTPUT_TYPES.items() if t.needs_imatrix} == NEEDS_IMATRIX
    assert set(OUTPUT_TYPES) <= {to for to, _ in TARGETS}  # every GGUF type is offered


def test_a_type_that_needs_a_matrix_computes_one_from_the_source(
    qtbot, window, tiny_llama, fresh_home
) -> None:
    from app.gui.convert_parts import NONE

    w, page = window, window.page
    choice = page.imatrix
    page.select_source(str(tiny_llama))
    for to in ("gguf-q8_0", "gguf-f16", "mlx-4bit", "onnx-int8"):
        assert page.select_target(to) and not choice.isVisible() and choice.spec() is None
    assert page.select_target("gguf-q4_k_m") and choice.isVisible()
    assert choice.choice() == NONE and choice.spec() is None and page.can_start()
    assert "follows the original more closely" in choice.note.text()
    q3 = page.target_box.findData("gguf-q3_k_m")
    assert "needs an importance matrix" in page.target_box.itemData(q3, Qt.ItemDataRole.ToolTipRole)

    assert page.select_target("gguf-q3_k_m")  # picks "compute", and says why
    assert choice.spec() == "auto" and page.can_start(), page.status.text()
    assert not choice.box.model().item(choice.box.findData(NONE)).isEnabled()
    assert choice.note.text().startswith(
        "GGUF Q3_K_M needs an importance matrix: Fireside computes one from the source"
    )
    stages: list[str] = []
    seen: list[float] = []
    w.controller.progressed.connect(
        lambda: (stages.append(w.controller.stage), seen.append(w.controller.fraction))
    )
    result = convert_from_page(qtbot, w, "gguf-q3_k_m")
    assert stages[0] == "Computing the importance matrix from the source…"
    order = list(dict.fromkeys(s for s in stages if s.endswith("…")))
    assert order == [stages[0], "Converting to GGUF Q3_K_M…", "Checking the quality…"], order
    assert seen == sorted(seen) and seen[-1] == 1.0
    stored = Catalog(fresh_home / "fireside.db").get(result.record.id)
    assert stored.quantization == "Q3_K_M" and stored.provenance["imatrix"] == "auto"
    assert result.report is not None and result.report.kl < 0.05, result.report
    assert page.result.imatrix.text() == "Importance matrix: computed from the source"
    assert page.result.imatrix.isVisible()

    # My models shows it as `fireside models show` prints it
    from app.gui.models_page import details_html

    assert "<b>Imatrix</b></td><td>&nbsp;auto</td>" in details_html(stored, "fits")
    shown = subprocess.run(
        [sys.executable, "-m", "app", "models", "show", stored.id], cwd=ROOT,
        env=dict(os.environ, FIRESIDE_HOME=str(fresh_home)), capture_output=True, text=True,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert [line.split() for line in shown.stdout.splitlines() if line.startswith("imatrix")] == [
        ["imatrix", "auto"]
    ]


def test_a_dropped_imatrix_file_guides_the_conversion_and_bad_ones_are_said(
    qtbot, window, tiny_llama, bundled_gguf, tmp_path, fresh_home
) -> None:
    from quant.imatrix import ImportanceMatrix, save_imatrix
    from quant.imatrix_compute import compute_imatrix

    w, page = window, window.page
    choice = page.imatrix
    page.select_source(str(tiny_llama))
    assert page.select_target("gguf-q8_0")  # a type no matrix guides: Q4_K_M is chosen
    matrix = save_imatrix(compute_imatrix(tiny_llama), tmp_path / "tiny-imatrix.gguf")
    assert not page.drop_path(str(bundled_gguf))  # a GGUF model: the window imports it
    assert page.drop_path(str(matrix))
    assert page.selected_target() == "gguf-q4_k_m" and choice.isVisible()
    assert choice.spec() == str(matrix) and choice.file_label.text() == str(matrix)
    assert choice.problem is None and page.can_start()

    other = ImportanceMatrix()  # a matrix made for another model
    other.sums["blk.0.ffn_up_other.weight"] = np.ones((1, 64))
    other.counts["blk.0.ffn_up_other.weight"] = np.ones(1)
    wrong = save_imatrix(other, tmp_path / "other-model.gguf")
    damaged = tmp_path / "damaged.dat"
    damaged.write_bytes(b"\x03\x00\x00\x00garbage")
    for bad, words in (
        (wrong, "names none of this model's tensors"),
        (damaged, "is not an importance matrix Fireside can read"),
        (bundled_gguf, "not of the imatrix type"),
        (tmp_path / "gone.dat", "does not exist"),
    ):
        choice.take_file(bad)
        assert words in choice.note.text() and not page.can_start(), choice.note.text()
        assert choice.note.text().startswith("This importance matrix cannot be used:")
        assert "Error" not in choice.note.text()
        assert not w.controller.start(tiny_llama, "gguf-q4_k_m", imatrix=str(bad))
        assert any(words in text for kind, text in w.banner if kind == "error")
    assert not w.controller.busy and library_files(fresh_home) == []

    assert page.drop_path(str(matrix)) and page.select_target("gguf-q2_k")
    assert choice.spec() == str(matrix) and page.can_start(), choice.note.text()
    result = convert_from_page(qtbot, w, "gguf-q2_k")
    stored = Catalog(fresh_home / "fireside.db").get(result.record.id)
    assert stored.quantization == "Q2_K" and stored.provenance["imatrix"] == str(matrix)
    assert page.result.imatrix.text() == f"Importance matrix: read from {matrix}"
    assert library_files(fresh_home) == [Path(stored.path).name]


def test_cancel_while_the_matrix_is_computed_leaves_nothing(
    qtbot, window, tiny_llama, fresh_home
) -> None:
    w, page, ctl = window, window.page, window.controller
    page.select_source(str(tiny_llama))
    assert page.select_target("gguf-iq4_xs") and page.imatrix.spec() == "auto"

    def early() -> None:
        if ctl.stage.startswith("Computing the importance matrix") and ctl.fraction > 0:
            ctl.cancel()

    ctl.progressed.connect(early)
    with qtbot.waitSignal(ctl.cancelled, timeout=WAIT_MS):
        assert page.start()
    qtbot.waitUntil(lambda: not ctl.busy)
    assert ctl.fraction < 0.25 and page.status.text() == "Cancelled; nothing was kept."
    assert library_files(fresh_home) == [] and not list(tiny_llama.parent.glob("*.gguf*"))
    assert not [r for r in w.ctx.catalog.list() if r.source == "converted"]
    assert page.can_start()
