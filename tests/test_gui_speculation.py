"""The Server page's speculative decoding settings (prompt lookup, a draft model): saved,
read back by the next window, and handed to the model host for its next load."""

from __future__ import annotations

import pytest
import pytestqt  # noqa: F401  (the test extra has it; missing, the tests fail)
from PySide6.QtWidgets import QApplication

from app.settings import Settings
from models import BUNDLED_ID, Catalog

pytest_plugins = ("gui_fixtures",)  # home, host
pytestmark = pytest.mark.gui


@pytest.fixture
def make_window(qtbot, home):
    from app.gui import theme
    from app.gui.window import MainWindow

    theme.apply(QApplication.instance())
    made = []

    def make():
        window = MainWindow(autoload=False)  # its own host; nothing is loaded
        qtbot.addWidget(window)
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()


def test_speculation_settings_round_trip_into_the_next_load(make_window):
    bundled = Catalog().get(BUNDLED_ID).path
    page = make_window().server_page
    assert page.speculate.currentData() == "off" and page.draft.currentData() == ""
    assert page.draft.findData(bundled) > 0, "the library's GGUF models are offered as drafts"

    page.speculate.setCurrentIndex(page.speculate.findData("ngram"))
    page.draft.setCurrentIndex(page.draft.findData(bundled))
    assert page.save()
    saved = Settings()
    assert saved.get("speculate") == "ngram" and saved.get("draft_model") == bundled
    options = page.ctx.host.options
    assert options.speculate == "ngram" and options.draft == bundled

    again = make_window()  # a new window reads them back and loads with them
    page2 = again.server_page
    assert page2.speculate.currentData() == "ngram"
    assert page2.draft.currentData() == bundled
    assert again.ctx.host.options.speculate == "ngram"
    assert again.ctx.host.options.draft == bundled

    page2.speculate.setCurrentIndex(page2.speculate.findData("off"))
    page2.draft.setCurrentIndex(0)
    assert page2.save()
    assert Settings().get("speculate") == "off" and Settings().get("draft_model") is None
    assert page2.ctx.host.options.draft is None


def test_a_draft_outside_the_library_stays_chosen_and_junk_is_ignored(make_window, tmp_path):
    from app.gui.server_controller import speculation_options

    elsewhere = str(tmp_path / "tiny-draft.gguf")
    Settings().update({"speculate": "turbo", "draft_model": elsewhere})
    assert speculation_options(Settings()) == {"speculate": None, "draft": elsewhere}
    page = make_window().server_page
    assert page.speculate.currentData() == "off"
    assert page.draft.currentData() == elsewhere
    assert page.draft.currentText() == "tiny-draft.gguf"
    Settings().update({"speculate": None, "draft_model": None})
