"""Fireside's faces: the Qt GUI (app.gui), the CLI (app.cli) and the HTTP API (app.server)."""

import sys
from pathlib import Path

__version__ = "0.1.0"

# packaging/fireside.spec writes this file into a frozen bundle: "bundle-gguf" or "bundle-full".
BUILD_MARKER = "fireside-build.txt"


def build_type() -> str:
    """How this copy was installed: ``pip``, or the bundle variant the freezer wrote."""
    if not getattr(sys, "frozen", False):
        return "pip"
    try:
        return (Path(getattr(sys, "_MEIPASS", "")) / BUILD_MARKER).read_text().strip()
    except OSError:
        return "bundle"
