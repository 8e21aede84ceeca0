"""The conversation store (Qt-free): real SQLite in a temp FIRESIDE_HOME."""

from __future__ import annotations

import sqlite3

import pytest

from app.history import DEFAULT_TITLE, History, HistoryError, title_from


@pytest.fixture
def history(fresh_home):
    h = History()
    yield h
    h.close()


def test_messages_are_committed_at_once_and_seen_by_another_connection(history):
    conv = history.create(
        model_id="m", system_prompt="Be brief.", preset="Precise", params={"temperature": 0.2}
    )
    history.add_message(conv.id, "user", "Why is the sky blue?")
    history.add_message(
        conv.id,
        "assistant",
        "Rayleigh scattering.",
        model_id="m",
        finish_reason="stop",
        prompt_tokens=20,
        completion_tokens=5,
        time_to_first_token_s=0.1,
        tokens_per_s=80.0,
        total_s=0.2,
    )
    other = sqlite3.connect(history.db_path)  # no commit pending anywhere: it is on disk
    rows = other.execute("SELECT role, content, finish_reason FROM messages ORDER BY position")
    assert rows.fetchall() == [
        ("user", "Why is the sky blue?", None),
        ("assistant", "Rayleigh scattering.", "stop"),
    ]
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    again = History(history.db_path)
    got = again.get(conv.id)
    assert got.title == "Why is the sky blue?"  # from the first message
    assert (got.system_prompt, got.preset, got.params) == (
        "Be brief.",
        "Precise",
        {"temperature": 0.2},
    )
    assert [m.position for m in again.messages(conv.id)] == [0, 1]
    assert again.messages(conv.id)[1].tokens_per_s == 80.0
    again.close()


def test_search_rename_truncate_delete(history):
    a = history.create()
    history.add_message(a.id, "user", "a question about foxes")
    b = history.create()
    history.add_message(b.id, "user", "100% sure_thing")
    assert [c.id for c in history.list()] == [b.id, a.id]  # newest first
    assert [c.id for c in history.list("FOX")] == [a.id]
    assert [c.id for c in history.list("100%")] == [b.id]  # LIKE wildcards are literal
    assert history.list("1_0") == []
    assert history.rename(a.id, "  Foxes  ").title == "Foxes"
    assert history.rename(a.id, "   ").title == DEFAULT_TITLE
    history.add_message(a.id, "assistant", "They are clever.")
    history.add_message(a.id, "user", "More?")
    history.truncate(a.id, 1)
    assert [m.content for m in history.messages(a.id)] == ["a question about foxes"]
    history.delete(a.id)
    assert not history.exists(a.id)
    assert history.messages(a.id) == []  # cascaded
    with pytest.raises(HistoryError, match="no longer exists"):
        history.get(a.id)


def test_bad_input_is_refused_clearly(history):
    conv = history.create()
    with pytest.raises(HistoryError, match="role"):
        history.add_message(conv.id, "system", "x")
    with pytest.raises(HistoryError, match="no longer exists"):
        history.add_message(conv.id + 99, "user", "x")
    with pytest.raises(HistoryError, match="cannot change"):
        history.update(conv.id, created_at="yesterday")
    assert history.messages(conv.id) == []


def test_title_from_first_line():
    assert title_from("  hello \n world ") == "hello world"
    assert title_from("") == DEFAULT_TITLE
    long = title_from("x" * 200)
    assert len(long) == 60 and long.endswith("…")


def test_an_answers_draft_grows_and_ends_in_place(history, fresh_home):
    conv = history.create()
    history.add_message(conv.id, "user", "Tell me a story.")
    draft = history.add_message(conv.id, "assistant", "Once", finish_reason="unfinished")
    history.update_message(draft.id, content="Once upon a time")
    other = History(fresh_home / "fireside.db")  # another connection sees each step committed
    try:
        assert other.message(draft.id).content == "Once upon a time"
        history.update_message(draft.id, content="Once upon a time, the end.", finish_reason="stop")
        (_, answer) = other.messages(conv.id)
        assert (answer.content, answer.finish_reason) == ("Once upon a time, the end.", "stop")
    finally:
        other.close()
    with pytest.raises(HistoryError, match="cannot change role"):
        history.update_message(draft.id, role="user")
    with pytest.raises(HistoryError, match="no longer exists"):
        history.update_message(draft.id + 100, content="x")


def test_an_answers_thought_is_kept_beside_it_and_can_grow_with_its_draft(history, fresh_home):
    conv = history.create()
    history.add_message(conv.id, "user", "What is two plus two?")
    draft = history.add_message(
        conv.id, "assistant", "", thought="Two and two", finish_reason="unfinished"
    )
    history.update_message(draft.id, thought="Two and two make four.", content="Four.")
    history.update_message(draft.id, finish_reason="stop")
    again = History(fresh_home / "fireside.db")  # what a restarted app reads
    try:
        question, answer = again.messages(conv.id)
        assert (answer.content, answer.thought) == ("Four.", "Two and two make four.")
        assert question.thought == ""  # every other message has none
    finally:
        again.close()


# The history's tables as Fireside made them before thoughts were kept (schema version 1),
# frozen here as the old app wrote them: the upgrade must open such a file intact.
SCHEMA_V1 = """
CREATE TABLE schema_versions (owner TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO schema_versions VALUES ('history', 1);
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, model_id TEXT,
    system_prompt TEXT NOT NULL DEFAULT '', preset TEXT, params TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL, model_id TEXT, finish_reason TEXT, error TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, time_to_first_token_s REAL,
    tokens_per_s REAL, total_s REAL, created_at TEXT NOT NULL,
    UNIQUE (conversation_id, position));
CREATE INDEX messages_by_conversation ON messages(conversation_id, position);
CREATE INDEX conversations_by_update ON conversations(updated_at);
INSERT INTO conversations VALUES
    (1, 'Foxes', 'm', 'Be brief.', 'Precise', '{"temperature": 0.2}', '2026-01-01', '2026-01-02');
INSERT INTO messages VALUES
    (1, 1, 0, 'user', 'Are foxes clever?', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     '2026-01-01'),
    (2, 1, 1, 'assistant', 'Yes.', 'm', 'stop', NULL, 12, 2, 0.1, 50.0, 0.2, '2026-01-01'),
    (3, 1, 2, 'user', 'Why?', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-01-02'),
    (4, 1, 3, 'assistant', 'They lear', 'm', 'unfinished', NULL, NULL, NULL, NULL, NULL,
     NULL, '2026-01-02');
"""


def test_a_history_made_before_thoughts_were_kept_is_upgraded_in_place(fresh_home):
    from app.history_schema import SCHEMA_VERSION

    db = fresh_home / "fireside.db"
    db.parent.mkdir(parents=True)
    old = sqlite3.connect(db)
    old.executescript(SCHEMA_V1)
    old.commit()
    before = old.execute("SELECT * FROM messages ORDER BY id").fetchall()
    old.close()

    history = History(db)
    try:
        assert history.check() == "ok"
        conv = history.get(1)
        assert (conv.title, conv.system_prompt, conv.params) == (
            "Foxes", "Be brief.", {"temperature": 0.2},
        )  # fmt: skip
        messages = history.messages(1)
        assert [(m.role, m.content, m.finish_reason) for m in messages] == [
            (r[3], r[4], r[6]) for r in before
        ]
        assert messages[1].tokens_per_s == 50.0 and all(m.thought == "" for m in messages)
        history.update_message(4, content="They learn.", thought="Foxes adapt.")
        history.add_message(1, "assistant", "More.", thought="And more.")
    finally:
        history.close()
    raw = sqlite3.connect(db)
    try:
        version = raw.execute("SELECT version FROM schema_versions WHERE owner='history'")
        assert version.fetchone()[0] == SCHEMA_VERSION
        # the old columns keep their values; the thoughts written after the upgrade are there
        after = raw.execute("SELECT * FROM messages WHERE id<=3 ORDER BY id").fetchall()
        assert [row[: len(before[0])] for row in after] == before[:3]
        thoughts = raw.execute("SELECT id, thought FROM messages ORDER BY id").fetchall()
        assert thoughts == [(1, ""), (2, ""), (3, ""), (4, "Foxes adapt."), (5, "And more.")]
    finally:
        raw.close()
    reopened = History(db)  # an upgraded file opens as it is (no second upgrade)
    try:
        assert [m.thought for m in reopened.messages(1)][-2:] == ["Foxes adapt.", "And more."]
    finally:
        reopened.close()


KILLED_WRITER = """
import sys
from pathlib import Path
from app.history import History
history = History(Path(sys.argv[1]))
conv = history.create()
history.add_message(conv.id, "user", "Think hard.")
draft = history.add_message(conv.id, "assistant", "", thought="t", finish_reason="unfinished")
print(conv.id, draft.id, flush=True)
thought = "t"
for i in range(10**9):  # an answer's draft growing, as the window saves it, until killed
    thought += f" step {i}"
    history.update_message(draft.id, thought=thought, content=f"answer {i}")
"""


def test_a_writer_killed_while_a_thought_grows_leaves_the_history_intact(fresh_home):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    db = fresh_home / "fireside.db"
    history = History(db)
    conv = history.create()
    history.add_message(conv.id, "user", "Earlier question")
    history.add_message(conv.id, "assistant", "Earlier answer", thought="Earlier thought")
    history.close()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db)],
        cwd=root, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        conv_id, draft_id = map(int, proc.stdout.readline().split())
        time.sleep(0.5)  # many committed updates of the draft
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()
    history = History(db)
    try:
        assert history.check() == "ok"
        earlier = history.messages(conv.id)
        assert [(m.content, m.thought) for m in earlier] == [
            ("Earlier question", ""),
            ("Earlier answer", "Earlier thought"),
        ]
        draft = history.message(draft_id)
        assert draft.conversation_id == conv_id and draft.finish_reason == "unfinished"
        # the last committed update whole: the thought and the answer from the same step
        step = draft.content.removeprefix("answer ")
        assert step.isdigit() and draft.thought.endswith(f" step {step}")
    finally:
        history.close()
