"""The server's settings, checked when they are made: a public address needs an API key."""

from __future__ import annotations

from dataclasses import dataclass

from models.errors import FiresideError
from runtime.remote_server import is_loopback_host

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_IDLE_UNLOAD_S = 300.0
# How long a client may take: to send its whole request body, and, while an answer streams,
# between taking one piece and the next. Past it the body gets a 408 and the answer is stopped,
# so a slow or stuck client holds a connection at most, never a model.
DEFAULT_CLIENT_TIMEOUT_S = 60.0


class ServerConfigError(FiresideError):
    """The server settings are unsafe or impossible (e.g. a public address with no API key)."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # 0: any free port (the handle reports which)
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    idle_unload_s: float | None = DEFAULT_IDLE_UNLOAD_S  # None or 0: keep models loaded
    allowed_hosts: tuple[str, ...] = ()  # extra Host names to accept (e.g. behind a proxy)
    access_log: bool = False
    client_timeout_s: float = DEFAULT_CLIENT_TIMEOUT_S

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ServerConfigError(f"the port must be between 0 and 65535, got {self.port!r}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ServerConfigError("the API key must be at least 8 characters long")
        if not self.loopback and not self.api_key:
            raise ServerConfigError(
                f"serving on {self.host} would let other machines use your models: give an "
                f"API key (--api-key, or FIRESIDE_API_KEY) or bind to 127.0.0.1"
            )
        if not self.client_timeout_s > 0:
            raise ServerConfigError(
                f"the client timeout must be a positive number of seconds, got "
                f"{self.client_timeout_s!r}"
            )
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ServerConfigError(
                    f"{origin!r} is not a web origin; write it like http://localhost:3000"
                )
        object.__setattr__(self, "cors_origins", tuple(o.rstrip("/") for o in self.cors_origins))

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)
