"""The Discover page: search the Hugging Face Hub, open a result, see what it offers (each
quantization with its size and whether it fits this machine's memory, the recommended one
marked and why) and queue a download. The same ``models.hub`` search as ``fireside search``;
every request runs on a worker, and none at all in offline mode."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from models.sizes import size_cell

from .context import AppContext
from .downloads import DownloadsController
from .worker import run_job

RESULT_COLUMNS = ("Model", "Format", "Downloads", "Likes", "Updated", "Licence")
VARIANT_COLUMNS = ("Variant", "Size", "Memory", "")
FORMATS = (("Any format", None), ("GGUF", "gguf"), ("MLX", "mlx"), ("safetensors", "safetensors"))
KIND_WORDS = {"gguf": "GGUF", "mlx": "MLX", "safetensors": "safetensors", "pytorch": "PyTorch"}
FIT_WORDS = {"fits": "Fits", "tight": "Tight", "won't fit": "Won't fit"}
SEARCH_LIMIT = 20
OFFLINE_NOTICE = (
    "Offline mode is on, so Fireside makes no network request and cannot search the Hub. "
    "Turn offline mode off to find and download models."
)
GATED_NOTICE = (
    "This model is gated: its authors ask you to accept their terms on its Hub page first. "
    "Then log in with `hf auth login` in a terminal (or set HF_TOKEN to an access token) "
    "and download it here."
)
PRIVATE_NOTICE = (
    "This repository is private: it downloads only with an access token that may read it "
    "(`hf auth login` in a terminal, or HF_TOKEN)."
)


def _count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M".replace(".0M", "M")
    if n >= 10_000:
        return f"{n // 1000}k"
    return f"{n:,}"


class DiscoverPage(QWidget):
    results_shown = Signal(int)  # how many results a finished search shows (0: none)

    def __init__(self, ctx: AppContext, downloads: DownloadsController) -> None:
        super().__init__()
        self.ctx, self.downloads = ctx, downloads
        self._results: list[Any] = []
        self._open: Any = None
        self._search_no = 0
        self._buttons: dict[str, QPushButton] = {}  # variant label -> its Download button
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        title = QLabel("Discover")
        title.setObjectName("pageTitle")
        layout.addWidget(title)

        bar = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search the Hugging Face Hub, e.g. qwen gguf")
        self.query.setClearButtonEnabled(True)
        self.query.returnPressed.connect(self.search)
        self.format_box = QComboBox()
        for text, value in FORMATS:
            self.format_box.addItem(text, value)
        self.search_button = QPushButton("Search")
        self.search_button.clicked.connect(self.search)
        bar.addWidget(self.query, 1)
        bar.addWidget(self.format_box)
        bar.addWidget(self.search_button)
        layout.addLayout(bar)

        self.notice = QLabel()
        self.notice.setObjectName("pageNotice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.notice)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.results = QTreeWidget()
        self.results.setHeaderLabels(RESULT_COLUMNS)
        self.results.setRootIsDecorated(False)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results.setAlternatingRowColors(True)
        header = self.results.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col in range(1, len(RESULT_COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        self.results.currentItemChanged.connect(lambda item, _prev: self._opened(item))
        split.addWidget(self.results)
        split.addWidget(self._details_pane())
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([560, 420])
        layout.addWidget(split, 1)

        ctx.offline_changed.connect(lambda _on: self._show_offline_state())
        downloads.changed.connect(lambda _id: self._refresh_buttons())
        self._show_offline_state()
        self._show_details(None)

    def _details_pane(self) -> QWidget:
        pane = QWidget()
        col = QVBoxLayout(pane)
        col.setContentsMargins(8, 0, 0, 0)
        self.repo_title = QLabel()
        self.repo_title.setObjectName("pageTitle")
        self.repo_title.setWordWrap(True)
        self.repo_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.repo_meta = QLabel()
        self.repo_meta.setWordWrap(True)
        self.repo_notice = QLabel()  # gated / private / why details are missing
        self.repo_notice.setObjectName("pageNotice")
        self.repo_notice.setWordWrap(True)
        self.repo_notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.recommendation = QLabel()
        self.recommendation.setWordWrap(True)
        self.variants = QTreeWidget()
        self.variants.setHeaderLabels(VARIANT_COLUMNS)
        self.variants.setRootIsDecorated(False)
        self.variants.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        header = self.variants.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(VARIANT_COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        for widget in (self.repo_title, self.repo_meta, self.repo_notice, self.recommendation):
            col.addWidget(widget)
        col.addWidget(self.variants, 1)
        return pane

    # -- the public face --------------------------------------------------------------------
    def search(self, text: str | None = None) -> bool:
        """Search the Hub for ``text`` (default: the box); False when nothing was asked
        (offline mode, or no words)."""
        if text is not None:
            self.query.setText(text)
        query = self.query.text().strip()
        if self.ctx.offline:
            self._show_offline_state()
            return False
        if not query:
            self._say("Type a few words of a model's name, e.g. “llama 3.2 gguf”.")
            return False
        fmt = self.format_box.currentData()
        self._search_no += 1
        number = self._search_no
        self._say(f"Searching the Hub for “{query}”…")

        def job(_job: Any) -> list[Any]:
            from models.hub import search

            return search(query, format=fmt, limit=SEARCH_LIMIT)

        run_job(
            job,
            on_done=lambda found: self._found(number, query, found),
            on_error=lambda exc: self._search_failed(number, exc),
            name="fireside-search",
        )
        return True

    def open_result(self, repo: str) -> bool:
        """Show the details of the result named ``repo``; False when it is not listed."""
        for i in range(self.results.topLevelItemCount()):
            item = self.results.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == repo:
                self.results.setCurrentItem(item)
                return True
        return False

    def download_button(self, label: str) -> QPushButton:
        """The Download button of the open result's variant ``label`` (``"Q4_K_M"``, or
        ``"model"`` for a model folder)."""
        return self._buttons[label]

    def variant_rows(self) -> list[tuple[str, str, str]]:
        """What the variants list shows: ``(variant, size, memory)`` per row."""
        out = []
        for i in range(self.variants.topLevelItemCount()):
            item = self.variants.topLevelItem(i)
            out.append((item.text(0), item.text(1), item.text(2)))
        return out

    # -- search results ---------------------------------------------------------------------
    def _say(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.setVisible(bool(text))

    def _show_offline_state(self) -> None:
        offline = self.ctx.offline
        self.search_button.setEnabled(not offline)
        if offline:
            self._say(OFFLINE_NOTICE)
        elif self.notice.text() == OFFLINE_NOTICE:
            self._say("")
        self._refresh_buttons()

    def _found(self, number: int, query: str, found: list[Any]) -> None:
        if number != self._search_no:
            return  # a newer search is under way
        self._results = list(found)
        self.results.clear()
        for r in self._results:
            marks = [m for m, on in (("gated", r.gated), ("private", r.private)) if on]
            name = r.repo + (f"  · {', '.join(marks)}" if marks else "")
            item = QTreeWidgetItem(
                [
                    name,
                    KIND_WORDS.get(r.kind, "other"),
                    _count(r.downloads),
                    _count(r.likes),
                    (r.last_modified or "")[:10] or "—",
                    r.license or "—",
                ]
            )
            item.setData(0, Qt.ItemDataRole.UserRole, r.repo)
            item.setToolTip(0, r.repo)
            for col in (2, 3):
                item.setTextAlignment(col, Qt.AlignmentFlag.AlignRight)
            self.results.addTopLevelItem(item)
        if not found:
            self._say(
                f"Nothing on the Hub matches “{query}”. Try fewer or other words, "
                "or another format."
            )
        else:
            shown = f"{len(found)} models" if len(found) != 1 else "1 model"
            self._say(f"{shown} for “{query}”, most downloaded first. Open one to see its files.")
        self._show_details(None)
        self.results_shown.emit(len(found))

    def _search_failed(self, number: int, exc: BaseException) -> None:
        if number != self._search_no:
            return
        from models.errors import describe
        from models.hub import HubOffline, HubUnreachable

        if isinstance(exc, HubOffline):
            self._say(OFFLINE_NOTICE)
        elif isinstance(exc, HubUnreachable):
            self._say(f"Could not reach the Hub: {describe(exc)}.")
        else:
            self._say(f"The search did not work: {describe(exc)}.")
        self.results_shown.emit(0)

    # -- one result -------------------------------------------------------------------------
    def _opened(self, item: QTreeWidgetItem | None) -> None:
        repo = item.data(0, Qt.ItemDataRole.UserRole) if item is not None else None
        self._show_details(next((r for r in self._results if r.repo == repo), None))

    def _show_details(self, result: Any) -> None:
        self._open = result
        self.variants.clear()
        self._buttons.clear()
        has = result is not None
        for widget in (self.repo_title, self.repo_meta, self.variants):
            widget.setVisible(has)
        if not has:
            self.repo_notice.setVisible(False)
            self.recommendation.setVisible(False)
            return
        from models.hub import recommend

        self.repo_title.setText(result.repo)
        facts = [
            KIND_WORDS.get(result.kind, "no runnable files"),
            f"licence {result.license}" if result.license else "licence not stated",
            f"updated {result.last_modified[:10]}" if result.last_modified else "",
            f"{result.downloads:,} downloads",
            f"{result.likes:,} likes",
        ]
        self.repo_meta.setText(" · ".join(f for f in facts if f))
        notes = []
        if result.gated:
            notes.append(GATED_NOTICE)
        if result.private:
            notes.append(PRIVATE_NOTICE)
        if result.note:
            notes.append(f"Its files could not be listed: {result.note}.")
        elif not result.offers:
            notes.append(
                "It holds no model files Fireside can run (a GGUF file, or an MLX or "
                "safetensors model folder)."
            )
        self.repo_notice.setText("\n\n".join(notes))
        self.repo_notice.setVisible(bool(notes))

        best, why = recommend(result.offers)
        if best is not None:
            self.recommendation.setText(f"Recommended: <b>{best.label}</b> — {why}.")
        else:
            self.recommendation.setText(why[:1].upper() + why[1:] + "." if why else "")
        self.recommendation.setVisible(bool(self.recommendation.text()))
        for offer in result.offers:
            self._add_variant(result, offer, offer is best)
        self._refresh_buttons()

    def _add_variant(self, result: Any, offer: Any, recommended: bool) -> None:
        label = offer.label + (f" ({len(offer.files)} parts)" if offer.split else "")
        if recommended:
            label = "★ " + label
        item = QTreeWidgetItem(
            [label, size_cell(offer.size), FIT_WORDS.get(offer.fit or "", "Unknown")]
        )
        files = "\n".join(offer.files)
        item.setToolTip(0, f"Recommended for this machine\n{files}" if recommended else files)
        item.setData(2, Qt.ItemDataRole.UserRole, offer.fit)
        if recommended:
            font = QFont(item.font(0))
            font.setBold(True)
            for c in range(3):
                item.setFont(c, font)
                item.setBackground(c, QBrush(QColor(63, 143, 90, 48)))
        self.variants.addTopLevelItem(item)
        button = QPushButton("Download")
        button.clicked.connect(lambda: self._download(result, offer))
        self.variants.setItemWidget(item, 3, button)
        self._buttons[offer.label] = button

    def _download(self, result: Any, offer: Any) -> None:
        self.downloads.enqueue(
            result.repo,
            offer.ref_quant,
            label=offer.label,
            revision=result.revision,
            size=offer.size,
        )
        if not self.ctx.offline:
            self.ctx.tell(
                f"{result.repo.split('/', 1)[-1]} {offer.label} is queued.",
                "info",
                "Show downloads",
                lambda: self.ctx.show_page.emit("downloads"),
            )

    def _refresh_buttons(self) -> None:
        if self._open is None:
            return
        for label, button in self._buttons.items():
            entry = self.downloads.find(self._open.repo, label)
            state = entry.state if entry is not None else None
            text, enabled = {
                "queued": ("Queued", False),
                "downloading": ("Downloading…", False),
                "paused": ("Resume", True),
                "failed": ("Retry", True),
                "done": ("Downloaded", False),
            }.get(state or "", ("Download", True))
            button.setText(text)
            button.setEnabled(enabled)
