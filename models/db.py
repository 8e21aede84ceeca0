"""The one SQLite database: WAL, synchronous=FULL, a schema version per owner."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .errors import LibraryError


def connect(path: Path) -> sqlite3.Connection:
    """Open the database with the settings every writer relies on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")
    except sqlite3.DatabaseError as exc:
        raise LibraryError(f"the library database {path} could not be opened: {exc}") from exc
    return conn


def ensure_schema(conn: sqlite3.Connection, owner: str, version: int, ddl: str) -> None:
    """Create ``owner``'s tables once (``CREATE ... IF NOT EXISTS`` statements in ``ddl``)."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions (owner TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    row = conn.execute("SELECT version FROM schema_versions WHERE owner=?", (owner,)).fetchone()
    if row and row[0] >= version:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in ddl.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_versions(owner, version) VALUES(?, ?) "
            "ON CONFLICT(owner) DO UPDATE SET version=excluded.version",
            (owner, version),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
