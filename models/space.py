"""Free disk space, checked before any long write (a copy, a download, a conversion), so a
full disk is named up front in plain words instead of failing half-way."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import DiskFull
from .sizes import human_size

MARGIN = 32 * 1024 * 1024  # left free beyond the estimate: the file system and its metadata


def free_bytes(folder: Path) -> int | None:
    """Free bytes on the disk holding ``folder`` (or its nearest existing parent); None if unknown."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def require_space(
    folder: Path, needed: int, *, doing: str, advice: str, error: type[DiskFull] = DiskFull
) -> None:
    """Raise ``error`` with a plain sentence when ``folder``'s disk has less than ``needed``
    bytes (plus a margin) free; ``doing`` names the work ("the conversion"), ``advice`` what to
    do about it."""
    free = free_bytes(folder)
    if free is not None and needed + MARGIN > free:
        raise error(
            f"not enough free disk space in {folder}: {doing} needs about "
            f"{human_size(needed + MARGIN)}, and {human_size(free)} is free. {advice}"
        )
