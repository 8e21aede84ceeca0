"""What the window's pages share: the library, the history, the settings, the model host,
and the signals by which one page tells the others something changed.

A page takes an :class:`AppContext` and nothing else of the window's; it never reaches into
another page. The window owns the context and routes its signals (a finished download or
conversion asks the library to refresh and select the new model; "Chat with it" loads the
model and shows the chat).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from app.history import History
from app.settings import Settings
from models import Catalog
from models.errors import describe
from runtime import ModelHost

PAGES = ("chat", "models", "discover", "downloads", "convert", "server")


class AppContext(QObject):
    """Shared state of one window; ``catalog`` is None until the library has opened."""

    catalog_ready = Signal(object)  # the Catalog, once opened on a worker
    library_changed = Signal(str)  # a model id to select ("" for none) after the library changed
    offline_changed = Signal(bool)
    use_model = Signal(str)  # load this model for chat and show the chat
    show_page = Signal(str)  # one of PAGES
    convert = Signal(str)  # a model id or folder: show the Convert page with it as the source
    notify = Signal(str, str)  # text, kind ("info", "warning", "error"): the window's banner
    ask = Signal(str, str, str, object)  # text, kind, action label, callback: a banner button

    def __init__(
        self,
        *,
        settings: Settings,
        history: History,
        host: ModelHost,
        catalog: Catalog | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.history = history
        self.host = host
        self.catalog: Catalog | None = catalog
        self.offline = bool(settings.get("offline"))
        self.closing = False

    def set_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.catalog_ready.emit(catalog)

    def set_offline(self, on: bool) -> None:
        if on != self.offline:
            self.offline = on
            self.offline_changed.emit(on)

    def tell(
        self, text: str, kind: str = "info", action: str | None = None, callback: Any = None
    ) -> None:
        """Put ``text`` on the window's banner, with a button when ``action`` is given."""
        if action:
            self.ask.emit(text, kind, action, callback)
        else:
            self.notify.emit(text, kind)

    def error(self, doing: str, exc: BaseException) -> None:
        """Tell the user that ``doing`` ("Could not download X") failed, in plain words."""
        self.notify.emit(f"{doing}: {describe(exc)}", "error")

    def save_settings(self, values: dict[str, Any]) -> bool:
        """Write these keys only (others, set meanwhile by the CLI, stay); False, with the
        reason on the banner, when the disk refuses."""
        try:
            self.settings.update(values)
        except OSError as exc:
            self.error("The settings could not be saved", exc)
            return False
        return True
