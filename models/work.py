"""Long work's shared shapes, for every layer: how progress is reported and how a cancel is
asked for. (Long work: a copy, a download, a conversion, a quality check, a model load.)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

Progress = Callable[[int, int], None]  # progress(done, total): bytes, tensors or steps


class CancelFlag(Protocol):
    """What long work polls to stop early: a ``threading.Event``, a ``multiprocessing``
    event, a worker job's flag."""

    def is_set(self) -> bool: ...


class Meter:
    """Speed and time left for a ``progress(done, total)`` stream (for the CLI and the GUI)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: list[tuple[float, int]] = []

    def update(self, done: int, total: int) -> tuple[float, float | None]:
        """``(bytes_per_second, seconds_left or None)`` over the last few seconds."""
        now = time.monotonic()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.pop(0)
        t0, d0 = self._samples[0]
        speed = (done - d0) / (now - t0) if now > t0 and done >= d0 else 0.0
        left = (total - done) / speed if speed > 0 else None
        return speed, left
