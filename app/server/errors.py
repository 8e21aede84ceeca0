"""How the API refuses: one error with the field it names, and the OpenAI error body."""

from __future__ import annotations

from models.errors import FiresideError


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


class BadRequest(FiresideError):
    """A request the API refuses; ``param`` names the field that is wrong."""

    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.status = status


def error_body(message: str, *, param: str | None = None, kind: str = "invalid_request_error"):
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}
