"""A full disk at the write sites: the file-size limit of a child process (RLIMIT_FSIZE, with
SIGXFSZ ignored so a write past it fails with EFBIG, as on a full disk) stops a copy-import and
each conversion type half-way, after the free-space estimate said yes. The user gets a plain
sentence, no partial file keeps a final name, and the library and its database are intact."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from model_files import llama_gguf
from tiny_models import build_tiny

LIMIT = 4 * 1024 * 1024  # bytes any one file of the child may reach


def fireside(
    home: Path, *args: str, limit: int | None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "FIRESIDE_HOME": str(home), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        preexec_fn=None if limit is None else limited,
    )


def library_state(home: Path) -> tuple[list[str], list[Path]]:
    db = next(home.rglob("*.sqlite*"), None) or next(home.rglob("*.db"))
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM models"))
    files = sorted(p for p in home.rglob("*") if p.is_file() and "models" in p.parts)
    return ids, files


def says_disk_is_full(out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 1, out.stdout + out.stderr
    text = out.stderr.lower()
    assert "space" in text or "disk" in text, out.stderr
    assert "Traceback" not in out.stderr and "Error:" not in out.stderr, out.stderr


def test_a_copy_import_that_fills_the_disk(tmp_path: Path) -> None:
    model = llama_gguf(tmp_path / "big.gguf", data_bytes=2 * LIMIT)
    home = tmp_path / "home"
    assert fireside(home, "models", "list", limit=None).returncode == 0
    before = library_state(home)
    out = fireside(home, "models", "import", str(model), "--copy", limit=LIMIT)
    says_disk_is_full(out)
    assert library_state(home) == before
    assert [p for p in tmp_path.rglob("*.gguf")] == [model]


@pytest.mark.parametrize("kind", ["gguf-f16", "gguf-q8_0", "gguf-q4_k_m", "mlx-bf16", "onnx-int8"])
def test_a_conversion_that_fills_the_disk(tmp_path: Path, hf_checkpoint: Path, kind: str) -> None:
    source = build_tiny("LlamaForCausalLM", tmp_path / "src", hf_checkpoint)
    home = tmp_path / "home"
    assert fireside(home, "models", "list", limit=None).returncode == 0
    before = library_state(home)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = fireside(
        home, "convert", str(source), "--to", kind, "-o", str(out_dir / "m"), "--no-report",
        limit=LIMIT,
    )  # fmt: skip
    says_disk_is_full(out)
    assert library_state(home) == before
    assert list(out_dir.iterdir()) == [], "a partial output was left behind"


def test_settings_and_the_database_on_a_full_disk(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert fireside(home, "offline", "off", limit=None).returncode == 0
    assert fireside(home, "models", "list", limit=None).returncode == 0
    before = library_state(home)
    settings = sorted(home.rglob("settings.json"))
    saved = [p.read_bytes() for p in settings]
    out = fireside(home, "offline", "on", limit=0)  # not one more byte can be written
    says_disk_is_full(out)
    assert library_state(home) == before
    assert [p.read_bytes() for p in settings] == saved, "the settings were damaged"
    assert not [p for p in home.rglob("*") if p.name.endswith((".tmp", ".part"))]
    again = fireside(home, "offline", "on", limit=None)
    assert again.returncode == 0, again.stderr


HISTORY_CHILD = """
import resource, signal, sys
from pathlib import Path
from app.history import History
from models.errors import describe
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]),) * 2)
history, saved = History(Path(sys.argv[1])), 0
try:
    for i in range(100_000):
        history.add_message(int(sys.argv[3]), ("user", "assistant")[i % 2], f"m{i} " + "x" * 4000)
        saved += 1
except Exception as exc:
    print(saved)
    print(describe(exc))
"""


def test_the_chat_history_growing_into_a_full_disk(tmp_path: Path) -> None:
    from app.history import History

    db = tmp_path / "home" / "fireside.db"
    history = History(db)
    conv = history.create()
    kept = [
        history.add_message(conv.id, "user", "hello"),
        history.add_message(conv.id, "assistant", "hi"),
    ]
    history.close()
    out = subprocess.run(
        [sys.executable, "-c", HISTORY_CHILD, str(db), str(512 * 1024), str(conv.id)],
        capture_output=True, text=True, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
    )  # fmt: skip
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout + out.stderr
    saved, words = int(lines[0]), lines[1]
    assert saved > 0, "the limit was reached before any message; raise it"
    assert "could not be saved" in words and "disk" in words, words
    assert "Error" not in words, words
    history = History(db)
    assert history.check() == "ok"
    messages = history.messages(conv.id)
    assert [m.content for m in messages[:2]] == [m.content for m in kept]
    assert len(messages) == 2 + saved, "a message committed before the disk filled was lost"
    history.add_message(conv.id, "user", "room again")  # space back: writes work again
    history.close()


def test_a_download_that_fills_the_disk(tmp_path: Path) -> None:
    from fake_hub import FakeHub, tiny_gguf

    served = tiny_gguf(tmp_path / "served-Q8_0.gguf", 7, seed=3, n=2 * LIMIT // 4)[0]
    assert served.stat().st_size > LIMIT
    home, cache = tmp_path / "home", tmp_path / "hf-cache"
    assert fireside(home, "models", "list", limit=None).returncode == 0
    before = library_state(home)
    with FakeHub() as hub:
        hub.add_repo("test/full-GGUF", {served.name: served.read_bytes()}, tags=["gguf"])
        online = {"HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "0"}
        out = fireside(home, "pull", "test/full-GGUF:Q8_0", limit=LIMIT, env=online)
        says_disk_is_full(out)
        assert library_state(home) == before
        finals = [p for p in cache.rglob(served.name)]
        assert all(p.stat().st_size == served.stat().st_size for p in finals), finals
        # Room again: the next pull finishes the file and registers it.
        again = fireside(home, "pull", "test/full-GGUF:Q8_0", limit=None, env=online)
        assert again.returncode == 0, again.stderr
    ids, _ = library_state(home)
    assert len(ids) == len(before[0]) + 1
    pulled = next(cache.rglob(served.name))
    assert pulled.read_bytes() == served.read_bytes()
