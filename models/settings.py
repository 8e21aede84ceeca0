"""The one owner of ``settings.json``: the window, the CLI and the server all go through it.

Every write is a read-modify-write of the keys it changes, under a lock file, so two faces
running at once never undo each other (``fireside offline on`` while the window is open
stays on). An unreadable file is kept aside as ``settings.json.unreadable`` before anything
is written over it, and :attr:`Settings.problem` says so in plain words.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import paths
from .atomic import write_bytes_atomic

_lock = threading.Lock()  # one writer at a time within this process


def _read(path: Path) -> tuple[dict[str, Any], str | None]:
    """The file's settings and, when it exists but cannot be used, why (in words)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except OSError as exc:
        return {}, f"the settings file {path} could not be read ({exc.strerror or exc})"
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return {}, f"the settings file {path} is damaged; defaults are used"
    return data, None


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An advisory lock beside the file (POSIX); within-process writers share ``_lock``."""
    with _lock:
        fh = None
        try:
            import fcntl

            path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass  # Windows, or a read-only folder: the write below reports what matters
        try:
            yield
        finally:
            if fh is not None:
                fh.close()


class Settings:
    """A flat JSON dict read once; :meth:`set` and :meth:`update` write through at once."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else paths.settings_path()
        self._data, self.problem = _read(self.path)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def reload(self) -> None:
        self._data, self.problem = _read(self.path)

    def set(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, values: dict[str, Any]) -> None:
        """Write ``values`` into the file, keeping every other key as the file has it now.
        Raises OSError (a full disk, a read-only folder); the change still holds in memory."""
        self._data.update(values)
        with _file_lock(self.path):
            current, problem = _read(self.path)
            if problem and self.path.exists():
                aside = self.path.with_name(self.path.name + ".unreadable")
                os.replace(self.path, aside)
            current.update(values)
            text = json.dumps(current, indent=2, sort_keys=True) + "\n"
            write_bytes_atomic(self.path, text.encode("utf-8"))
            self._data = {**current, **self._data}


def read_settings() -> dict[str, Any]:
    """The settings as the file has them now ({} when absent or unreadable)."""
    return _read(paths.settings_path())[0]
