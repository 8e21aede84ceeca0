"""How the house writes sizes and counts for people: one style in the CLI, the window, the API
and every error message ("98.4 MB", "1.2 GB", "135M")."""

from __future__ import annotations

UNKNOWN = "—"


def human_size(n: float) -> str:
    """A byte count in decimal units, as disks and downloads are sold: 512 bytes, 98 KB, 1.2 GB."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            if unit in ("bytes", "KB"):
                return f"{size:.0f} {unit}"
            return f"{size:.1f} {unit}".replace(".0 ", " ")
        size /= 1000
    raise AssertionError("unreachable")


def size_cell(n: float | None) -> str:
    """A size in a table or a label, where 0 or None means not known (a remote model)."""
    return human_size(n) if n else UNKNOWN


def human_count(n: int | None) -> str:
    """A parameter or token count: 135M, 1.7B, 32K; a dash when not known."""
    if not n:
        return UNKNOWN
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + unit
    return str(n)
