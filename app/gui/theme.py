"""Light and dark looks that follow the system's colour scheme."""

from __future__ import annotations

from importlib import resources

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from .markdown import DARK, LIGHT, Palette


def _dark_palette() -> QPalette:
    p = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#202126",
        QPalette.ColorRole.WindowText: "#e6e6ea",
        QPalette.ColorRole.Base: "#18191d",
        QPalette.ColorRole.AlternateBase: "#26272d",
        QPalette.ColorRole.ToolTipBase: "#2e2f36",
        QPalette.ColorRole.ToolTipText: "#e6e6ea",
        QPalette.ColorRole.PlaceholderText: "#8d8f99",
        QPalette.ColorRole.Text: "#e6e6ea",
        QPalette.ColorRole.Button: "#2b2c33",
        QPalette.ColorRole.ButtonText: "#e6e6ea",
        QPalette.ColorRole.BrightText: "#ff6b5b",
        QPalette.ColorRole.Highlight: "#b5562a",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#f0a35e",
        QPalette.ColorRole.Mid: "#3a3b44",
        QPalette.ColorRole.Midlight: "#32333b",
        QPalette.ColorRole.Dark: "#141417",
    }
    for role, value in colors.items():
        p.setColor(role, QColor(value))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.ButtonText,
        QPalette.ColorRole.WindowText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6d6f78"))
    return p


def _light_palette() -> QPalette:
    p = QApplication.style().standardPalette()
    p.setColor(QPalette.ColorRole.Highlight, QColor("#c8602e"))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    p.setColor(QPalette.ColorRole.Link, QColor("#b4461a"))
    p.setColor(QPalette.ColorRole.AlternateBase, QColor("#f4f2ef"))
    p.setColor(QPalette.ColorRole.Midlight, QColor("#e4e1dc"))
    return p


def system_is_dark(app: QApplication) -> bool:
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark


def style_sheet() -> str:
    return resources.files("assets").joinpath("fireside.qss").read_text(encoding="utf-8")


def app_icon() -> QIcon:
    with resources.as_file(resources.files("assets").joinpath("fireside.svg")) as path:
        return QIcon(str(path))


def apply(app: QApplication, dark: bool | None = None) -> Palette:
    """Fusion with a light or dark palette (the system's choice unless ``dark`` is given)."""
    app.setStyle("Fusion")
    if dark is None:
        dark = system_is_dark(app)
    app.setPalette(_dark_palette() if dark else _light_palette())
    app.setStyleSheet(style_sheet())
    return DARK if dark else LIGHT
