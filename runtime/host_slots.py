"""What runtime.host keeps per model: its slot (engine, admitted and waiting requests, when
last used) and the status it reports."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from models.records import ModelRecord

from .engine import Engine
from .types import ModelInfo


@dataclass
class ModelSlot:
    """One model's place in the host: its engine, the requests it admitted and those waiting."""

    record: ModelRecord
    engine: Engine | None = None
    active: int = 0  # requests admitted and not yet finished
    exclusive: bool = False  # held alone: loading ahead, unloading, making room
    waiting: deque = field(default_factory=deque)
    last_used: float = field(default_factory=time.monotonic)

    @property
    def busy(self) -> bool:
        return self.active > 0 or self.exclusive

    @property
    def capacity(self) -> int:
        """Requests this model may serve at once: its engine's parallel slots once loaded
        (until then one, the request that loads it)."""
        engine = self.engine
        info = engine.info if engine is not None else None
        return max(1, info.parallel) if info is not None and self.loaded else 1

    def admits(self, exclusive: bool) -> bool:
        if self.exclusive:
            return False
        return self.active == 0 if exclusive else self.active < self.capacity

    @property
    def loaded(self) -> bool:
        """A model answered ``load`` and its child is still alive (a child that died while
        idle, e.g. killed for memory, counts as unloaded: the next request loads again)."""
        engine = self.engine
        return engine is not None and engine.info is not None and engine.pid is not None


@dataclass(frozen=True)
class LoadedModel:
    """What :meth:`ModelHost.status` says about one model."""

    model_id: str
    loaded: bool
    busy: bool
    queued: int
    idle_s: float
    info: ModelInfo | None
    pid: int | None = None  # the engine child's process id while it runs
    active: int = 0  # answers being generated right now
