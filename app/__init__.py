"""Fireside's faces: the Qt GUI (app.gui), the CLI (app.cli) and the HTTP API (app.server)."""

__version__ = "0.1.0"
