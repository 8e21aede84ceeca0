"""The conversation store's tables, and how an older database is brought up to date in place.

Version 1: conversations and messages. Version 2: each message keeps the thought a reasoning
model wrote before its answer (``messages.thought``, empty for every other message). An
upgrade adds what is missing in one transaction and touches no row, so a history made by an
earlier Fireside opens with every conversation as it was; a second process opening the same
file at the same moment finds the work done and does nothing.
"""

from __future__ import annotations

import sqlite3

from models.db import ensure_schema

OWNER = "history"
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    model_id TEXT,
    system_prompt TEXT NOT NULL DEFAULT '',
    preset TEXT,
    params TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    thought TEXT NOT NULL DEFAULT '',
    model_id TEXT,
    finish_reason TEXT,
    error TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    time_to_first_token_s REAL,
    tokens_per_s REAL,
    total_s REAL,
    created_at TEXT NOT NULL,
    UNIQUE (conversation_id, position)
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, position);
CREATE INDEX IF NOT EXISTS conversations_by_update ON conversations(updated_at)
"""

# What each version adds to the one before: (table, column, its definition).
COLUMNS_ADDED: dict[int, list[tuple[str, str, str]]] = {
    2: [("messages", "thought", "TEXT NOT NULL DEFAULT ''")],
}


def _version(conn: sqlite3.Connection) -> int | None:
    """The history's schema version in this file, or None for a new database."""
    try:
        row = conn.execute("SELECT version FROM schema_versions WHERE owner=?", (OWNER,)).fetchone()
    except sqlite3.OperationalError:  # no schema_versions table yet: a new file
        return None
    return int(row[0]) if row else None


def _upgrade(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")  # one writer: another process upgrading waits here
    try:
        version = _version(conn) or 0
        for step in sorted(v for v in COLUMNS_ADDED if v > version):
            for table, column, definition in COLUMNS_ADDED[step]:
                have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        if version < SCHEMA_VERSION:
            conn.execute(
                "UPDATE schema_versions SET version=? WHERE owner=?", (SCHEMA_VERSION, OWNER)
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def ensure_history_schema(conn: sqlite3.Connection) -> None:
    """Create the history's tables in a new database, or upgrade an older one's in place."""
    version = _version(conn)
    if version is not None and version < SCHEMA_VERSION:
        _upgrade(conn)
    ensure_schema(conn, OWNER, SCHEMA_VERSION, SCHEMA)  # a new file; else nothing to do
