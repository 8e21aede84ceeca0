"""The Discover and Downloads pages, offscreen (pytest-qt), against the fake Hub on 127.0.0.1.

Real widgets, the real job runner, real downloads of real tiny GGUF files into a temporary
HF cache and library; the tests read what a user sees (labels, buttons, files, the catalog).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import pytestqt  # noqa: F401  (the test extra has it; missing, the tests fail)
from hub_data import GATED_REPO, GGUF_REPO, HF_REPO, HUGE_REPO, Q8, partial_of

from app.gui.context import AppContext
from app.gui.discover_page import OFFLINE_NOTICE, DiscoverPage
from app.gui.downloads import DownloadsController
from app.gui.downloads_page import DownloadsPage
from app.history import History
from app.settings import Settings
from models import Catalog
from runtime import ModelHost

pytest_plugins = ("hub_fixtures",)  # env, served, fake_hub
pytestmark = pytest.mark.gui
WAIT_MS = 30_000


class Window:
    """What the main window does with these pages: one context, one controller, two pages,
    the banner's messages collected."""

    def __init__(self, qtbot, *, offline: bool = False) -> None:
        self.host = ModelHost(idle_unload_s=None)
        self.ctx = AppContext(settings=Settings(), history=History(), host=self.host)
        self.ctx.set_catalog(Catalog())
        self.ctx.set_offline(offline)
        self.banner: list[tuple[str, str]] = []
        self.actions: dict[str, object] = {}
        self.ctx.notify.connect(lambda text, kind: self.banner.append((kind, text)))
        self.ctx.ask.connect(self._ask)
        self.downloads = DownloadsController(self.ctx)
        self.discover = DiscoverPage(self.ctx, self.downloads)
        self.page = DownloadsPage(self.ctx, self.downloads)
        for widget in (self.discover, self.page):
            qtbot.addWidget(widget)
            widget.resize(840, 660)  # a 1024x700 window less its sidebar
            widget.show()

    def _ask(self, text: str, kind: str, action: str, callback: object) -> None:
        self.banner.append((kind, text))
        self.actions[action] = callback

    def said(self, part: str) -> bool:
        return any(part in text for _, text in self.banner)

    def close(self) -> None:
        self.ctx.closing = True
        self.downloads.shutdown()
        self.host.close()


@pytest.fixture
def make_window(qtbot, fake_hub):
    made: list[Window] = []

    def make(**kw) -> Window:
        made.append(Window(qtbot, **kw))
        return made[-1]

    yield make
    for window in made:
        window.close()


def search(qtbot, w: Window, words: str) -> int:
    with qtbot.waitSignal(w.discover.results_shown, timeout=WAIT_MS) as shown:
        assert w.discover.search(words)
    return shown.args[0]


def result_rows(page: DiscoverPage) -> list[list[str]]:
    tree = page.results
    return [
        [tree.topLevelItem(i).text(c) for c in range(tree.columnCount())]
        for i in range(tree.topLevelItemCount())
    ]


def open_repo(qtbot, w: Window, repo: str) -> None:
    assert w.discover.open_result(repo)
    qtbot.waitUntil(lambda: w.discover.repo_title.text() == repo)


def downloaded(home: Path) -> list:
    return [r for r in Catalog(home / "fireside.db").list() if r.source == "downloaded"]


# -- Discover ---------------------------------------------------------------------------------


def test_search_lists_results_and_a_repository_shows_its_variants_with_fit(
    qtbot, make_window
) -> None:
    w = make_window()
    assert w.discover.minimumSizeHint().width() <= 840
    assert w.page.minimumSizeHint().width() <= 840
    assert search(qtbot, w, "test/") == 4
    rows = result_rows(w.discover)
    assert rows[0] == ["test/tiny-GGUF", "GGUF", "500", "7", "2025-01-01", "apache-2.0"]
    assert rows[1][:2] == ["test/tiny-hf", "safetensors"] and rows[1][5] == "mit"
    assert rows[2][0] == "test/gated-GGUF  · gated"
    assert "4 models" in w.discover.notice.text()

    open_repo(qtbot, w, GGUF_REPO)
    assert "GGUF" in w.discover.repo_meta.text()
    assert "licence apache-2.0" in w.discover.repo_meta.text()
    variants = w.discover.variant_rows()
    assert [v[0] for v in variants] == ["Q4_K_M", "Q8_0", "★ F16 (2 parts)"]
    assert all(v[2] == "Fits" for v in variants)
    assert all(v[1].endswith("KB") or v[1].endswith("MB") for v in variants)
    assert w.discover.recommendation.text().startswith("Recommended: <b>F16</b> — the largest")
    assert w.discover.download_button("Q8_0").isEnabled()
    assert not w.discover.repo_notice.isVisible()

    open_repo(qtbot, w, HUGE_REPO)
    assert w.discover.variant_rows() == [
        ("★ Q4_K_M", w.discover.variant_rows()[0][1], "Fits"),
        ("Q8_0", "400 TB", "Won't fit"),
    ]

    open_repo(qtbot, w, HF_REPO)
    assert w.discover.variant_rows()[0][0] == "★ model"


def test_an_empty_result_and_an_unreachable_hub_are_explained(
    qtbot, make_window, monkeypatch
) -> None:
    w = make_window()
    assert search(qtbot, w, "no-such-model-anywhere") == 0
    assert w.discover.notice.text().startswith("Nothing on the Hub matches “no-such-model")
    assert not w.discover.search("   ")
    assert "Type a few words" in w.discover.notice.text()

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    assert search(qtbot, w, "tiny") == 0
    text = w.discover.notice.text()
    assert text.startswith("Could not reach the Hub") and "network connection" in text
    assert "Error" not in text and "Exception" not in text


def test_offline_mode_shows_a_notice_and_makes_no_request(qtbot, make_window, fake_hub) -> None:
    w = make_window(offline=True)
    assert w.discover.notice.text() == OFFLINE_NOTICE and w.discover.notice.isVisible()
    assert not w.discover.search_button.isEnabled()
    assert not w.discover.search("tiny")
    qtbot.keyClicks(w.discover.query, "more")
    qtbot.keyClick(w.discover.query, "\r")
    w.downloads.enqueue(GGUF_REPO, "tiny-Q8_0", label="Q8_0")  # queued, waits
    qtbot.wait(300)
    (row,) = w.page.rows()
    assert row.state.text() == "Waiting (offline mode is on)"
    assert "offline mode is on" in w.page.summary.text()
    assert fake_hub.log == []

    w.ctx.set_offline(False)  # it starts as soon as offline mode is off
    assert w.discover.search_button.isEnabled() and w.discover.notice.text() == ""
    qtbot.waitUntil(lambda: row.state.text() == "In your library", timeout=WAIT_MS)


def test_offline_from_the_environment_holds_the_queue(
    qtbot, make_window, fake_hub, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the window has not read it yet
    w = make_window()
    row = w.page.row(w.downloads.enqueue(GGUF_REPO, "tiny-Q8_0", label="Q8_0"))
    qtbot.waitUntil(lambda: row.state.text() == "Waiting (offline mode is on)", timeout=WAIT_MS)
    qtbot.wait(300)
    assert w.downloads.running_id() is None and fake_hub.log == []
    assert not w.said("Could not download")
    assert search(qtbot, w, "tiny") == 0 and w.discover.notice.text() == OFFLINE_NOTICE
    monkeypatch.delenv("HF_HUB_OFFLINE")
    w.ctx.set_offline(True)
    w.ctx.set_offline(False)  # turned off: the held download starts
    qtbot.waitUntil(lambda: row.state.text() == "In your library", timeout=WAIT_MS)


def test_a_gated_repository_says_how_to_log_in(qtbot, make_window, env) -> None:
    w = make_window()
    search(qtbot, w, "gated")
    open_repo(qtbot, w, GATED_REPO)
    assert "gated" in w.discover.repo_notice.text()
    assert "hf auth login" in w.discover.repo_notice.text()
    assert w.discover.repo_notice.isVisible()
    w.discover.download_button("Q4_K_M").click()
    (row,) = w.page.rows()
    qtbot.waitUntil(lambda: row.state.text() == "Stopped", timeout=WAIT_MS)
    assert "hf auth login" in row.detail.text() and "HF_TOKEN" in row.detail.text()
    assert w.said("Could not download gated-GGUF Q4_K_M") and w.said("hf auth login")
    assert row.resume_button.isVisible() and row.resume_button.text() == "Retry"
    assert w.discover.download_button("Q4_K_M").text() == "Retry"
    assert not downloaded(env / "home")


# -- Downloads --------------------------------------------------------------------------------


def test_download_pause_resume_and_chat_with_it(qtbot, make_window, fake_hub, env, served) -> None:
    data = served["gguf"][Q8]
    w = make_window()
    search(qtbot, w, "tiny")
    open_repo(qtbot, w, GGUF_REPO)
    fake_hub.throttle[Q8] = 0.1
    counts: list[int] = []
    w.downloads.active_count_changed.connect(counts.append)
    w.discover.download_button("Q8_0").click()
    assert w.said("tiny-GGUF Q8_0 is queued")
    (row,) = w.page.rows()
    assert row.title.text() == "tiny-GGUF Q8_0"
    qtbot.waitUntil(lambda: row.state.text() == "Downloading", timeout=WAIT_MS)
    assert w.discover.download_button("Q8_0").text() == "Downloading…"
    assert not w.discover.download_button("Q8_0").isEnabled()
    assert w.downloads.active_count() == 1 and counts[-1] == 1
    qtbot.waitUntil(lambda: "/s" in row.detail.text() and 0 < row.total_bar.value() < 1000)
    assert "left" in row.detail.text() and " of " in row.detail.text()
    assert row.file_label.text() == Q8
    assert row.pause_button.isVisible() and row.cancel_button.isVisible()
    assert not row.chat_button.isVisible()

    row.pause_button.click()
    qtbot.waitUntil(lambda: w.downloads.running_id() is None, timeout=WAIT_MS)
    assert row.state.text() == "Paused" and "kept" in row.detail.text()
    assert row.resume_button.isVisible() and not row.pause_button.isVisible()
    assert w.discover.download_button("Q8_0").text() == "Resume"
    kept = partial_of(env, data).stat().st_size
    assert 0 < kept < len(data) and counts[-1] == 0
    assert not downloaded(env / "home")

    fake_hub.throttle.clear()
    fake_hub.log.clear()
    with qtbot.waitSignal(w.ctx.library_changed, timeout=WAIT_MS) as changed:
        row.resume_button.click()
    qtbot.waitUntil(lambda: row.state.text() == "In your library")
    assert [h.get("Range") for h in fake_hub.gets(Q8)] == [f"bytes={kept}-"]
    (record,) = downloaded(env / "home")
    assert changed.args == [record.id] and Path(record.path).read_bytes() == data
    assert w.said("tiny-GGUF Q8_0 is downloaded and in your library")
    assert "SHA-256" in row.detail.text() and not row.cancel_button.isVisible()
    assert w.discover.download_button("Q8_0").text() == "Downloaded"
    assert row.chat_button.isVisible() and row.chat_button.isEnabled()
    with qtbot.waitSignal(w.ctx.use_model, timeout=1000) as used:
        row.chat_button.click()
    assert used.args == [record.id]
    row.remove_button.click()
    assert w.page.rows() == [] and w.page.empty.isVisible()
    assert downloaded(env / "home")  # the model stays in the library


def test_quitting_mid_download_resumes_on_the_next_start(
    qtbot, make_window, fake_hub, env, served
) -> None:
    data = served["gguf"][Q8]
    fake_hub.throttle[Q8] = 0.1
    w = make_window()
    w.downloads.enqueue(GGUF_REPO, "tiny-Q8_0", label="Q8_0", size=len(data))
    partial = partial_of(env, data)
    qtbot.waitUntil(
        lambda: partial.exists() and partial.stat().st_size > 64 * 1024, timeout=WAIT_MS
    )
    w.close()  # the window closes: the transfer stops, the partial file stays
    kept = partial.stat().st_size
    assert 0 < kept < len(data) and not downloaded(env / "home")

    fake_hub.throttle.clear()
    fake_hub.log.clear()
    again = make_window()  # the next start: it continues by itself
    (row,) = again.page.rows()
    qtbot.waitUntil(lambda: row.state.text() == "In your library", timeout=WAIT_MS)
    assert [h.get("Range") for h in fake_hub.gets(Q8)] == [f"bytes={kept}-"]
    (record,) = downloaded(env / "home")
    assert Path(record.path).read_bytes() == data


def test_cancel_deletes_the_partial_and_a_lost_connection_is_plain(
    qtbot, make_window, fake_hub, env, served
) -> None:
    data = served["gguf"][Q8]
    fake_hub.throttle[Q8] = 0.1
    w = make_window()
    entry_id = w.downloads.enqueue(GGUF_REPO, "tiny-Q8_0", label="Q8_0")
    row = w.page.row(entry_id)
    partial = partial_of(env, data)
    qtbot.waitUntil(lambda: partial.exists() and partial.stat().st_size > 0, timeout=WAIT_MS)
    row.cancel_button.click()
    qtbot.waitUntil(lambda: row.state.text() == "Cancelled", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: w.downloads.running_id() is None, timeout=WAIT_MS)
    assert not partial.exists() and "deleted" in row.detail.text()
    assert row.remove_button.isVisible() and not row.resume_button.isVisible()

    fake_hub.throttle.clear()
    fake_hub.drop_after[Q8] = [len(data) // 4] + [0] * 10
    second = w.page.row(w.downloads.enqueue(GGUF_REPO, "tiny-Q8_0", label="Q8_0"))
    qtbot.waitUntil(lambda: second.state.text() == "Stopped", timeout=WAIT_MS)
    assert "connection to the Hub was lost" in second.detail.text()
    assert w.said("Could not download tiny-GGUF Q8_0: the connection to the Hub was lost")
    assert second.resume_button.text() == "Resume" and partial.exists()
    fake_hub.drop_after.clear()
    w.actions["Resume"]()  # the banner's button
    qtbot.waitUntil(lambda: second.state.text() == "In your library", timeout=WAIT_MS)


def test_a_damaged_file_is_refused_in_plain_words(qtbot, make_window, fake_hub, env) -> None:
    fake_hub.flip_byte.add(Q8)
    w = make_window()
    row = w.page.row(w.downloads.enqueue(GGUF_REPO, "tiny-Q8_0", label="Q8_0"))
    qtbot.waitUntil(lambda: row.state.text() == "Stopped", timeout=WAIT_MS)
    assert "arrived damaged" in row.detail.text() and "SHA-256" in row.detail.text()
    assert not downloaded(env / "home")
    assert not list((env / "home" / "models").rglob("*.gguf"))


def test_a_split_model_shows_each_file_and_lands_as_one_model(
    qtbot, make_window, fake_hub, env, served
) -> None:
    shards = sorted(n for n in served["gguf"] if n.startswith("tiny-F16"))
    fake_hub.throttle[shards[0]] = 0.1
    w = make_window()
    search(qtbot, w, "tiny-GGUF")
    open_repo(qtbot, w, GGUF_REPO)
    w.discover.download_button("F16").click()
    (row,) = w.page.rows()
    qtbot.waitUntil(lambda: 0 < row.file_bar.value() < 1000, timeout=WAIT_MS)
    assert row.file_label.text() == f"File 1 of 2: {shards[0]}"
    assert row.file_bar.isVisible() and row.total_bar.value() < row.file_bar.value()
    fake_hub.throttle.clear()
    qtbot.waitUntil(lambda: row.state.text() == "In your library", timeout=WAIT_MS)
    (record,) = downloaded(env / "home")
    assert record.quantization == "F16" and record.format == "gguf-split"
    assert sorted(p.name for p in Path(record.path).parent.glob("*.gguf")) == shards
