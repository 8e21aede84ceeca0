"""The app's own small settings (window geometry, last conversation, chosen model) and the
named sampling presets. Qt-free; stored as JSON beside the database, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models import paths
from models.atomic import atomic_path

# Named sampling presets: GenerationParams fields that differ from the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "Balanced": {},
    "Precise": {"temperature": 0.2, "top_p": 0.9, "top_k": 20, "min_p": 0.05},
    "Creative": {"temperature": 1.0, "top_p": 0.98, "top_k": 100, "min_p": 0.02},
    "Deterministic": {
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 1,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
    },
}
DEFAULT_PRESET = "Balanced"


def preset_params(name: str) -> dict[str, Any]:
    """Full parameter dict for a preset (defaults filled in)."""
    from runtime import GenerationParams

    return GenerationParams().replace(**PRESETS.get(name, {})).to_dict()


class Settings:
    """A flat JSON dict; unknown or unreadable files fall back to defaults."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else paths.settings_path()
        self._data: dict[str, Any] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                self._data = data
        except (OSError, ValueError):
            pass

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self._data, indent=2, sort_keys=True), encoding="utf-8")
