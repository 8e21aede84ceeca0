"""Where Fireside keeps its data: one directory per user, relocatable with FIRESIDE_HOME."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "FIRESIDE_HOME"


def data_dir() -> Path:
    """The data directory (created on first use): ``$FIRESIDE_HOME`` or the platform's user dir."""
    override = os.environ.get(ENV_HOME)
    if override:
        path = Path(override).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_data_dir("Fireside", appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_path() -> Path:
    """The one SQLite file holding the model catalog and the conversations."""
    return data_dir() / "fireside.db"


def models_dir() -> Path:
    """Where models the library owns (copied, downloaded, converted) are stored."""
    path = data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def settings_path() -> Path:
    return data_dir() / "settings.json"


def canonical_path(path: str | os.PathLike[str]) -> Path:
    """Absolute, with symlinked folders resolved but the file's own name kept.

    A GGUF in the Hugging Face cache is a symlink to a blob named by its hash; llama.cpp finds
    the other parts of a split model by name, so the name must stay. A path that is itself a
    folder is resolved fully.
    """
    path = Path(os.path.abspath(Path(path).expanduser()))
    if path.is_dir():
        return path.resolve()
    return path.parent.resolve() / path.name
