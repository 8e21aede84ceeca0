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
