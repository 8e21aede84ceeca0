"""The conversation store: conversations and their messages in Fireside's SQLite database.

Qt-free, so the GUI, the CLI and the HTTP server can share it. Every finished message is
committed on its own (WAL, synchronous=FULL): a crash or a SIGKILL of the app loses at most
the answer that was still streaming. An answer that was cut short (stopped, engine crash) is
kept with its finish reason. A reasoning model's thought is kept with its answer (shown
again when the conversation is reopened); the tables and their upgrades are
:mod:`app.history_schema`'s.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import paths
from models.db import connect
from models.errors import FiresideError
from models.records import now_iso

from .history_schema import ensure_history_schema

DEFAULT_TITLE = "New chat"
TITLE_CHARS = 60


class HistoryError(FiresideError):
    """A conversation could not be found, read or written."""


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    position: int
    role: str
    content: str
    thought: str = ""  # a reasoning model's thinking before this answer (never sent back)
    model_id: str | None = None
    finish_reason: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    time_to_first_token_s: float | None = None
    tokens_per_s: float | None = None
    total_s: float | None = None
    created_at: str = ""


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    model_id: str | None = None
    system_prompt: str = ""
    preset: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    updated_at: str = ""


def _not_saved(exc: sqlite3.Error) -> str:
    """Why a write to the history failed, in words; what was saved before stays saved."""
    text = str(exc).lower()
    if "full" in text:
        why = "the disk is full. Free some space"
    elif "readonly" in text or "read-only" in text:
        why = "its file cannot be written (read-only). Check the data folder's permissions"
    elif "i/o" in text:
        why = "the disk could not be written (it may be full or failing). Free some space"
    else:
        why = f"the database refused ({text}). Check the disk"
    return f"the chat history could not be saved: {why}; everything saved before is kept"


def title_from(text: str) -> str:
    """A conversation title from its first message: the first line, shortened."""
    line = " ".join(text.strip().split())
    if not line:
        return DEFAULT_TITLE
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


class History:
    """The conversations. Thread-safe; every public write is one committed transaction."""

    def __init__(self, db_path: Path | None = None) -> None:
        self.db_path = Path(db_path) if db_path else paths.database_path()
        self._conn = connect(self.db_path)
        self._lock = threading.RLock()
        ensure_history_schema(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- helpers -------------------------------------------------------------------------
    def _tx(self, sql_and_args: list[tuple[str, tuple | dict]]) -> list[sqlite3.Cursor]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                cursors = [self._conn.execute(sql, args) for sql, args in sql_and_args]
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:  # a failed COMMIT has already rolled back
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise HistoryError(_not_saved(exc)) from exc
                raise
        return cursors

    @staticmethod
    def _conversation(row: sqlite3.Row) -> Conversation:
        data = dict(row)
        data["params"] = json.loads(data["params"] or "{}")
        return Conversation(**data)

    # -- conversations -------------------------------------------------------------------
    def create(
        self,
        *,
        title: str = DEFAULT_TITLE,
        model_id: str | None = None,
        system_prompt: str = "",
        preset: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Conversation:
        now = now_iso()
        (cur,) = self._tx(
            [
                (
                    "INSERT INTO conversations (title, model_id, system_prompt, preset, params, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        title,
                        model_id,
                        system_prompt,
                        preset,
                        json.dumps(params or {}, sort_keys=True),
                        now,
                        now,
                    ),
                )
            ]
        )
        return self.get(int(cur.lastrowid))

    def get(self, conversation_id: int) -> Conversation:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM conversations WHERE id=?", (conversation_id,)
            ).fetchone()
        if row is None:
            raise HistoryError(f"conversation {conversation_id} no longer exists")
        return self._conversation(row)

    def exists(self, conversation_id: int) -> bool:
        with self._lock:
            return (
                self._conn.execute(
                    "SELECT 1 FROM conversations WHERE id=?", (conversation_id,)
                ).fetchone()
                is not None
            )

    def list(self, search: str = "") -> list[Conversation]:
        """Newest first; ``search`` matches titles and message text (case-insensitive)."""
        with self._lock:
            if search.strip():
                pattern = (
                    "%"
                    + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                    + "%"
                )
                rows = self._conn.execute(
                    "SELECT * FROM conversations c WHERE c.title LIKE :p ESCAPE '\\' OR EXISTS "
                    "(SELECT 1 FROM messages m WHERE m.conversation_id=c.id "
                    "AND m.content LIKE :p ESCAPE '\\') ORDER BY c.updated_at DESC, c.id DESC",
                    {"p": pattern},
                ).fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM conversations ORDER BY updated_at DESC, id DESC"
                ).fetchall()
        return [self._conversation(r) for r in rows]

    def update(self, conversation_id: int, **changes: Any) -> Conversation:
        """Change ``title``, ``model_id``, ``system_prompt``, ``preset`` or ``params``."""
        allowed = {"title", "model_id", "system_prompt", "preset", "params"}
        unknown = set(changes) - allowed
        if unknown:
            raise HistoryError(f"cannot change {', '.join(sorted(unknown))} of a conversation")
        if "title" in changes:
            changes["title"] = " ".join(str(changes["title"]).split()) or DEFAULT_TITLE
        if "params" in changes:
            changes["params"] = json.dumps(changes["params"] or {}, sort_keys=True)
        if not changes:
            return self.get(conversation_id)
        changes["updated_at"] = now_iso()
        changes["id"] = conversation_id
        assignments = ", ".join(f"{k}=:{k}" for k in changes if k != "id")
        (cur,) = self._tx([(f"UPDATE conversations SET {assignments} WHERE id=:id", changes)])
        if cur.rowcount != 1:
            raise HistoryError(f"conversation {conversation_id} no longer exists")
        return self.get(conversation_id)

    def rename(self, conversation_id: int, title: str) -> Conversation:
        return self.update(conversation_id, title=title)

    def delete(self, conversation_id: int) -> None:
        self._tx([("DELETE FROM conversations WHERE id=?", (conversation_id,))])

    # -- messages ------------------------------------------------------------------------
    def messages(self, conversation_id: int) -> list[StoredMessage]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM messages WHERE conversation_id=? ORDER BY position",
                (conversation_id,),
            ).fetchall()
        return [StoredMessage(**dict(r)) for r in rows]

    def add_message(
        self,
        conversation_id: int,
        role: str,
        content: str,
        *,
        thought: str = "",
        model_id: str | None = None,
        finish_reason: str | None = None,
        error: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        time_to_first_token_s: float | None = None,
        tokens_per_s: float | None = None,
        total_s: float | None = None,
    ) -> StoredMessage:
        """Append a finished message and commit it (durably) before returning."""
        if role not in ("user", "assistant"):
            raise HistoryError(f"a message's role must be 'user' or 'assistant', not {role!r}")
        now = now_iso()
        with self._lock:
            conv = self.get(conversation_id)
            row = self._conn.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM messages WHERE conversation_id=?",
                (conversation_id,),
            ).fetchone()
            position = int(row[0])
            statements: list[tuple[str, tuple | dict]] = [
                (
                    "INSERT INTO messages (conversation_id, position, role, content, thought, "
                    "model_id, finish_reason, error, prompt_tokens, completion_tokens, "
                    "time_to_first_token_s, tokens_per_s, total_s, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        conversation_id,
                        position,
                        role,
                        content,
                        thought,
                        model_id,
                        finish_reason,
                        error,
                        prompt_tokens,
                        completion_tokens,
                        time_to_first_token_s,
                        tokens_per_s,
                        total_s,
                        now,
                    ),
                ),
                ("UPDATE conversations SET updated_at=? WHERE id=?", (now, conversation_id)),
            ]
            if role == "user" and position == 0 and conv.title == DEFAULT_TITLE:
                statements.append(
                    ("UPDATE conversations SET title=? WHERE id=?", (title_from(content), conv.id))
                )
            cursors = self._tx(statements)
            message_id = int(cursors[0].lastrowid)
        return self.message(message_id)

    def update_message(self, message_id: int, **changes: Any) -> None:
        """Change a stored message (an answer's draft, as it grows and when it ends)."""
        allowed = {
            "content", "thought", "finish_reason", "error", "prompt_tokens",
            "completion_tokens", "time_to_first_token_s", "tokens_per_s", "total_s",
        }  # fmt: skip
        unknown = set(changes) - allowed
        if unknown:
            raise HistoryError(f"cannot change {', '.join(sorted(unknown))} of a message")
        if not changes:
            return
        assignments = ", ".join(f"{k}=:{k}" for k in changes)
        (cur,) = self._tx(
            [(f"UPDATE messages SET {assignments} WHERE id=:id", {**changes, "id": message_id})]
        )
        if cur.rowcount != 1:
            raise HistoryError(f"message {message_id} no longer exists")

    def message(self, message_id: int) -> StoredMessage:
        with self._lock:
            row = self._conn.execute("SELECT * FROM messages WHERE id=?", (message_id,)).fetchone()
        if row is None:
            raise HistoryError(f"message {message_id} no longer exists")
        return StoredMessage(**dict(row))

    def truncate(self, conversation_id: int, position: int) -> None:
        """Delete the messages at ``position`` and after (regenerate, edit and resend)."""
        self._tx(
            [
                (
                    "DELETE FROM messages WHERE conversation_id=? AND position>=?",
                    (conversation_id, position),
                ),
                (
                    "UPDATE conversations SET updated_at=? WHERE id=?",
                    (now_iso(), conversation_id),
                ),
            ]
        )

    def check(self) -> str:
        """SQLite's own integrity check ("ok" when the file is sound)."""
        with self._lock:
            return str(self._conn.execute("PRAGMA integrity_check").fetchone()[0])
