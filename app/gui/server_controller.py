"""The local API the window serves: started and stopped off the GUI thread, sharing the
window's model host (the model the window has loaded is the one clients get)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from models import Catalog
from models.errors import describe

from .context import AppContext
from .worker import Worker

DEFAULT_PORT = 8080  # app.server.DEFAULT_PORT (not imported here: the window opens fast)
LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"


def parallel_setting(settings: Any) -> int | None:
    """Requests a loaded llama.cpp model serves at once (None: the engine's default)."""
    value = settings.get("parallel")
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 64
    return value if ok else None


def speculation_options(settings: Any) -> dict[str, Any]:
    """BackendOptions ``speculate`` and ``draft`` from the app's settings (llama.cpp models:
    prompt-lookup speculation, or a draft model's GGUF path)."""
    from runtime.speculative import MODES

    mode, draft = settings.get("speculate"), settings.get("draft_model")
    return {
        "speculate": mode if mode in MODES else None,
        "draft": draft if isinstance(draft, str) and draft else None,
    }


def server_settings(settings: Any) -> dict[str, Any]:
    """ServerConfig keyword arguments from the app's settings (loopback unless told)."""
    port = settings.get("server_port")
    return {
        "host": ANY_ADDRESS if settings.get("server_public") else LOOPBACK,
        "port": port if isinstance(port, int) and not isinstance(port, bool) else DEFAULT_PORT,
        "api_key": settings.get("server_api_key") or None,
    }


def _stop(server: Any, catalog: Catalog | None) -> None:
    """Stop a LocalServer (the shared host stays) and close its catalog."""
    server.stop()
    if catalog is not None:
        catalog.close()


class ServerController(QObject):
    changed = Signal(str)  # the API's base URL once serving; "" once stopped or failed
    state_changed = Signal()  # starting, serving, stopping or stopped
    failed = Signal(str)  # why it could not start, in words

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.server: Any = None  # app.server.LocalServer while serving
        self._catalog: Catalog | None = None  # the server's own library connection
        self._job: Worker | None = None
        self.starting = False
        self._made: dict[str, Any] = {}  # what a start job made (for a shutdown mid-start)

    @property
    def busy(self) -> bool:
        return self._job is not None

    @property
    def base_url(self) -> str | None:
        return self.server.base_url if self.server is not None else None

    def set_serving(self, on: bool) -> None:
        if on:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        if self.server is not None or self._job is not None or self.ctx.closing:
            self.state_changed.emit()
            return
        values = server_settings(self.ctx.settings)
        host = self.ctx.host
        made: dict[str, Any] = {}
        self._made = made

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
        self._job, self.starting = worker, True
        worker.done.connect(self._started)
        worker.failed.connect(self._failed)
        worker.finished.connect(self._job_ended)
        self.state_changed.emit()
        worker.start()

    def _started(self, made: dict[str, Any]) -> None:
        self._job, self.starting = None, False
        if self.ctx.closing:
            return  # shutdown stops it
        self._made = {}
        self.server, self._catalog = made["server"], made["catalog"]
        self.state_changed.emit()
        self.changed.emit(self.server.base_url)

    def _failed(self, exc: BaseException) -> None:
        self._job, self.starting, self._made = None, False, {}
        self.state_changed.emit()
        self.failed.emit(f"The local API could not start: {describe(exc)}")
        self.changed.emit("")

    def _job_ended(self) -> None:
        """``finished`` of a start job (after done/failed; a no-op unless both were lost)."""
        if self._job is not None and not self._job.running:
            self._job, self.starting = None, False
            self.state_changed.emit()

    def stop(self) -> None:
        server, catalog = self.server, self._catalog
        if server is None or self._job is not None:
            self.state_changed.emit()
            return
        self.server = self._catalog = None
        worker = Worker(lambda _j: _stop(server, catalog), name="fireside-server-stop")
        self._job = worker
        worker.finished.connect(self._stopped)
        self.state_changed.emit()
        worker.start()

    def _stopped(self) -> None:
        self._job = None
        self.state_changed.emit()
        if not self.ctx.closing:
            self.changed.emit("")

    def shutdown(self) -> None:
        """At exit: wait for a start or stop in flight, then stop what is serving."""
        if self._job is not None:
            self._job.wait(20)
        if self._made.get("server") is not None:
            _stop(self._made["server"], self._made["catalog"])
        if self.server is not None:
            _stop(self.server, self._catalog)
        self.server = self._catalog = None
        self._made = {}
