"""Hub downloads that go wrong (dropped, cancelled, damaged, refused, a full disk), against
a real HTTP server on 127.0.0.1 playing the Hub (tests/fake_hub.py).

Real parts throughout: huggingface_hub's own client and error mapping, real sockets, real
files in a temporary HF cache and FIRESIDE_HOME, real GGUF / safetensors models built here.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hub_data import GGUF_REPO, Q4, Q8, cache_folder, downloaded

from models.errors import Cancelled
from models.hub import (
    DownloadVerificationFailed,
    HubAccessDenied,
    HubBadListing,
    HubRepoNotFound,
    HubUnreachable,
    pull,
    search,
)
from models.hub import download as hub_download

ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ("hub_fixtures",)  # env, served_files, hub


# -- interrupted downloads --------------------------------------------------------------------


def test_resumes_after_the_server_drops_the_connection_half_way(hub, env, served_files) -> None:
    size = len(served_files["gguf"][Q8])
    hub.drop_after[Q8] = [size // 2]
    result = pull(f"{GGUF_REPO}:Q8_0")
    ranges = [h.get("Range") for h in hub.gets(Q8)]
    assert ranges == [None, f"bytes={size // 2}-"]
    assert hub.bytes_served[Q8] == size  # nothing fetched twice
    assert result.path.read_bytes() == served_files["gguf"][Q8]


def test_a_second_pull_continues_where_a_cancelled_one_stopped(
    hub, env, served_files, monkeypatch
) -> None:
    data = served_files["gguf"][Q8]
    monkeypatch.setattr(hub_download, "PROGRESS_INTERVAL", 0.0)
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= total // 2:
            stop.set()

    with pytest.raises(Cancelled, match="continue"):
        pull(f"{GGUF_REPO}:Q8_0", progress=progress, cancel=stop)
    partial = (
        cache_folder(env, GGUF_REPO) / "blobs" / (hashlib.sha256(data).hexdigest() + ".incomplete")
    )
    kept = partial.stat().st_size
    assert 0 < kept < len(data)
    assert not downloaded(env)

    hub.log.clear()
    served_before = hub.bytes_served[Q8]
    result = pull(f"{GGUF_REPO}:Q8_0")
    assert [h.get("Range") for h in hub.gets(Q8)] == [f"bytes={kept}-"]
    assert hub.bytes_served[Q8] - served_before == len(data) - kept
    assert result.downloaded_bytes == len(data) - kept
    assert result.path.read_bytes() == data and not partial.exists()


def test_a_lost_connection_is_reported_and_the_partial_file_kept(hub, env, served_files) -> None:
    size = len(served_files["gguf"][Q8])
    hub.drop_after[Q8] = [size // 3] + [0] * 10
    with pytest.raises(HubUnreachable, match="lost the connection.*pull again"):
        pull(f"{GGUF_REPO}:Q8_0")
    partial = next((cache_folder(env, GGUF_REPO) / "blobs").glob("*.incomplete"))
    assert partial.stat().st_size == size // 3
    assert not downloaded(env)


def test_no_network_is_reported_quickly(env, monkeypatch) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(HubUnreachable, match="cannot reach the Hub"):
        search("llama")
    with pytest.raises(HubUnreachable, match="cannot reach the Hub"):
        pull(f"{GGUF_REPO}:Q8_0")
    assert time.monotonic() - start < 5


# -- refusing bad data ------------------------------------------------------------------------


def test_a_flipped_byte_is_rejected_and_nothing_is_kept(hub, env, served_files) -> None:
    hub.flip_byte.add(Q8)
    with pytest.raises(DownloadVerificationFailed, match="SHA-256"):
        pull(f"{GGUF_REPO}:Q8_0")
    folder = cache_folder(env, GGUF_REPO)
    assert not list((folder / "blobs").iterdir())  # neither the blob nor a partial file
    assert not (folder / "snapshots").exists() or not list((folder / "snapshots").rglob("*.gguf"))
    models = env / "home" / "models"
    assert not list(models.rglob("*.gguf"))
    assert not downloaded(env)

    hub.flip_byte.clear()  # the Hub heals: the next pull fetches a good copy
    assert pull(f"{GGUF_REPO}:Q8_0").path.read_bytes() == served_files["gguf"][Q8]


@pytest.mark.parametrize(
    "bad", ["../evil.gguf", "/tmp/evil.gguf", "a/../../evil.gguf", "C:/evil.gguf"]
)
def test_a_listing_with_unsafe_names_is_refused(hub, env, served_files, bad) -> None:
    hub.add_repo("test/hostile", {Q8: served_files["gguf"][Q8]}, extra_listing=[bad])
    with pytest.raises(HubBadListing, match="unsafe file name"):
        pull("test/hostile:Q8_0")
    assert not hub.gets("")  # no file was requested at all
    assert not (env / "hf-cache").exists() or not list((env / "hf-cache").rglob("*evil*"))
    assert not list(env.rglob("evil.gguf")) and not Path("/tmp/evil.gguf").exists()
    assert not downloaded(env)


def test_private_and_gated_repositories_ask_for_a_token(
    hub, env, served_files, monkeypatch
) -> None:
    hub.add_repo("test/private", {Q8: served_files["gguf"][Q8]}, private=True)
    hub.add_repo("test/gated", {Q4: served_files["gguf"][Q4]}, gated=True)
    with pytest.raises(HubAccessDenied, match=r"HF_TOKEN") as err:
        pull("test/private:Q8_0")
    assert "hf auth login" in str(err.value) and "not logged in" in str(err.value)
    with pytest.raises(HubAccessDenied, match="gated.*hf auth login"):
        pull("test/gated")
    assert not downloaded(env)

    monkeypatch.setenv("HF_TOKEN", hub.token)
    assert pull("test/private:Q8_0").record.source == "downloaded"
    assert pull("test/gated").record.quantization == "Q4_K_M"


def test_a_missing_repository_or_revision_is_plain(hub, env) -> None:
    with pytest.raises(HubRepoNotFound, match="no repository test/nope"):
        pull("test/nope")
    with pytest.raises(HubRepoNotFound, match="no revision 'v9'"):
        pull(GGUF_REPO, revision="v9")
    with pytest.raises(HubRepoNotFound, match="OWNER/NAME"):
        pull("not a repo")


@pytest.mark.slow
def test_a_full_disk_is_reported_and_nothing_registered(hub, env, served_files) -> None:
    """RLIMIT_FSIZE in a child process: writing past the limit fails as a full disk would."""
    limit = len(served_files["gguf"][Q8]) // 2
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from app.cli import main\n"
        f"sys.exit(main(['pull', '{GGUF_REPO}:Q8_0', '--quiet']))\n"
    )
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "disk is full" in proc.stderr and "pull again" in proc.stderr
    assert "Traceback" not in proc.stderr
    folder = cache_folder(env, GGUF_REPO)
    assert not [p for p in (folder / "blobs").iterdir() if not p.name.endswith(".incomplete")]
    assert not list((env / "home" / "models").rglob("*.gguf"))
    assert not downloaded(env)
