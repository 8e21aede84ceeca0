"""The main window: conversations on the left, the chat in the middle, the model on top.

Everything slow (loading a model, generating, importing, scanning) runs on a worker thread
(:mod:`app.gui.worker`); the model itself runs in an engine child process owned by one
:class:`runtime.ModelHost`, so a crash there ends one answer, never the window or the
history. The local API server (the Server menu) answers through the same host: the model the
window has loaded is the one the server uses, never loaded twice.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.history import Conversation, History, StoredMessage
from app.library_ops import Fit, describe_record, fit_of
from app.settings import DEFAULT_PRESET, Settings, preset_params
from models import BUNDLED_ID, Catalog, ModelRecord
from models.errors import FiresideError
from runtime import BackendOptions, GenerationParams, HostRequest, ModelHost, ModelInfo

from . import theme
from .chatview import ChatView, MessageWidget
from .dialogs import ConversationSettingsDialog, ImportChoiceDialog, LibraryDialog
from .markdown import MarkdownRenderer
from .server_panel import ServerDialog, ServerSettingsDialog, parallel_setting, server_settings
from .worker import Worker, run_job

FLUSH_MS = 30  # streamed text reaches the screen at most this often (one frame or two)
METER_WARN = 0.8
METER_FULL = 0.97


class Composer(QPlainTextEdit):
    """The message box: Enter sends, Shift+Enter is a new line."""

    submitted = Signal()
    escape = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self.setAcceptDrops(False)
        self.setPlaceholderText("Message the model… (Enter sends, Shift+Enter adds a line)")
        self.setTabChangesFocus(True)
        self.setFixedHeight(76)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt API)
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escape.emit()
            return
        super().keyPressEvent(event)


class Banner(QFrame):
    """A line across the top of the chat: what happened, and what to do about it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        self.action = QPushButton()
        self.action.hide()
        layout.addWidget(self.action)
        close = QPushButton("✕")
        close.setFlat(True)
        close.setFixedWidth(28)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        layout.addWidget(close)
        self._callback: Any = None
        self.action.clicked.connect(self._act)
        self.hide()

    def show_message(
        self, text: str, kind: str = "warning", action: str | None = None, callback: Any = None
    ) -> None:
        self.setProperty("kind", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(sentence(text))
        self._callback = callback
        self.action.setVisible(bool(action))
        if action:
            self.action.setText(action)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def _act(self) -> None:
        callback = self._callback
        self.hide()
        if callback:
            callback()


@dataclass
class Generation:
    """The answer being streamed."""

    conversation_id: int
    widget: MessageWidget | None
    model_id: str | None
    worker: Worker | None = None
    request: HostRequest | None = None  # cancel() stops the answer
    pending: list[str] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    last: Any = None  # the last Chunk
    started: float = field(default_factory=time.perf_counter)


@dataclass
class Task:
    """Long library work shown in the top bar (loading a model, importing one)."""

    kind: str  # "load" | "import" | "scan"
    worker: Worker
    record: ModelRecord | None = None


class MainWindow(QMainWindow):
    """Fireside's window. ``host``/``catalog``/``history`` may be given (tests share them)."""

    answer_finished = Signal(str)  # finish reason (tests and scripts wait on it)
    model_ready = Signal(str)  # model id
    model_failed = Signal(str)  # message
    import_done = Signal(object)  # list of records, or an exception
    server_changed = Signal(str)  # the API's base URL once serving; "" once stopped or failed

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
        # The library opens on a worker after the window is shown (on a first start it
        # reads the bundled model's header, which takes a moment); None until then.
        self.catalog: Catalog | None = catalog if catalog or autoload else Catalog()
        self.history = history or History()
        self.settings = settings or Settings()
        # The window's model stays loaded until another is chosen (no idle unloading); the
        # server shares this host. ``backend_options`` only shape a host the window makes.
        if backend_options is None:
            backend_options = BackendOptions(n_parallel=parallel_setting(self.settings))
        self.host = host or ModelHost(idle_unload_s=None, options=backend_options)
        self._owns_host = host is None
        self.renderer = MarkdownRenderer(theme.DARK if self._dark() else theme.LIGHT)
        self.conversation: Conversation | None = None
        self._draft = self._new_chat_defaults()  # settings of a chat not yet saved
        self.generation: Generation | None = None
        self.load_task: Task | None = None  # loading a model
        self._latest_load: Task | None = None
        self.library_task: Task | None = None  # importing or scanning
        self.task: Task | None = None  # the one the top bar shows (the latest running)
        self.selected: ModelRecord | None = None
        self.ready_record: ModelRecord | None = None  # the model loaded for this window
        self._editing_position: int | None = None
        self._closing = False
        self._library: LibraryDialog | None = None
        self._fits: dict[str, Fit] = {}  # memory-fit verdicts, computed off the GUI thread
        self._fit_pending = False
        self.server: Any = None  # app.server.LocalServer while serving
        self._server_catalog: Catalog | None = None  # the server's own library connection
        self._server_job: Worker | None = None  # starting or stopping it
        self._server_starting = False
        self._server_made: dict[str, Any] = {}  # what a start job made (for a shutdown mid-start)
        self.server_dialog: ServerDialog | None = None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self._flush)

        self.setWindowTitle("Fireside")
        self.setWindowIcon(theme.app_icon())
        self.setAcceptDrops(True)
        self._build()
        self._build_menus()
        self._build_status_bar()
        self.refresh_models()
        self.refresh_conversations()
        self._restore_geometry()
        self._update_controls()
        QTimer.singleShot(0, self._read_offline_mode)  # after the window is shown
        if autoload:
            QTimer.singleShot(0, self._after_show)

    # -- construction --------------------------------------------------------------------
    @property
    def ready_model(self) -> str | None:
        """The id of the model loaded for this window (None while none is ready)."""
        return self.ready_record.id if self.ready_record is not None else None

    def loaded_info(self) -> ModelInfo | None:
        """The ready model's ModelInfo while its engine runs; None after a crash."""
        record = self.ready_record
        return self.host.info(record) if record is not None else None

    def engine_pids(self) -> list[int]:
        """The engine child processes the host runs now (tests and screenshots kill them)."""
        return [s.pid for s in self.host.status() if s.pid]

    def _dark(self) -> bool:
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance()
        return bool(app is not None and app.palette().base().color().lightness() < 128)

    def _build(self) -> None:
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setChildrenCollapsible(False)
        self.setCentralWidget(splitter)

        # left: conversations
        side = QWidget()
        side.setObjectName("sidebar")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(10, 10, 10, 10)
        self.new_button = QPushButton("＋  New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_chat)
        side_layout.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(lambda _t: self.refresh_conversations())
        side_layout.addWidget(self.search)
        self.conversation_list = QListWidget()
        self.conversation_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.conversation_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.conversation_list.setUniformItemSizes(True)
        self.conversation_list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.conversation_list.customContextMenuRequested.connect(self._conversation_menu)
        self.conversation_list.itemClicked.connect(self._on_conversation_clicked)
        self.conversation_list.itemChanged.connect(self._on_conversation_renamed)
        side_layout.addWidget(self.conversation_list, 1)
        side.setMinimumWidth(200)
        splitter.addWidget(side)

        # middle: model bar, banner, chat, composer
        main = QWidget()
        layout = QVBoxLayout(main)
        layout.setContentsMargins(12, 10, 12, 10)
        top = QHBoxLayout()
        top.addWidget(QLabel("Model:"))
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(220)
        self.model_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model_combo.setMinimumContentsLength(38)
        self.model_combo.activated.connect(self._on_model_chosen)
        top.addWidget(self.model_combo)
        self.task_label = QLabel()
        self.task_bar = QProgressBar()
        self.task_bar.setFixedWidth(110)
        self.task_bar.setTextVisible(False)
        self.task_cancel = QPushButton("Cancel")
        self.task_cancel.clicked.connect(self.cancel_task)
        task_row = QHBoxLayout()
        for w in (self.task_label, self.task_bar, self.task_cancel):
            task_row.addWidget(w)
            w.hide()
        task_row.addStretch(1)
        self.status = QLabel()
        self.status.setObjectName("modelStatus")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(80)
        top.addWidget(self.status, 1)
        self.library_button = QPushButton("Library")
        self.library_button.setToolTip("All your models: details, rename, remove, scan")
        self.library_button.clicked.connect(self.open_library)
        self.settings_button = QPushButton("Chat settings")
        self.settings_button.setToolTip("System prompt and sampling for this conversation")
        self.settings_button.clicked.connect(self.open_settings)
        top.addWidget(self.library_button)
        top.addWidget(self.settings_button)
        layout.addLayout(top)
        layout.addLayout(task_row)

        self.banner = Banner()
        layout.addWidget(self.banner)
        self.chat = ChatView()
        layout.addWidget(self.chat, 1)

        meter_row = QHBoxLayout()
        self.meter = QProgressBar()
        self.meter.setObjectName("contextMeter")
        self.meter.setTextVisible(False)
        self.meter.setFixedWidth(160)
        self.meter.setRange(0, 1000)
        self.meter_label = QLabel()
        self.meter_label.setObjectName("messageStats")
        self.meter_label.setWordWrap(True)
        meter_row.addWidget(self.meter)
        meter_row.addWidget(self.meter_label, 1)
        layout.addLayout(meter_row)

        self.edit_banner = Banner()
        layout.addWidget(self.edit_banner)
        row = QHBoxLayout()
        self.composer = Composer()
        self.composer.submitted.connect(self.send)
        self.composer.escape.connect(self.stop)
        row.addWidget(self.composer, 1)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.send_button.clicked.connect(self._send_or_stop)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        layout.addLayout(row)
        splitter.addWidget(main)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([250, 850])

        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.stop)
        self._set_meter(0, 0)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_action = QAction("New chat", self, shortcut=QKeySequence.StandardKey.New)
        self.new_action.triggered.connect(self.new_chat)
        file_menu.addAction(self.new_action)
        add = QAction("Add a model…", self, shortcut=QKeySequence("Ctrl+O"))
        add.triggered.connect(self.choose_model_file)
        file_menu.addAction(add)
        file_menu.addSeparator()
        self.offline_action = QAction("Offline mode", self, checkable=True)
        self.offline_action.setToolTip(
            "Make no network request at all (no Hub search or download). "
            "Models run on this computer either way."
        )
        self.offline_action.setChecked(bool(self.settings.get("offline")))  # env: just below
        self.offline_action.triggered.connect(self.set_offline)
        file_menu.addAction(self.offline_action)
        file_menu.addSeparator()
        quit_action = QAction("Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        chat_menu = bar.addMenu("&Chat")
        for text, slot, key in (
            ("Stop the answer", self.stop, "Esc"),
            ("Regenerate the last answer", self.regenerate, "Ctrl+R"),
            ("Chat settings…", self.open_settings, "Ctrl+,"),
            ("Rename this chat", self.rename_current, "F2"),
            ("Delete this chat", self.confirm_delete_current, None),
        ):
            action = QAction(text, self)
            if key and key != "Esc":
                action.setShortcut(QKeySequence(key))
            action.triggered.connect(slot)
            chat_menu.addAction(action)

        model_menu = bar.addMenu("&Models")
        library = QAction("Library…", self, shortcut=QKeySequence("Ctrl+L"))
        library.triggered.connect(self.open_library)
        model_menu.addAction(library)
        scan = QAction("Scan for models", self)
        scan.triggered.connect(self.scan_models)
        model_menu.addAction(scan)
        reload_action = QAction("Load the model again", self)
        reload_action.triggered.connect(self.load_selected)
        model_menu.addAction(reload_action)

        # The local OpenAI-compatible API (app/server.py), sharing this window's model host.
        server_menu = bar.addMenu("&Server")
        self.server_action = QAction("Serve the local API", self, checkable=True)
        self.server_action.setToolTip(
            "Let editors, scripts and agents use your models over the OpenAI API"
        )
        self.server_action.triggered.connect(self.set_serving)
        server_menu.addAction(self.server_action)
        self.server_info_action = QAction("Address and snippet…", self)
        self.server_info_action.triggered.connect(self.show_server_dialog)
        self.server_info_action.setEnabled(False)
        server_menu.addAction(self.server_info_action)
        server_settings_action = QAction("Server settings…", self)
        server_settings_action.triggered.connect(self.open_server_settings)
        server_menu.addAction(server_settings_action)

    def _build_status_bar(self) -> None:
        """Shown only while there is something to say: the API's address, offline mode."""
        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.server_button = QPushButton()
        self.server_button.setObjectName("serverStatus")
        self.server_button.setFlat(True)
        self.server_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.server_button.setToolTip("The address, and a snippet to paste")
        self.server_button.clicked.connect(self.show_server_dialog)
        self.offline_label = QLabel("Offline mode")
        self.offline_label.setObjectName("offlineStatus")
        self.offline_label.setToolTip("Fireside makes no network request (File ▸ Offline mode)")
        bar.addPermanentWidget(self.server_button)
        bar.addPermanentWidget(self.offline_label)
        self._update_status_bar()

    def _update_status_bar(self) -> None:
        server = self.server
        if server is not None:
            self.server_button.setText(f"● Serving the API at {server.base_url}")
        elif self._server_job is not None:
            self.server_button.setText(
                "Starting the API…" if self._server_starting else "Stopping the API…"
            )
        serving = server is not None or self._server_job is not None
        offline = self.offline_action.isChecked()
        self.server_button.setVisible(serving)
        self.offline_label.setVisible(offline)
        self.statusBar().setVisible(serving or offline)

    # -- start-up and shutdown -----------------------------------------------------------
    def _after_show(self) -> None:
        if self.catalog is None:
            run_job(
                lambda _j: Catalog(),
                on_done=self._library_opened,
                on_error=lambda exc: self.banner.show_message(
                    f"The model library could not be opened: {exc}", "error"
                ),
                name="fireside-catalog",
            )
        else:
            self._library_opened(self.catalog)

    def _library_opened(self, catalog: Catalog) -> None:
        if self._closing:
            catalog.close()
            return
        self.catalog = catalog
        self.refresh_models()
        last = self.settings.get("last_conversation")
        if isinstance(last, int) and self.history.exists(last):
            self.open_conversation(last)
        self.load_selected()

    def _restore_geometry(self) -> None:
        data = self.settings.get("geometry")
        restored = False
        if isinstance(data, str):
            try:
                from PySide6.QtCore import QByteArray

                restored = self.restoreGeometry(QByteArray(base64.b64decode(data)))
            except (ValueError, TypeError):
                restored = False
        size = self.settings.get("window_size")
        if isinstance(size, list) and len(size) == 2 and not self.isMaximized():
            self.resize(QSize(max(400, int(size[0])), max(300, int(size[1]))))
        elif not restored:
            self.resize(QSize(1100, 760))

    def save_state(self) -> None:
        geometry = bytes(self.saveGeometry().data())
        values: dict[str, Any] = {
            "geometry": base64.b64encode(geometry).decode("ascii"),
            "window_size": [self.width(), self.height()],
            "last_conversation": self.conversation.id if self.conversation else None,
        }
        if self.selected is not None:
            values["model_id"] = self.selected.id
        self._save_settings(values, quiet=True)

    def _save_settings(self, values: dict[str, Any], *, quiet: bool = False) -> None:
        """Write only these keys (others, e.g. offline mode set by the CLI meanwhile, stay)."""
        try:
            self.settings.update(values)
        except OSError as exc:
            if not quiet:
                reason = exc.strerror or "the disk refused the write"
                self.banner.show_message(f"The settings could not be saved: {reason}.", "error")

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt API)
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save the state, stop the answer (keeping it), stop the engine."""
        if self._closing:
            return
        self._closing = True
        self.save_state()
        gen = self.generation
        if gen is not None and gen.worker is not None:
            if gen.request is not None:
                gen.request.cancel()
            gen.worker.wait(5)
            # The last chunks are still queued for the GUI thread; finish the answer now.
            self._finish_generation(gen.last, forced=True)
        for task in (self.load_task, self.library_task):
            if task is not None:
                self._cancel(task)
                task.worker.wait(5)
        self._stop_server_now()
        if self._owns_host:
            self.host.close()

    # -- the local API and offline mode -------------------------------------------------
    def set_serving(self, on: bool) -> None:
        """The Server menu's switch: start or stop the local API (off the GUI thread)."""
        if on:
            self.start_server()
        else:
            self.stop_server()

    def start_server(self) -> None:
        if self.server is not None or self._server_job is not None or self._closing:
            self._sync_server_action()
            return
        values = server_settings(self.settings)
        host = self.host
        made: dict[str, Any] = {}
        self._server_made = made

        def job(_j: Any) -> Any:
            from app.server import LocalServer, ServerConfig

            config = ServerConfig(**values, idle_unload_s=None)
            made["catalog"] = catalog = Catalog()  # its own connection, used on its thread
            made["server"] = server = LocalServer(config, host=host, catalog=catalog)
            try:
                server.start()
            except BaseException:
                catalog.close()
                made.clear()
                raise
            return made

        worker = Worker(job, name="fireside-server-start")
        self._server_job = worker
        self._server_starting = True
        worker.done.connect(self._on_server_started)
        worker.failed.connect(self._on_server_failed)
        worker.finished.connect(self._on_server_job_ended)
        self._sync_server_action()
        worker.start()

    def _on_server_started(self, made: dict[str, Any]) -> None:
        self._server_job = None
        self._server_starting = False
        if self._closing:
            return  # shutdown stops it (_stop_server_now)
        self._server_made = {}
        self.server, self._server_catalog = made["server"], made["catalog"]
        self._sync_server_action()
        self.server_changed.emit(self.server.base_url)
        self.show_server_dialog()

    def _on_server_failed(self, exc: BaseException) -> None:
        self._server_job = None
        self._server_starting = False
        self._server_made = {}
        self._sync_server_action()
        message = str(exc) if isinstance(exc, FiresideError) else f"{type(exc).__name__}: {exc}"
        self.banner.show_message(
            f"The local API could not start: {message}",
            "error",
            "Server settings",
            self.open_server_settings,
        )
        self.server_changed.emit("")

    def _on_server_job_ended(self) -> None:
        """``finished`` of a start job (after done/failed; a no-op unless both were lost)."""
        if self._server_job is not None and not self._server_job.running:
            self._server_job = None
            self._server_starting = False
            self._sync_server_action()

    def stop_server(self) -> None:
        server, catalog = self.server, self._server_catalog
        if server is None or self._server_job is not None:
            self._sync_server_action()
            return
        self.server = self._server_catalog = None
        if self.server_dialog is not None:
            self.server_dialog.close()

        worker = Worker(lambda _j: _stop_local_server(server, catalog), name="fireside-server-stop")
        self._server_job = worker
        worker.finished.connect(self._on_server_stopped)
        self._sync_server_action()
        worker.start()

    def _on_server_stopped(self) -> None:
        self._server_job = None
        self._sync_server_action()
        if not self._closing:
            self.server_changed.emit("")

    def _stop_server_now(self) -> None:
        """At shutdown: wait for a start or stop in flight, then stop what is serving."""
        job = self._server_job
        if job is not None:
            job.wait(20)
        made = self._server_made
        if made.get("server") is not None:
            _stop_local_server(made["server"], made["catalog"])
        if self.server is not None:
            _stop_local_server(self.server, self._server_catalog)
        self.server = self._server_catalog = None
        self._server_made = {}

    def _sync_server_action(self) -> None:
        busy = self._server_job is not None
        self.server_action.setEnabled(not busy)
        self.server_action.setChecked(self.server is not None or self._server_starting)
        self.server_info_action.setEnabled(self.server is not None)
        self._update_status_bar()

    def show_server_dialog(self) -> ServerDialog | None:
        server = self.server
        if server is None:
            return None
        model_id = self.ready_model or (self.selected.id if self.selected else None)
        if self.server_dialog is not None:
            self.server_dialog.close()
            self.server_dialog.deleteLater()
        dialog = ServerDialog(
            server.base_url, server.snippet(model_id), self, key=bool(server.config.api_key)
        )
        dialog.stop_requested.connect(self.stop_server)
        self.server_dialog = dialog
        dialog.show()
        return dialog

    def open_server_settings(self) -> ServerSettingsDialog:
        dialog = ServerSettingsDialog(self.settings, self, running=self.server is not None)
        dialog.saved.connect(self._save_server_settings)
        dialog.open()
        return dialog

    def _save_server_settings(self, values: dict[str, Any]) -> None:
        self._save_settings(values)
        # The next load uses it (a loaded model keeps its slots until then).
        self.host.options = replace(self.host.options, n_parallel=parallel_setting(self.settings))

    def _read_offline_mode(self) -> None:
        """The item shows offline mode as it holds (the setting, or $HF_HUB_OFFLINE); read
        on a worker, as importing models.hub would add to the start-up."""

        def job(_j: Any) -> bool:
            from models.hub import is_offline

            return is_offline()

        def show(on: bool) -> None:
            if not self._closing:
                self.offline_action.setChecked(on)
                self._update_status_bar()

        run_job(job, on_done=show, name="fireside-offline")

    def set_offline(self, on: bool) -> None:
        """File ▸ Offline mode: the same setting as ``fireside offline on|off``."""
        from models.hub import enforce_offline, is_offline, relax_offline

        self._save_settings({"offline": bool(on)})
        if on:
            enforce_offline()  # engines started from now on inherit it
        else:
            relax_offline()
            if is_offline():
                self.banner.show_message(
                    "HF_HUB_OFFLINE is set in the environment Fireside was started from, so "
                    "offline mode stays on until Fireside is started without it.",
                    "info",
                )
        self.offline_action.setChecked(is_offline())
        self._update_status_bar()

    # -- models --------------------------------------------------------------------------
    def refresh_models(self, select: str | None = None) -> None:
        if self.catalog is None:
            self.model_combo.clear()
            self.model_combo.addItem("Opening the library…", None)
            return
        records = self.catalog.list()
        missing = [r for r in records if r.id not in self._fits]
        if missing and not self._fit_pending:
            self._fit_pending = True
            run_job(
                lambda _j: {r.id: fit_of(r) for r in missing},
                on_done=self._on_fits,
                on_finished=lambda: setattr(self, "_fit_pending", False),
                name="fireside-fit",
            )
        wanted = select or (self.selected.id if self.selected else None)
        wanted = wanted or self.settings.get("model_id") or BUNDLED_ID
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        index = 0
        for i, rec in enumerate(records):
            fit = self._fits.get(rec.id, Fit("unknown", "estimating the memory it needs…"))
            text = describe_record(rec)
            if fit.verdict != "unknown":
                text += f" · {fit.verdict}"
            self.model_combo.addItem(text, rec.id)
            self.model_combo.setItemData(
                i, f"{rec.path}\n{fit.detail}", Qt.ItemDataRole.ToolTipRole
            )
            if rec.id == wanted:
                index = i
        self.model_combo.setCurrentIndex(index)
        self.model_combo.blockSignals(False)
        self.selected = records[index] if records else None

    def _on_fits(self, fits: dict[str, Fit]) -> None:
        self._fits.update(fits)
        if not self._closing and self.generation is None:
            self.refresh_models()
        if self._library is not None:
            self._library.fits = self._fits
            self._library.refresh()

    def _on_model_chosen(self, index: int) -> None:
        model_id = self.model_combo.itemData(index)
        if model_id and (self.ready_model != model_id or self.loaded_info() is None):
            self.select_model(model_id)

    def select_model(self, model_id: str) -> None:
        if self.catalog is None:
            return
        try:
            self.selected = self.catalog.get(model_id)
        except FiresideError as exc:
            self.banner.show_message(str(exc), "error")
            self.refresh_models()
            return
        self.refresh_models(select=model_id)
        self.load_selected()

    def load_selected(self) -> None:
        if self.selected is None:
            self.banner.show_message(
                "There is no model in the library yet. Drop a .gguf file or a model folder on "
                "this window to add one.",
                "info",
            )
            return
        self.load_model(self.selected)

    def load_model(self, record: ModelRecord) -> None:
        if self.generation is not None:
            self.banner.show_message("Stop the current answer before loading another model.")
            return
        if self.load_task is not None:
            self._cancel(self.load_task)
        host = self.host
        self.ready_record = None
        self.status.setText("")

        def job(j: Any) -> Any:
            # Waits its turn if the server is answering with this model; a cancel ends the
            # half-loaded engine child (a load cannot be stopped politely).
            return host.load(record, progress=j.progress, cancel=j.cancel)

        worker = Worker(job, name="fireside-load")  # started once connected
        task = Task("load", worker, record)
        self.load_task = self._latest_load = task
        worker.done.connect(lambda info: self._on_loaded(task, info))
        worker.failed.connect(lambda exc: self._on_load_failed(task, exc))
        worker.finished.connect(lambda: self._task_ended(task))
        self._show_task(task, f"Loading {record.name}…")
        worker.start()
        self._update_controls()

    def _on_loaded(self, task: Task, info: Any) -> None:
        self._task_ended(task)
        if task.worker.cancelled or self._closing:
            return
        self.ready_record = task.record
        self._save_settings({"model_id": self.ready_model}, quiet=True)
        at_once = f" each · {info.parallel} requests at once" if info.parallel > 1 else ""
        self.status.setText(f"Ready · {info.backend} · context {info.context_length:,}{at_once}")
        self.status.setToolTip(task.record.path if task.record else "")
        self._refresh_meter()
        self._update_controls()
        self.model_ready.emit(self.ready_model or "")
        self.composer.setFocus()

    def _on_load_failed(self, task: Task, exc: BaseException) -> None:
        self._task_ended(task)
        if self._closing or task is not self._latest_load:
            return
        name = task.record.name if task.record else "the model"
        if task.worker.cancelled:
            self.status.setText("Not loaded")
            self.banner.show_message(
                f"Loading {name} was cancelled.", "info", "Load it", self.load_selected
            )
            self.model_failed.emit("cancelled")
            return
        message = str(exc) if isinstance(exc, FiresideError) else f"{type(exc).__name__}: {exc}"
        self.status.setText("Not loaded")
        self.banner.show_message(
            f"Could not load {name}: {message}", "error", "Try again", self.load_selected
        )
        self.model_failed.emit(message)

    # -- long tasks in the top bar -------------------------------------------------------
    def _show_task(self, task: Task, text: str) -> None:
        self.task = task
        task.worker.progress.connect(lambda d, t: self._on_task_progress(task, d, t))
        self.task_label.setText(text)
        self.task_bar.setRange(0, 0)
        for w in (self.task_label, self.task_bar, self.task_cancel):
            w.show()

    def _on_task_progress(self, task: Task, done: int, total: int) -> None:
        if total > 0 and task is self.task:
            self.task_bar.setRange(0, 1000)
            self.task_bar.setValue(int(1000 * min(done, total) / total))

    def _task_ended(self, task: Task) -> None:
        """Idempotent: called by the task's result handler and again by ``finished``."""
        if self.load_task is task:
            self.load_task = None
        if self.library_task is task:
            self.library_task = None
        if self.task is task:
            self.task = self.load_task or self.library_task
            if self.task is None:
                for w in (self.task_label, self.task_bar, self.task_cancel):
                    w.hide()
        self._update_controls()

    def _cancel(self, task: Task) -> None:
        task.worker.cancel()  # a load's cancel ends its half-loaded engine (ModelHost.load)

    def cancel_task(self) -> None:
        """The top bar's Cancel: stop what it shows."""
        if self.task is not None:
            self._cancel(self.task)
            self.task_label.setText("Cancelling…")

    # -- conversations -------------------------------------------------------------------
    def _new_chat_defaults(self) -> dict[str, Any]:
        preset = self.settings.get("default_preset") or DEFAULT_PRESET
        params = self.settings.get("default_params") or preset_params(DEFAULT_PRESET)
        return {
            "system_prompt": self.settings.get("default_system_prompt") or "",
            "preset": preset,
            "params": params,
        }

    def refresh_conversations(self) -> None:
        current = self.conversation.id if self.conversation else None
        self.conversation_list.blockSignals(True)
        self.conversation_list.clear()
        for conv in self.history.list(self.search.text()):
            item = QListWidgetItem(conv.title)
            item.setData(Qt.ItemDataRole.UserRole, conv.id)
            item.setToolTip(f"{conv.title}\nlast used {conv.updated_at.replace('T', ' ')[:16]}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.conversation_list.addItem(item)
            if conv.id == current:
                item.setSelected(True)
                self.conversation_list.setCurrentItem(item)
        self.conversation_list.blockSignals(False)

    def _on_conversation_clicked(self, item: QListWidgetItem) -> None:
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        if self.conversation is None or conv_id != self.conversation.id:
            self.open_conversation(conv_id)

    def _on_conversation_renamed(self, item: QListWidgetItem) -> None:
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        try:
            conv = self.history.rename(conv_id, item.text())
        except FiresideError as exc:
            self.banner.show_message(str(exc), "error")
            return
        if self.conversation and self.conversation.id == conv_id:
            self.conversation = conv
        self.refresh_conversations()

    def _conversation_menu(self, pos: Any) -> None:
        item = self.conversation_list.itemAt(pos)
        if item is None:
            return
        conv_id = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.conversation_list.editItem(item))
        menu.addAction("Delete", lambda: self.confirm_delete(conv_id))
        menu.popup(self.conversation_list.viewport().mapToGlobal(pos))

    def rename_current(self) -> None:
        item = self.conversation_list.currentItem()
        if item is not None:
            self.conversation_list.editItem(item)

    def confirm_delete_current(self) -> None:
        if self.conversation is not None:
            self.confirm_delete(self.conversation.id)

    def confirm_delete(self, conv_id: int) -> None:
        title = self.history.get(conv_id).title
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete conversation",
            f"Delete “{title}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.buttonClicked.connect(
            lambda b: self.delete_conversation(conv_id) if b is delete else None
        )
        box.open()

    def delete_conversation(self, conv_id: int) -> None:
        if self.generation is not None and self.generation.conversation_id == conv_id:
            self.stop()
            if self.generation.worker is not None:
                self.generation.worker.wait(5)
            self._finish_generation(self.generation.last, forced=True)
        self.history.delete(conv_id)
        if self.conversation is not None and self.conversation.id == conv_id:
            self.new_chat()
        self.refresh_conversations()

    def new_chat(self) -> None:
        self._leave_conversation()
        self.conversation = None
        self._draft = self._new_chat_defaults()
        self.chat.clear_messages()
        self.conversation_list.clearSelection()
        self._set_meter(0, self._context_length())
        self._update_controls()
        self.composer.setFocus()

    def _leave_conversation(self) -> None:
        """Before showing another chat: an answer still streaming here is stopped and kept."""
        self._cancel_edit()
        gen = self.generation
        if gen is not None:
            if gen.request is not None:
                gen.request.cancel()
            gen.widget = None  # it finishes in the background and is saved to its chat

    def open_conversation(self, conv_id: int) -> None:
        try:
            conv = self.history.get(conv_id)
        except FiresideError as exc:
            self.banner.show_message(str(exc), "error")
            self.refresh_conversations()
            return
        self._leave_conversation()
        self.conversation = conv
        self.chat.clear_messages()
        stored = self.history.messages(conv_id)
        for message in stored:
            self._add_stored(message)
        self.chat.scroll_to_bottom()
        self.refresh_conversations()
        self._refresh_meter()
        self._update_controls()

    def _add_stored(self, message: StoredMessage) -> MessageWidget:
        widget = self._message_widget(message.role, message.position, message.model_id)
        widget.set_text(message.content)
        if message.role == "assistant":
            widget.set_stats(
                ttft_s=message.time_to_first_token_s,
                tokens_per_s=message.tokens_per_s,
                tokens=message.completion_tokens,
                finish_reason=message.finish_reason,
            )
            if message.error:
                widget.show_notice(message.error, error=True)
        return self.chat.add(widget)

    def _message_widget(self, role: str, position: int, model_id: str | None) -> MessageWidget:
        author = "You"
        if role == "assistant":
            author = self._model_name(model_id)
        widget = MessageWidget(role, position, self.renderer, author=author)
        widget.edit_requested.connect(self.edit_message)
        widget.regenerate_requested.connect(self.regenerate)
        widget.load_again_requested.connect(self.load_selected)
        return widget

    def _model_name(self, model_id: str | None) -> str:
        if not model_id or self.catalog is None:
            return model_id or "Assistant"
        try:
            return self.catalog.get(model_id).name
        except FiresideError:
            return model_id

    # -- settings ------------------------------------------------------------------------
    def _conversation_settings(self) -> dict[str, Any]:
        if self.conversation is None:
            return self._draft
        return {
            "system_prompt": self.conversation.system_prompt,
            "preset": self.conversation.preset,
            "params": self.conversation.params,
        }

    def open_settings(self) -> ConversationSettingsDialog:
        current = self._conversation_settings()
        dialog = ConversationSettingsDialog(
            current["system_prompt"], current["preset"], current["params"], self
        )
        dialog.saved.connect(self.apply_settings)
        dialog.open()
        return dialog

    def apply_settings(self, values: dict[str, Any]) -> None:
        try:
            GenerationParams.from_dict(values["params"])
        except FiresideError as exc:
            self.banner.show_message(str(exc), "error")
            return
        changes = {k: values[k] for k in ("system_prompt", "preset", "params")}
        if self.conversation is None:
            self._draft = changes
        else:
            self.conversation = self.history.update(self.conversation.id, **changes)
        if values.get("default"):
            self._save_settings(
                {
                    "default_system_prompt": changes["system_prompt"],
                    "default_preset": changes["preset"],
                    "default_params": changes["params"],
                }
            )

    # -- chatting ------------------------------------------------------------------------
    def _send_or_stop(self) -> None:
        if self.generation is not None:
            self.stop()
        else:
            self.send()

    def send(self, text: str | None = None) -> bool:
        """Send the composer's text (or ``text``); False when it cannot be sent now."""
        if text is None:
            text = self.composer.toPlainText()
        if not text.strip() or not self._can_send():
            return False
        if self.conversation is None:
            draft = self._draft
            self.conversation = self.history.create(
                model_id=self.selected.id if self.selected else None,
                system_prompt=draft["system_prompt"],
                preset=draft["preset"],
                params=draft["params"],
            )
        conv_id = self.conversation.id
        if self._editing_position is not None:
            position = self._editing_position
            self._cancel_edit()
            self.history.truncate(conv_id, position)
            self.chat.remove_from(position)
        message = self.history.add_message(conv_id, "user", text)
        self.conversation = self.history.get(conv_id)
        self.composer.clear()
        self.chat.add(self._message_widget("user", message.position, None)).set_text(text)
        self.chat.scroll_to_bottom()
        self.refresh_conversations()
        self._start_answer()
        return True

    def _can_send(self) -> bool:
        if self.generation is not None:
            return False
        # A model the server unloaded meanwhile (to make room for another) is loaded again
        # by the answer itself; only a crash or a failed load clears ready_record.
        if self.ready_record is None:
            if self.load_task is None:
                self.banner.show_message(
                    "No model is loaded.", "warning", "Load it", self.load_selected
                )
            return False
        return True

    def _history_messages(self) -> list[dict[str, str]]:
        assert self.conversation is not None
        messages: list[dict[str, str]] = []
        if self.conversation.system_prompt.strip():
            messages.append({"role": "system", "content": self.conversation.system_prompt})
        for m in self.history.messages(self.conversation.id):
            if m.role == "assistant" and not m.content.strip():
                continue
            messages.append({"role": m.role, "content": m.content})
        return messages

    def _start_answer(self) -> None:
        assert self.conversation is not None
        conv = self.conversation
        try:
            params = GenerationParams.from_dict(conv.params) if conv.params else GenerationParams()
        except FiresideError as exc:
            self.banner.show_message(f"This chat's settings are invalid: {exc}", "error")
            return
        messages = self._history_messages()
        position = len(self.history.messages(conv.id))
        widget = self._message_widget("assistant", position, self.ready_model)
        widget.body.begin_stream()
        self.chat.add(widget)
        self.chat.scroll_to_bottom()
        gen = Generation(conv.id, widget, self.ready_model)
        self.generation = gen
        assert self.ready_record is not None
        request = self.host.chat(self.ready_record, messages, params)
        gen.request = request

        def job(_j: Any) -> Any:
            return iter(request)  # chunks as they come; waits its turn behind the server

        worker = Worker(job, name="fireside-generate")
        gen.worker = worker
        worker.yielded.connect(lambda chunk: self._on_chunk(gen, chunk))
        worker.failed.connect(lambda exc: self._on_generation_failed(gen, exc))
        worker.finished.connect(lambda: self._on_generation_ended(gen))
        worker.start()
        self._update_controls()

    def _on_chunk(self, gen: Generation, chunk: Any) -> None:
        if gen is not self.generation:
            return
        gen.last = chunk
        if chunk.notice:
            gen.notices.append(chunk.notice)
            if gen.widget is not None:
                gen.widget.show_notice("; ".join(gen.notices))
        if chunk.text:
            gen.pending.append(chunk.text)
            gen.parts.append(chunk.text)
            if not self._flush_timer.isActive():
                self._flush_timer.start()
        if chunk.finish_reason is not None:
            self._finish_generation(chunk)

    def _flush(self) -> None:
        gen = self.generation
        if gen is None or not gen.pending:
            return
        text = "".join(gen.pending)
        gen.pending.clear()
        if gen.widget is not None:
            gen.widget.body.append(text)

    def _finish_generation(self, chunk: Any, *, forced: bool = False) -> None:
        gen = self.generation
        if gen is None:
            return
        self._flush()  # what is still waiting for the next frame
        self.generation = None
        self._flush_timer.stop()
        text = "".join(gen.parts)
        reason = chunk.finish_reason if chunk is not None else None
        if forced and reason is None:
            reason = "cancelled"
        error = chunk.error if chunk is not None else None
        timings = chunk.timings if chunk is not None else None
        widget = gen.widget
        if widget is not None:
            widget.body.end_stream(text)
        crashed = reason == "error" and self.loaded_info() is None
        if text.strip() or reason == "error":
            if text.strip():
                self.history.add_message(
                    gen.conversation_id,
                    "assistant",
                    text,
                    model_id=gen.model_id,
                    finish_reason=reason,
                    error=error,
                    prompt_tokens=chunk.prompt_tokens if chunk else None,
                    completion_tokens=chunk.completion_tokens if chunk else None,
                    time_to_first_token_s=timings.time_to_first_token_s if timings else None,
                    tokens_per_s=timings.generation_tokens_per_s if timings else None,
                    total_s=timings.total_s if timings else None,
                )
        elif widget is not None:
            # Stopped before the first word: nothing to keep.
            self.chat.remove_from(widget.position)
            widget = None
        if widget is not None:
            widget.set_stats(
                ttft_s=timings.time_to_first_token_s if timings else None,
                tokens_per_s=timings.generation_tokens_per_s if timings else None,
                tokens=chunk.completion_tokens if chunk else None,
                finish_reason=reason,
            )
            if error:
                widget.show_notice(error, error=True)
                widget.load_again_button.setVisible(crashed)
        if crashed:
            self.ready_record = None
            self.status.setText("Not loaded (the engine stopped)")
            self.banner.show_message(
                error or "The engine stopped.", "error", "Load the model again", self.load_selected
            )
        elif reason == "error" and error:
            self.banner.show_message(error, "error")
        if chunk is not None and self.loaded_info() is not None:
            self._set_meter(chunk.prompt_tokens + chunk.completion_tokens, self._context_length())
        if self.conversation and self.conversation.id == gen.conversation_id:
            self.conversation = self.history.get(gen.conversation_id)
        self.refresh_conversations()
        self._update_controls()
        self.answer_finished.emit(reason or "")

    def _on_generation_failed(self, gen: Generation, exc: BaseException) -> None:
        """The engine refused before answering (context overflow, no model, bad settings)."""
        if gen is not self.generation:
            return
        self.generation = None
        message = str(exc) if isinstance(exc, FiresideError) else f"{type(exc).__name__}: {exc}"
        if gen.widget is not None:
            gen.widget.body.end_stream()
            gen.widget.show_notice(message, error=True)
            gen.widget.load_again_button.setVisible(self.loaded_info() is None)
        if self.loaded_info() is None:
            self.ready_record = None
            self.status.setText("Not loaded")
        self.banner.show_message(message, "error")
        self._update_controls()
        self.answer_finished.emit("error")

    def _on_generation_ended(self, gen: Generation) -> None:
        if gen is self.generation:  # ended without a final chunk (should not happen)
            self._finish_generation(gen.last, forced=True)

    def stop(self) -> None:
        """Stop the answer being written (Esc); what was written so far is kept."""
        gen = self.generation
        if gen is not None and gen.request is not None:
            gen.request.cancel()

    def regenerate(self) -> None:
        """Answer the last question again (the last answer is replaced)."""
        if self.conversation is None or not self._can_send():
            return
        messages = self.history.messages(self.conversation.id)
        if not messages:
            return
        if messages[-1].role == "assistant":
            self.history.truncate(self.conversation.id, messages[-1].position)
            self.chat.remove_from(messages[-1].position)
        self._start_answer()

    def edit_message(self, position: int) -> None:
        """Put an earlier message back in the composer; sending replaces it and what followed."""
        if self.conversation is None or self.generation is not None:
            return
        for m in self.history.messages(self.conversation.id):
            if m.position == position and m.role == "user":
                self._editing_position = position
                self.composer.setPlainText(m.content)
                self.composer.setFocus()
                self.edit_banner.show_message(
                    "Editing an earlier message: sending replaces it and everything after it.",
                    "info",
                    "Cancel editing",
                    self._cancel_edit,
                )
                return

    def _cancel_edit(self) -> None:
        if self._editing_position is not None:
            self._editing_position = None
            self.composer.clear()
        self.edit_banner.hide()

    # -- context meter -------------------------------------------------------------------
    def _context_length(self) -> int:
        info = self.loaded_info()
        if info is not None:
            return info.context_length
        if self.selected is not None and self.selected.context_length:
            return min(self.selected.context_length, 8192)
        return 0

    def _refresh_meter(self) -> None:
        used = 0
        if self.conversation is not None:
            for m in reversed(self.history.messages(self.conversation.id)):
                if m.role == "assistant" and m.prompt_tokens is not None:
                    used = m.prompt_tokens + (m.completion_tokens or 0)
                    break
        self._set_meter(used, self._context_length())

    def _set_meter(self, used: int, total: int) -> None:
        self.context_used, self.context_total = used, total
        fraction = used / total if total else 0.0
        self.meter.setValue(int(1000 * min(1.0, fraction)))
        level = "full" if fraction >= METER_FULL else "warn" if fraction >= METER_WARN else "ok"
        self.meter.setProperty("level", level)
        self.meter.style().unpolish(self.meter)
        self.meter.style().polish(self.meter)
        if not total:
            self.meter_label.setText("")
            return
        text = f"Context: {used:,} / {total:,} tokens"
        if level == "full":
            text += " — full: the oldest messages are being left out. Start a new chat to keep everything."
        elif level == "warn":
            text += " — nearly full: the oldest messages will soon be left out."
        self.meter_label.setText(text)
        self.meter.setToolTip(text)

    # -- controls ------------------------------------------------------------------------
    def _update_controls(self) -> None:
        busy = self.generation is not None
        self.send_button.setText("Stop" if busy else "Send")
        self.send_button.setToolTip("Stop the answer (Esc)" if busy else "Send (Enter)")
        self.chat.set_busy(busy)
        self.model_combo.setEnabled(not busy)
        if self.ready_model is None and self.load_task is not None:
            placeholder = "Loading the model… you can type already."
        else:
            placeholder = "Message the model… (Enter sends, Shift+Enter adds a line)"
        if self.composer.placeholderText() != placeholder:
            self.composer.setPlaceholderText(placeholder)
            self.composer.viewport().update()  # Qt does not repaint a changed placeholder

    # -- adding models: drag-and-drop, file dialog, scan ---------------------------------
    @staticmethod
    def _dropped_paths(event: Any) -> list[str]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        if self._dropped_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        paths = self._dropped_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        if len(paths) > 1:
            self.banner.show_message(
                f"Drop one model at a time (a file, or a folder of models); using {Path(paths[0]).name}.",
                "info",
            )
        self.offer_import(paths[0])

    def choose_model_file(self) -> None:
        dialog = QFileDialog(
            self, "Add a model", str(Path.home()), "Models (*.gguf);;All files (*)"
        )
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.fileSelected.connect(self.offer_import)
        dialog.open()

    def offer_import(self, path: str) -> ImportChoiceDialog | None:
        if self.library_task is not None:
            self.banner.show_message("Another import or scan is running; wait for it or cancel it.")
            return None
        dialog = ImportChoiceDialog(path, self)
        dialog.chosen.connect(self.import_model)
        dialog.open()
        self.import_dialog = dialog
        return dialog

    def import_model(self, path: str, mode: str) -> None:
        from app.library_ops import import_model

        if self.library_task is not None:
            return
        catalog = self.catalog
        if catalog is None:
            return

        def job(j: Any) -> Any:
            return import_model(path, mode, catalog, progress=j.progress, cancel=j.cancel)

        worker = Worker(job, name="fireside-import")  # started once connected
        task = Task("import", worker)
        self.library_task = task
        worker.done.connect(lambda records: (self._task_ended(task), self._on_imported(records)))
        worker.failed.connect(
            lambda exc: (self._task_ended(task), self._on_import_failed(path, exc))
        )
        worker.finished.connect(lambda: self._task_ended(task))
        verb = "Copying" if mode == "copy" else "Adding"
        self._show_task(task, f"{verb} {Path(path).name}…")
        self.banner.hide()
        worker.start()

    def _on_imported(self, records: list[ModelRecord]) -> None:
        if not records:
            return
        first = records[0]
        more = f" and {len(records) - 1} more" if len(records) > 1 else ""
        self.banner.show_message(f"Added {first.name}{more} to your library.", "info")
        if self._library is not None:
            self._library.refresh()
        self.refresh_models(select=first.id)
        self.import_done.emit(records)
        QTimer.singleShot(0, lambda: self.select_model(first.id))

    def _on_import_failed(self, path: str, exc: BaseException) -> None:
        from models.errors import Cancelled

        if isinstance(exc, Cancelled):
            self.banner.show_message(
                f"Adding {Path(path).name} was cancelled; nothing was added.", "info"
            )
        elif isinstance(exc, FiresideError):
            self.banner.show_message(
                f"Could not add {Path(path).name}: {exc}. Nothing was added to your library.",
                "error",
            )
        else:
            self.banner.show_message(
                f"Could not add {Path(path).name}: {type(exc).__name__}: {exc}", "error"
            )
        self.import_done.emit(exc)

    def scan_models(self) -> None:
        from app.library_ops import scan_stores

        if self.library_task is not None:
            self.banner.show_message("Wait for the current import or scan to finish.")
            return
        catalog = self.catalog
        if catalog is None:
            return
        worker = Worker(lambda _j: scan_stores(catalog), name="fireside-scan")
        task = Task("scan", worker)
        self.library_task = task
        worker.done.connect(lambda message: (self._task_ended(task), self._on_scanned(message)))
        worker.failed.connect(
            lambda exc: self.banner.show_message(f"The scan failed: {exc}", "error")
        )
        worker.finished.connect(lambda: self._task_ended(task))
        self._show_task(task, "Scanning for models…")
        worker.start()

    def _on_scanned(self, message: str) -> None:
        self.banner.show_message(message, "info")
        self.refresh_models()
        if self._library is not None:
            self._library.refresh()
            self._library.show_message(message)

    # -- library -------------------------------------------------------------------------
    def open_library(self) -> LibraryDialog | None:
        if self.catalog is None:
            return None
        if self._library is None:
            dialog = LibraryDialog(self.catalog, self, self._fits)
            dialog.use_requested.connect(self.select_model)
            dialog.remove_requested.connect(self.confirm_remove_model)
            dialog.scan_requested.connect(self.scan_models)
            dialog.import_requested.connect(self.choose_model_file)
            dialog.renamed.connect(self.refresh_models)
            self._library = dialog
        self._library.refresh()
        if self.selected is not None:
            self._library.select(self.selected.id)
        self._library.show()
        self._library.raise_()
        return self._library

    def confirm_remove_model(self, model_id: str) -> None:
        if self.catalog is None:
            return
        try:
            record = self.catalog.get(model_id)
        except FiresideError as exc:
            self.banner.show_message(str(exc), "error")
            return
        what = (
            "Its files in the library will be deleted."
            if record.owned
            else f"Its files stay where they are ({record.path})."
        )
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Remove model",
            f"Remove {record.name} from your library? {what}",
            QMessageBox.StandardButton.Cancel,
            self._library or self,
        )
        remove = box.addButton("Remove", QMessageBox.ButtonRole.DestructiveRole)
        box.buttonClicked.connect(lambda b: self.remove_model(model_id) if b is remove else None)
        box.open()

    def remove_model(self, model_id: str) -> None:
        from app.library_ops import remove_model

        if self.catalog is None:
            return
        if model_id == self.ready_model and self.generation is not None:
            self.banner.show_message("Stop the answer before removing the model that writes it.")
            return
        try:
            message = remove_model(model_id, self.catalog)
        except FiresideError as exc:
            if self._library is not None:
                self._library.show_message(str(exc))
            self.banner.show_message(str(exc), "error")
            return
        if model_id == self.ready_model:
            host = self.host
            # Off the GUI thread: it waits for an answer the server may be writing with it.
            run_job(lambda _j: host.unload(model_id), name="fireside-unload")
            self.ready_record = None
            self.status.setText("Not loaded")
        if self.selected is not None and self.selected.id == model_id:
            self.selected = None
        self.refresh_models()
        if self._library is not None:
            self._library.refresh()
            self._library.show_message(message[0].upper() + message[1:] + ".")


def _stop_local_server(server: Any, catalog: Catalog | None) -> None:
    """Stop a LocalServer the window started (the shared host stays) and close its catalog."""
    server.stop()
    if catalog is not None:
        catalog.close()


def sentence(text: str) -> str:
    """Messages from the lower layers start in lower case (for "fireside: ..."); a banner
    starts a sentence."""
    return text[:1].upper() + text[1:] if text else text
