"""The server as a handle: started on a background thread (the window's switch) or served
in the foreground until a signal (``fireside serve``)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .app import create_app
from .config import ServerConfig, ServerConfigError


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


class LocalServer:
    """The server on a background thread (the window's switch) or in the foreground (CLI).

        server = LocalServer(ServerConfig(port=0))
        base_url = server.start()        # "http://127.0.0.1:PORT/v1", once it accepts requests
        print(server.snippet())          # curl and Python examples, ready to paste
        server.stop()

    Pass ``host=`` to share a ModelHost with the window (the server then leaves it open);
    otherwise the server makes its own and closes it on stop.
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        host: Any = None,
        catalog: Any = None,
    ) -> None:
        self.config = config or ServerConfig()
        self._own_host = host is None
        self._host = host
        self._catalog = catalog
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.port: int | None = None

    # -- addresses ----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._server is not None and self._server.started and not self._server.should_exit

    @property
    def base_url(self) -> str:
        port = self.port if self.port is not None else self.config.port
        return f"http://{_url_host(self.config.host)}:{port}/v1"

    def snippet(self, model_id: str | None = None, *, reveal_key: bool = True) -> str:
        """curl and Python (openai package) examples for this server, ready to paste.

        With ``reveal_key=False`` the key is written as ``$FIRESIDE_API_KEY`` (for logs).
        """
        if model_id is None:
            from models import BUNDLED_ID

            model_id = BUNDLED_ID
        key = self.config.api_key
        py_key = f'"{key or "fireside"}"'
        py_import = ""
        if key and not reveal_key:
            key, py_key = "$FIRESIDE_API_KEY", 'os.environ["FIRESIDE_API_KEY"]'
            py_import = "import os\n"
        auth = f' \\\n  -H "Authorization: Bearer {key}"' if key else ""
        body = json.dumps({"model": model_id, "messages": [{"role": "user", "content": "Hello!"}]})
        # Short lines: it is shown in the window's dialog and printed by ``fireside serve``.
        return (
            f"curl {self.base_url}/chat/completions \\\n"
            f'  -H "Content-Type: application/json"{auth} \\\n'
            f"  -d '{body}'\n\n"
            f"{py_import}from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{self.base_url}", api_key={py_key})\n'
            f"reply = client.chat.completions.create(\n"
            f'    model="{model_id}",\n'
            f'    messages=[{{"role": "user", "content": "Hello!"}}],\n'
            f")\n"
            f"print(reply.choices[0].message.content)\n"
        )

    # -- lifecycle ----------------------------------------------------------------------
    def _bind(self) -> socket.socket:
        cfg = self.config
        try:
            infos = socket.getaddrinfo(cfg.host, cfg.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ServerConfigError(f"cannot serve on {cfg.host!r}: {exc.strerror}") from None
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise ServerConfigError(
                f"cannot listen on {cfg.host}:{cfg.port} ({exc.strerror or exc}); is another "
                f"server using that port? pick another with --port"
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    def _prepare(self) -> Any:
        import uvicorn

        from models import Catalog
        from runtime import ModelHost

        if self._catalog is None:
            self._catalog = Catalog()
        if self._host is None:
            self._host = ModelHost(idle_unload_s=self.config.idle_unload_s)
        self._sock = self._bind()
        app = create_app(self.config, self._host, self._catalog)
        uv_config = uvicorn.Config(
            app,
            log_level="info" if self.config.access_log else "warning",
            access_log=self.config.access_log,
            lifespan="off",
            timeout_graceful_shutdown=3,
            server_header=False,
        )
        self._server = uvicorn.Server(uv_config)
        return self._server

    def start(self, timeout: float = 15.0) -> str:
        """Start on a background thread; returns the base URL once requests are accepted."""
        if self._thread is not None and self._thread.is_alive():
            return self.base_url
        server = self._prepare()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                server.run(sockets=[self._sock])
            except BaseException as exc:  # reported by start()
                errors.append(exc)

        self._thread = threading.Thread(target=run, name="fireside-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if errors or not self._thread.is_alive():
                self._cleanup()
                raise ServerConfigError(f"the server did not start: {errors[:1] or 'it exited'}")
            if time.monotonic() > deadline:
                self.stop()
                raise ServerConfigError("the server did not start in time")
            time.sleep(0.02)
        return self.base_url

    def serve_forever(self, ready: Callable[[LocalServer], None] | None = None) -> None:
        """Serve until Ctrl-C or SIGTERM (call from the main thread); then stop cleanly.

        ``ready(self)`` is called once the server accepts requests.
        """
        import signal

        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self.start()
            if ready is not None:
                ready(self)
            while not stop.wait(0.25):
                if self._thread is None or not self._thread.is_alive():
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests, cancel running answers, and wait for the thread."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if self._host is not None and self._own_host:
            self._host.close()  # running answers end now, so the shutdown is quick
        if thread is not None:
            thread.join(timeout)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._own_host and self._host is not None:
            self._host.close()
            self._host = None
        self._server = None
        self._thread = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
