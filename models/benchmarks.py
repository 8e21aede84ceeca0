"""Stored benchmark results (``fireside bench``): one per model and machine, in the library
database.

A result is the JSON the runtime's bench wrote (``runtime.bench.BenchResult.to_dict``); this
module only keeps it, keyed by the model's library id and a machine fingerprint (CPU model,
cores, engine versions: ``runtime.machine``), so a measurement is never applied to another
machine or another engine build. Reading never creates the database.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from . import paths
from .db import connect, ensure_schema
from .errors import LibraryError
from .records import now_iso

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_results (
    model_id TEXT NOT NULL,
    machine TEXT NOT NULL,
    machine_text TEXT NOT NULL,
    measured_at TEXT NOT NULL,
    result TEXT NOT NULL,
    PRIMARY KEY (model_id, machine)
)
"""


class BenchStore:
    """The ``bench_results`` table. Thread-safe; the table is added to an existing database
    on first open (the ``benchmarks`` schema owner, see models.db.ensure_schema)."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = Path(db_path) if db_path else paths.database_path()
        self._conn = connect(self.db_path)
        self._lock = threading.Lock()
        ensure_schema(self._conn, "benchmarks", SCHEMA_VERSION, SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> BenchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save(self, model_id: str, machine: str, machine_text: str, result: dict[str, Any]) -> str:
        """Keep ``result`` as the measurement of ``model_id`` here (replacing an older one)."""
        at = str(result.get("measured_at") or now_iso())
        with self._lock:
            self._conn.execute(
                "INSERT INTO bench_results(model_id, machine, machine_text, measured_at, result) "
                "VALUES(?, ?, ?, ?, ?) ON CONFLICT(model_id, machine) DO UPDATE SET "
                "machine_text=excluded.machine_text, measured_at=excluded.measured_at, "
                "result=excluded.result",
                (model_id, machine, machine_text, at, json.dumps(result, sort_keys=True)),
            )
        return at

    def get(self, model_id: str, machine: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT result FROM bench_results WHERE model_id=? AND machine=?",
                (model_id, machine),
            ).fetchone()
        return _parse(row[0]) if row else None

    def for_machine(self, machine: str) -> list[dict[str, Any]]:
        """Every result measured on ``machine``, newest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT result FROM bench_results WHERE machine=? ORDER BY measured_at DESC",
                (machine,),
            ).fetchall()
        return [r for r in (_parse(row[0]) for row in rows) if r is not None]

    def has(self, model_id: str) -> bool:
        """Whether ``model_id`` was measured on any machine (no fingerprint needed)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM bench_results WHERE model_id=? LIMIT 1", (model_id,)
            ).fetchone()
        return row is not None

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM bench_results WHERE model_id=?", (model_id,))


def _parse(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def ever_measured(model_id: str, db_path: Path | None = None) -> bool:
    """Whether any stored result names ``model_id``: a cheap look before this machine's
    fingerprint (which reads every engine's installed version) is worth computing."""
    path = Path(db_path) if db_path else paths.database_path()
    if not path.is_file():
        return False
    try:
        with BenchStore(path) as store:
            return store.has(model_id)
    except (sqlite3.Error, OSError, LibraryError):
        return False


def results_here(machine: str, db_path: Path | None = None) -> list[dict[str, Any]]:
    """Stored results for ``machine``; none when there is no library database yet (nothing
    is created to answer)."""
    path = Path(db_path) if db_path else paths.database_path()
    if not path.is_file():
        return []
    try:
        with BenchStore(path) as store:
            return store.for_machine(machine)
    except (sqlite3.Error, OSError, LibraryError):  # unreadable: as if nothing was measured
        return []
