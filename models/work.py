"""Long work's shared shapes, for every layer: how progress is reported and how a cancel is
asked for. (Long work: a copy, a download, a conversion, a quality check, a model load.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Progress = Callable[[int, int], None]  # progress(done, total): bytes, tensors or steps


class CancelFlag(Protocol):
    """What long work polls to stop early: a ``threading.Event``, a ``multiprocessing``
    event, a worker job's flag."""

    def is_set(self) -> bool: ...
