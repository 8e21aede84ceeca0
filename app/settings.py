"""The app's own small settings (window geometry, last conversation, chosen model) and the
named sampling presets. Qt-free; the file itself is owned by :mod:`models.settings`."""

from __future__ import annotations

from typing import Any

from models.settings import Settings

__all__ = ["DEFAULT_PRESET", "PRESETS", "Settings", "preset_params"]

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
