"""The main window: a sidebar of pages (Chat, My models, Discover, Downloads, Convert, Server)
over one banner, with the menus and a status bar. It lays the pages out and wires them; each
page and controller owns its own state (see :mod:`app.gui.context`).

Everything slow runs on a worker thread (:mod:`app.gui.worker`); the model runs in an engine
child process owned by one :class:`runtime.ModelHost`, so a crash there ends one answer, never
the window or the history. The local API shares that host: the model the window has loaded is
the one the server uses, never loaded twice.
"""

from __future__ import annotations

import base64
from typing import Any

from PySide6.QtCore import QByteArray, QSize, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.history import History
from app.settings import Settings
from models import Catalog
from runtime import BackendOptions, ModelHost

from . import theme
from .banner import Banner
from .chat_page import ChatPage
from .context import AppContext
from .convert import ConvertController
from .convert_page import ConvertPage
from .discover_page import DiscoverPage
from .downloads import DownloadsController
from .downloads_page import DownloadsPage
from .drops import DropHandler
from .library_jobs import LibraryJobs
from .markdown import MarkdownRenderer
from .models_page import ModelsPage
from .offline import OfflineSwitch
from .server_controller import ServerController, parallel_setting, speculation_options
from .server_page import ServerPage
from .session import ModelSession
from .status_line import StatusLine
from .worker import run_job

NAV = (  # page name, label, shortcut
    ("chat", "Chat", "Ctrl+1"),
    ("models", "My models", "Ctrl+2"),
    ("discover", "Discover", "Ctrl+3"),
    ("downloads", "Downloads", "Ctrl+4"),
    ("convert", "Convert", "Ctrl+5"),
    ("server", "Server", "Ctrl+6"),
)


class MainWindow(QMainWindow):
    """Fireside's window. ``host``/``catalog``/``history`` may be given (tests share them)."""

    def __init__(
        self,
        *,
        catalog: Catalog | None = None,
        history: History | None = None,
        settings: Settings | None = None,
        host: ModelHost | None = None,
        autoload: bool = True,
        backend_options: BackendOptions | None = None,
    ) -> None:
        super().__init__()
        settings = settings or Settings()
        # The window's model stays loaded until another is chosen (no idle unloading); the
        # server shares this host. ``backend_options`` only shape a host the window makes.
        if backend_options is None:
            backend_options = BackendOptions(
                n_parallel=parallel_setting(settings), **speculation_options(settings)
            )
        self._owns_host = host is None
        self.ctx = ctx = AppContext(
            settings=settings,
            history=history or History(),
            host=host or ModelHost(idle_unload_s=None, options=backend_options),
            # The library opens on a worker after the window is shown (on a first start it
            # reads the bundled model's header, which takes a moment); None until then.
            catalog=catalog if catalog or autoload else Catalog(),
        )
        self._autoload = autoload
        self.renderer = MarkdownRenderer(theme.DARK if self._dark() else theme.LIGHT)
        self.session = ModelSession(ctx)
        self.jobs = LibraryJobs(ctx, self.session, self)
        self.server = ServerController(ctx)
        self.downloads = DownloadsController(ctx)
        self.converter = ConvertController(ctx)
        self.offline = OfflineSwitch(ctx, self)
        self.drops = DropHandler(ctx, self, self._dropped)

        self.setWindowTitle("Fireside")
        self.setWindowIcon(theme.app_icon())
        self._build()
        self._build_menus()
        self.status_line = StatusLine(
            ctx, self.server, self.statusBar(), lambda: self.show_page("server")
        )
        self.server_button = self.status_line.server_button
        self.offline_label = self.status_line.offline_label
        self._wire()
        self.session.refresh()
        self._restore_geometry()
        problem = settings.problem
        if problem:
            self.banner.show_message(
                problem + " (the old file is kept as settings.json.unreadable)."
            )
        if autoload:
            QTimer.singleShot(0, self._after_show)

    # -- construction --------------------------------------------------------------------
    def _dark(self) -> bool:
        app = QApplication.instance()
        return bool(app is not None and app.palette().base().color().lightness() < 128)

    def _build(self) -> None:
        ctx = self.ctx
        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.nav = QListWidget()
        self.nav.setObjectName("nav")
        self.nav.setFixedWidth(168)
        self.nav.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        row.addWidget(self.nav)
        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        self.banner = Banner()
        banner_row = QHBoxLayout()
        banner_row.setContentsMargins(12, 8, 12, 0)
        banner_row.addWidget(self.banner)
        column.addLayout(banner_row)
        self.stack = QStackedWidget()
        column.addWidget(self.stack, 1)
        row.addLayout(column, 1)
        self.setCentralWidget(central)

        self.chat_page = ChatPage(ctx, self.session, self.renderer)
        self.models_page = ModelsPage(ctx, self.session, self.jobs)
        self.discover_page = DiscoverPage(ctx, self.downloads)
        self.downloads_page = DownloadsPage(ctx, self.downloads)
        self.convert_page = ConvertPage(ctx, self.converter)
        self.server_page = ServerPage(ctx, self.server, self.session)
        self.pages: dict[str, QWidget] = {
            "chat": self.chat_page,
            "models": self.models_page,
            "discover": self.discover_page,
            "downloads": self.downloads_page,
            "convert": self.convert_page,
            "server": self.server_page,
        }
        for name, label, key in NAV:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(f"{label} ({key})")
            self.nav.addItem(item)
            self.stack.addWidget(self.pages[name])
            QShortcut(QKeySequence(key), self, activated=lambda n=name: self.show_page(n))
        self.nav.currentRowChanged.connect(self._nav_changed)
        self.nav.setCurrentRow(0)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.chat_page.stop)

    def _build_menus(self) -> None:
        chat = self.chat_page
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_action = QAction("New chat", self, shortcut=QKeySequence.StandardKey.New)
        self.new_action.triggered.connect(lambda: (self.show_page("chat"), chat.new_chat()))
        file_menu.addAction(self.new_action)
        add = QAction("Add a model…", self, shortcut=QKeySequence("Ctrl+O"))
        add.triggered.connect(self.jobs.choose_file)
        file_menu.addAction(add)
        file_menu.addSeparator()
        file_menu.addAction(self.offline.action)
        file_menu.addSeparator()
        quit_action = QAction("Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        chat_menu = bar.addMenu("&Chat")
        for text, slot, key in (
            ("Stop the answer", chat.stop, None),
            ("Regenerate the last answer", chat.regenerate, "Ctrl+R"),
            ("Chat settings…", chat.open_settings, "Ctrl+,"),
            ("Rename this chat", chat.conversations.rename_current, "F2"),
            ("Delete this chat", chat.confirm_delete_current, None),
        ):
            action = QAction(text, self)
            if key:
                action.setShortcut(QKeySequence(key))
            action.triggered.connect(slot)
            chat_menu.addAction(action)

        model_menu = bar.addMenu("&Models")
        library = QAction("My models", self, shortcut=QKeySequence("Ctrl+L"))
        library.triggered.connect(lambda: self.show_page("models"))
        model_menu.addAction(library)
        scan = QAction("Scan for models", self)
        scan.triggered.connect(self.jobs.scan)
        model_menu.addAction(scan)
        reload_action = QAction("Load the model again", self)
        reload_action.triggered.connect(self.session.load_selected)
        model_menu.addAction(reload_action)

        server_menu = bar.addMenu("&Server")
        self.server_action = QAction("Serve the local API", self, checkable=True)
        self.server_action.setToolTip(
            "Let editors, scripts and agents use your models over the OpenAI API"
        )
        self.server_action.triggered.connect(self.server.set_serving)
        server_menu.addAction(self.server_action)
        page = QAction("Address, snippet and settings", self)
        page.triggered.connect(lambda: self.show_page("server"))
        server_menu.addAction(page)

    def _wire(self) -> None:
        ctx = self.ctx
        ctx.notify.connect(lambda text, kind: self.banner.show_message(text, kind))
        ctx.ask.connect(self.banner.show_message)
        ctx.show_page.connect(self.show_page)
        ctx.use_model.connect(self._use_model)
        ctx.convert.connect(
            lambda ref: (self.show_page("convert"), self.convert_page.select_source(ref))
        )
        ctx.library_changed.connect(self._library_changed)
        session = self.session
        session.load_failed.connect(self._load_failed)
        session.ready.connect(lambda _r, _i: self.chat_page.composer.setFocus())
        self.server.state_changed.connect(self._sync_server_action)
        self.server.failed.connect(
            lambda text: self.banner.show_message(
                text, "error", "Server settings", lambda: self.show_page("server")
            )
        )
        self.server.changed.connect(lambda url: url and self.show_page("server"))
        self.downloads.active_count_changed.connect(self._downloads_badge)

    # -- pages ---------------------------------------------------------------------------
    def show_page(self, name: str) -> None:
        for row in range(self.nav.count()):
            if self.nav.item(row).data(Qt.ItemDataRole.UserRole) == name:
                self.nav.setCurrentRow(row)
                return

    def current_page(self) -> str:
        item = self.nav.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else "chat"

    def _nav_changed(self, row: int) -> None:
        item = self.nav.item(row)
        if item is not None:
            self.stack.setCurrentWidget(self.pages[item.data(Qt.ItemDataRole.UserRole)])

    def _downloads_badge(self, count: int) -> None:
        for row in range(self.nav.count()):
            item = self.nav.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == "downloads":
                label = next(t for n, t, _k in NAV if n == "downloads")
                item.setText(f"{label}  ({count})" if count else label)

    def _use_model(self, model_id: str) -> None:
        self.show_page("chat")
        self.session.choose(model_id)

    def _library_changed(self, model_id: str) -> None:
        self.session.refresh()
        if model_id:
            self.models_page.select(model_id)

    def _load_failed(self, _record: Any, message: str, cancelled: bool) -> None:
        action = "Load it" if cancelled else "Try again"
        kind = "info" if cancelled else "error"
        self.banner.show_message(message, kind, action, self.session.load_selected)

    # -- start-up and shutdown -----------------------------------------------------------
    def _after_show(self) -> None:
        if self.ctx.catalog is None:
            run_job(
                lambda _j: Catalog(),
                on_done=self._library_opened,
                on_error=lambda exc: self.ctx.error("The model library could not be opened", exc),
                name="fireside-catalog",
            )
        else:
            self._library_opened(self.ctx.catalog)

    def _library_opened(self, catalog: Catalog) -> None:
        if self.ctx.closing:
            catalog.close()
            return
        self.ctx.set_catalog(catalog)
        self.session.refresh()
        last = self.ctx.settings.get("last_conversation")
        if isinstance(last, int) and self.ctx.history.exists(last):
            self.chat_page.open_conversation(last)
        self.session.load_selected()

    def _restore_geometry(self) -> None:
        settings = self.ctx.settings
        data = settings.get("geometry")
        restored = False
        if isinstance(data, str):
            try:
                restored = self.restoreGeometry(QByteArray(base64.b64decode(data)))
            except (ValueError, TypeError):
                restored = False
        size = settings.get("window_size")
        if isinstance(size, list) and len(size) == 2 and not self.isMaximized():
            self.resize(QSize(max(400, int(size[0])), max(300, int(size[1]))))
        elif not restored:
            self.resize(QSize(1100, 760))

    def save_state(self) -> None:
        conversation = self.chat_page.conversation
        values: dict[str, Any] = {
            "geometry": base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii"),
            "window_size": [self.width(), self.height()],
            "last_conversation": conversation.id if conversation else None,
        }
        if self.session.selected is not None:
            values["model_id"] = self.session.selected.id
        try:
            self.ctx.settings.update(values)
        except OSError:
            pass  # closing: nothing to tell; the geometry is the only loss

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)

    @property
    def closing(self) -> bool:
        return self.ctx.closing

    def shutdown(self) -> None:
        """Save the state, stop the answer (keeping it), stop the engine."""
        if self.ctx.closing:
            return
        self.ctx.closing = True
        self.save_state()
        self.chat_page.finish_now()
        self.session.wait_for_load(5)
        self.jobs.wait(5)
        for page in self.pages.values():
            stop = getattr(page, "shutdown", None)
            if stop is not None:
                stop()
        self.downloads.shutdown()
        self.server.shutdown()
        if self._owns_host:
            self.ctx.host.close()

    def engine_pids(self) -> list[int]:
        """The engine child processes the host runs now (tests and screenshots kill them)."""
        return [s.pid for s in self.ctx.host.status() if s.pid]

    # -- the local API ---------------------------------------------------------------------
    def _sync_server_action(self) -> None:
        self.server_action.setEnabled(not self.server.busy)
        self.server_action.setChecked(self.server.server is not None or self.server.starting)

    def _dropped(self, path: str) -> None:
        take = getattr(self.stack.currentWidget(), "drop_path", None)
        if take is None or not take(path):
            self.jobs.offer_import(path)
