"""The persistent download queue (models.hub.queue, no Qt) against the fake Hub on 127.0.0.1.

Real parts: huggingface_hub's HTTP client, real sockets, real files in a temporary HF cache
and FIRESIDE_HOME, a real crash (SIGKILL) and a real full disk (RLIMIT_FSIZE) in a child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hub_data import GGUF_REPO, HF_REPO, Q8, blob_of, cache_folder, partial_of

from models import Catalog
from models.hub import DownloadQueue, HubOffline

pytest_plugins = ("hub_fixtures",)  # env, served, fake_hub

ROOT = Path(__file__).resolve().parents[1]
Q8_NAME = "tiny-Q8_0"


def downloaded(env: Path) -> list:
    return [r for r in Catalog(env / "home" / "fireside.db").list() if r.source == "downloaded"]


def wait_for(check, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def start(queue: DownloadQueue, entry_id: str) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(queue.run(entry_id)), daemon=True)
    thread.start()
    return thread, out


def test_pause_keeps_the_partial_and_resume_continues_with_a_range_request(
    fake_hub, env, served
) -> None:
    data = served["gguf"][Q8]
    fake_hub.throttle[Q8] = 0.05
    queue = DownloadQueue()
    entry = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0", size=len(data))
    assert entry.state == "queued" and queue.active_count() == 1
    partial = partial_of(env, data)

    thread, out = start(queue, entry.id)
    wait_for(lambda: partial.exists() and partial.stat().st_size >= 128 * 1024)
    assert queue.get(entry.id).state == "downloading"
    queue.pause(entry.id)
    thread.join(10)
    paused = out[0]
    assert paused.state == "paused" and queue.active_count() == 0
    kept = partial.stat().st_size
    assert 0 < kept < len(data) and paused.done == kept
    assert not blob_of(env, data).exists() and not downloaded(env)

    fake_hub.throttle.clear()
    fake_hub.log.clear()
    assert queue.resume(entry.id).state == "queued"
    done = queue.run(entry.id)
    assert done.state == "done" and done.done == done.total == len(data)
    assert [h.get("Range") for h in fake_hub.gets(Q8)] == [f"bytes={kept}-"]
    assert not partial.exists() and blob_of(env, data).read_bytes() == data
    (record,) = downloaded(env)
    assert record.id == done.model_id and record.quantization == "Q8_0"
    assert Path(record.path).read_bytes() == data
    assert record.provenance["repo"] == GGUF_REPO


def test_the_queue_is_kept_as_json_and_read_back(fake_hub, env, served) -> None:
    queue = DownloadQueue()
    a = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")
    b = queue.add(HF_REPO)
    queue.pause(b.id)
    saved = json.loads((env / "home" / "downloads.json").read_text())
    assert [e["state"] for e in saved["entries"]] == ["queued", "paused"]
    again = DownloadQueue()
    assert [(e.id, e.label, e.state) for e in again.entries()] == [
        (a.id, "Q8_0", "queued"),
        (b.id, "model", "paused"),
    ]
    assert again.add(GGUF_REPO, Q8_NAME, label="Q8_0").id == a.id  # not queued twice
    done = again.run(b.id)  # paused: nothing happens
    assert done.state == "paused" and not fake_hub.gets("")
    again.resume(b.id)
    finished = again.run(b.id)
    assert finished.state == "done"
    (record,) = downloaded(env)
    assert record.format != "gguf" and record.id == finished.model_id


CHILD = """
import json, os, resource, signal, sys
from models.hub import DownloadQueue
limit = int(os.environ.get("FSIZE_LIMIT", "0"))
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
queue = DownloadQueue()
entry = queue.add("test/tiny-GGUF", "tiny-Q8_0", label="Q8_0")
print(entry.id, flush=True)
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
result = queue.run(entry.id)
print(json.dumps({"state": result.state, "error": result.error, "kind": result.error_kind}))
"""


def child(**env_extra: str) -> subprocess.Popen:
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    child_env.update(env_extra)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_download_killed_mid_way_resumes_on_the_next_start(fake_hub, env, served) -> None:
    data = served["gguf"][Q8]
    fake_hub.throttle[Q8] = 0.1
    partial = partial_of(env, data)
    proc = child()
    try:
        entry_id = proc.stdout.readline().strip()
        wait_for(lambda: partial.exists() and partial.stat().st_size >= 128 * 1024, 60)
        os.kill(proc.pid, signal.SIGKILL)  # a crash: nothing gets to clean up
    finally:
        proc.wait(10)
    kept = partial.stat().st_size
    assert 0 < kept < len(data)

    fake_hub.throttle.clear()
    fake_hub.log.clear()
    queue = DownloadQueue()  # the next start
    (entry,) = queue.entries()
    assert entry.id == entry_id and entry.state == "queued"  # it was downloading
    assert entry.done == kept and entry.total == len(data)
    assert queue.next_queued().id == entry_id
    done = queue.run(entry_id)
    assert done.state == "done"
    assert [h.get("Range") for h in fake_hub.gets(Q8)] == [f"bytes={kept}-"]
    assert fake_hub.gets("/api/models") == []  # pinned: the listing was not asked again
    (record,) = downloaded(env)
    assert Path(record.path).read_bytes() == data


def test_cancel_deletes_the_partial_file(fake_hub, env, served) -> None:
    data = served["gguf"][Q8]
    fake_hub.throttle[Q8] = 0.05
    queue = DownloadQueue()
    entry = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")
    partial = partial_of(env, data)
    thread, out = start(queue, entry.id)
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0)
    queue.cancel(entry.id)  # while it runs
    thread.join(10)
    assert out[0].state == "cancelled" and out[0].done == 0
    assert not partial.exists() and not blob_of(env, data).exists()

    again = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")  # a new download, from the start
    assert again.id != entry.id
    thread, out = start(queue, again.id)
    wait_for(lambda: partial.exists() and partial.stat().st_size > 0)
    queue.pause(again.id)
    thread.join(10)
    assert partial.exists()
    assert queue.cancel(again.id).state == "cancelled"  # paused: cleaned up at once
    assert not partial.exists() and not list((cache_folder(env) / "blobs").iterdir())
    assert not downloaded(env)


def test_a_cancel_keeps_files_that_were_already_there(fake_hub, env, served) -> None:
    queue = DownloadQueue()
    first = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")
    assert queue.run(first.id).state == "done"
    blob = blob_of(env, served["gguf"][Q8])
    queue.remove(first.id)
    second = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")
    queue.pause(second.id)
    queue.resume(second.id)
    queue.cancel(second.id)
    assert blob.exists() and downloaded(env)


def test_a_damaged_file_never_gets_its_final_name(fake_hub, env, served) -> None:
    data = served["gguf"][Q8]
    fake_hub.flip_byte.add(Q8)
    queue = DownloadQueue()
    entry = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")
    failed = queue.run(entry.id)
    assert failed.state == "failed" and failed.error_kind == "damaged"
    assert "SHA-256" in failed.error and "deleted" in failed.error
    assert not blob_of(env, data).exists() and not partial_of(env, data).exists()
    snapshots = cache_folder(env) / "snapshots"
    assert not snapshots.exists() or not list(snapshots.rglob("*.gguf"))
    assert not list((env / "home" / "models").rglob("*.gguf")) and not downloaded(env)

    fake_hub.flip_byte.clear()
    queue.resume(entry.id)
    assert queue.run(entry.id).state == "done"


def test_a_lost_connection_fails_in_plain_words_and_keeps_the_partial(
    fake_hub, env, served
) -> None:
    data = served["gguf"][Q8]
    fake_hub.drop_after[Q8] = [len(data) // 3] + [0] * 10
    queue = DownloadQueue()
    entry = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")
    failed = queue.run(entry.id)
    assert failed.state == "failed" and failed.error_kind == "unreachable"
    assert "connection to the Hub was lost" in failed.error and "33% is kept" in failed.error
    assert partial_of(env, data).stat().st_size == len(data) // 3 == failed.done
    fake_hub.drop_after.clear()
    queue.resume(entry.id)
    assert queue.run(entry.id).state == "done"


@pytest.mark.slow
def test_a_full_disk_is_reported_and_the_download_resumes_later(fake_hub, env, served) -> None:
    """RLIMIT_FSIZE in a child: writing past the limit fails as a full disk does."""
    data = served["gguf"][Q8]
    proc = child(FSIZE_LIMIT=str(len(data) // 2))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out.splitlines()[-1])
    assert result["state"] == "failed" and result["kind"] == "disk_full", result
    assert "disk is full" in result["error"] and "Free some space" in result["error"]
    assert not blob_of(env, data).exists() and not downloaded(env)

    queue = DownloadQueue()
    (entry,) = queue.entries()
    assert entry.state == "failed" and 0 < entry.done < len(data)
    queue.resume(entry.id)
    fake_hub.log.clear()
    assert queue.run(entry.id).state == "done"
    assert fake_hub.gets(Q8)[0].get("Range") == f"bytes={entry.done}-"


def test_offline_mode_runs_nothing_and_makes_no_request(fake_hub, env, monkeypatch) -> None:
    queue = DownloadQueue()
    entry = queue.add(GGUF_REPO, Q8_NAME, label="Q8_0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubOffline):
        queue.run(entry.id)
    assert queue.get(entry.id).state == "queued" and fake_hub.log == []
