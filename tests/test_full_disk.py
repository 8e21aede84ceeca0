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


def fireside(home: Path, *args: str, limit: int | None) -> subprocess.CompletedProcess[str]:
    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = dict(os.environ, FIRESIDE_HOME=str(home), HF_HUB_OFFLINE="1")
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


@pytest.mark.parametrize("kind", ["gguf-f16", "gguf-q8_0", "gguf-q4_k_m", "mlx-bf16"])
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
