"""Hub search and pull against a real HTTP server on 127.0.0.1 playing the Hub (tests/fake_hub.py).

Real parts throughout: huggingface_hub's own client and error mapping, real sockets, real
files in a temporary HF cache and FIRESIDE_HOME, real GGUF / safetensors models built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_hub import FakeHub, tiny_gguf, tiny_hf_folder

from models import Catalog
from models.errors import Cancelled
from models.hub import (
    DownloadVerificationFailed,
    HubAccessDenied,
    HubBadListing,
    HubOffline,
    HubRepoNotFound,
    HubUnreachable,
    NothingToDownload,
    plan_pull,
    pull,
    search,
)
from models.hub import download as hub_download

ROOT = Path(__file__).resolve().parents[1]
GGUF_REPO = "test/tiny-GGUF"
Q8 = "tiny-Q8_0.gguf"
Q4 = "tiny-Q4_K_M.gguf"


@pytest.fixture(scope="module")
def served_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The repositories' contents, built once: real tiny GGUF files and an HF folder."""
    d = tmp_path_factory.mktemp("served")
    gguf_files = {
        Q4: tiny_gguf(d / Q4, 15, seed=1)[0].read_bytes(),
        Q8: tiny_gguf(d / Q8, 7, seed=2)[0].read_bytes(),
        "mmproj-tiny-f16.gguf": tiny_gguf(d / "mmproj.gguf", 1, seed=3, n=4096)[0].read_bytes(),
        "README.md": b"# tiny\n",
    }
    for shard in tiny_gguf(d / "tiny-F16.gguf", 1, seed=4, split=True):
        gguf_files[shard.name] = shard.read_bytes()
    hf = tiny_hf_folder(d / "hf", seed=5)
    hf_files = {
        **hf,
        "pytorch_model.bin": b"\0" * 5000,
        "README.md": b"# hf\n",
        "LICENSE.txt": b"license\n",
    }
    mlx_files = {**tiny_hf_folder(d / "mlx", seed=6), "README.md": b"# mlx\n"}
    return {"gguf": gguf_files, "hf": hf_files, "mlx": mlx_files}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Online (the suite defaults to HF_HUB_OFFLINE=1), with a private HF cache and home."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("FIRESIDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(hub_download, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    return tmp_path


@pytest.fixture
def hub(env: Path, served_files, monkeypatch: pytest.MonkeyPatch):
    with FakeHub() as fake:
        fake.add_repo(GGUF_REPO, served_files["gguf"], downloads=500, likes=7, tags=["gguf"])
        fake.add_repo(
            "other/tiny-GGUF",
            {"o-Q4_0.gguf": served_files["gguf"][Q8]},
            downloads=9000,
            tags=["gguf"],
        )
        fake.add_repo("test/tiny-hf", served_files["hf"], downloads=20, tags=["safetensors"])
        fake.add_repo(
            "mlx-community/tiny-4bit",
            served_files["mlx"],
            downloads=40,
            tags=["mlx", "safetensors"],
            library="mlx",
        )
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        yield fake


def cache_repo(env: Path, repo: str) -> Path:
    return env / "hf-cache" / ("models--" + repo.replace("/", "--"))


def downloaded(env: Path) -> list:
    return [r for r in Catalog(env / "home" / "fireside.db").list() if r.source == "downloaded"]


# -- search -----------------------------------------------------------------------------------


def test_search_most_downloaded_first_with_quantizations_and_sizes(hub, served_files) -> None:
    results = search("tiny")
    assert [r.repo for r in results] == [
        "other/tiny-GGUF",
        GGUF_REPO,
        "mlx-community/tiny-4bit",
        "test/tiny-hf",
    ]
    by_repo = {r.repo: r for r in results}
    gguf = by_repo[GGUF_REPO]
    assert gguf.kind == "gguf" and gguf.downloads == 500
    offers = {o.label: o for o in gguf.offers}
    assert set(offers) == {"Q4_K_M", "Q8_0", "F16"}  # the mmproj extra is not a model
    files = served_files["gguf"]
    assert offers["Q8_0"].size == len(files[Q8])
    f16 = offers["F16"]
    assert f16.split and len(f16.files) == 2
    assert f16.size == sum(len(files[p]) for p in f16.files)

    mlx = by_repo["mlx-community/tiny-4bit"]
    assert mlx.kind == "mlx"
    want = sum(len(v) for k, v in served_files["mlx"].items() if k != "README.md")
    assert mlx.total_size == want
    hf = by_repo["test/tiny-hf"]
    assert hf.kind == "safetensors"
    assert set(hf.offers[0].files) == {"model.safetensors", "config.json", "tokenizer.json"}

    assert [r.repo for r in search("tiny", format="mlx")] == ["mlx-community/tiny-4bit"]
    assert [r.repo for r in search("tiny", format="gguf")] == ["other/tiny-GGUF", GGUF_REPO]


def test_search_cli_json(hub, capsys) -> None:
    from app.cli import main

    assert main(["search", "tiny-GGUF", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["repo"] for d in data] == ["other/tiny-GGUF", GGUF_REPO]
    assert {o["label"] for o in data[1]["offers"]} == {"Q4_K_M", "Q8_0", "F16"}
    assert main(["search", "tiny-GGUF"]) == 0
    text = capsys.readouterr().out
    assert "Q4_K_M" in text and "500 downloads" in text


# -- pull -------------------------------------------------------------------------------------


def test_pull_one_quantization_out_of_several(hub, env, served_files) -> None:
    calls: list[tuple[int, int]] = []
    result = pull(f"{GGUF_REPO}:Q8_0", progress=lambda d, t: calls.append((d, t)))
    data = served_files["gguf"][Q8]
    # only that file was fetched: no other quantization, no README, no mmproj
    fetched = {p for m, p, _ in hub.log if m == "GET" and "/resolve/" in p}
    assert len(fetched) == 1 and fetched.pop().endswith("/" + Q8)
    assert result.path.read_bytes() == data
    assert result.path.is_relative_to(env / "home" / "models")
    assert result.downloaded_bytes == len(data)
    assert calls[-1] == (len(data), len(data))
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)

    rec = result.record
    commit = hub.repos[GGUF_REPO].commit
    assert rec.source == "downloaded" and rec.owned
    assert rec.quantization == "Q8_0" and rec.format == "gguf"
    assert rec.provenance["origin"] == f"{GGUF_REPO}@{commit}"
    assert rec.provenance["sha256"][Q8] == hashlib.sha256(data).hexdigest()
    assert [r.id for r in downloaded(env)] == [rec.id]

    # The Hub's cache layout, as huggingface_hub writes it.
    folder = cache_repo(env, GGUF_REPO)
    assert (folder / "refs" / "main").read_text() == commit
    pointer = folder / "snapshots" / commit / Q8
    assert pointer.is_symlink() and pointer.read_bytes() == data

    # A second pull fetches nothing and registers nothing new.
    hub.log.clear()
    again = pull(f"{GGUF_REPO}:Q8_0")
    assert not hub.gets(Q8)
    assert again.reused_bytes == len(data) and again.downloaded_bytes == 0
    assert again.record.id == rec.id and len(downloaded(env)) == 1


def test_pull_default_quant_split_and_folder(hub, env, served_files) -> None:
    assert pull(GGUF_REPO).record.quantization == "Q4_K_M"

    split = pull(f"{GGUF_REPO}:F16")
    assert split.record.format == "gguf-split"
    assert [p.name for p in split.files] == [
        "tiny-F16-00001-of-00002.gguf",
        "tiny-F16-00002-of-00002.gguf",
    ]

    folder = pull("test/tiny-hf")
    assert folder.record.format == "hf-safetensors"
    names = sorted(p.name for p in folder.path.iterdir())
    assert names == [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]  # no .bin, README, LICENSE
    for name in names:
        assert (folder.path / name).read_bytes() == served_files["hf"][name]

    extra = plan_pull("test/tiny-hf", include=["README.md"])
    assert "README.md" in {f.path for f in extra.files}

    with pytest.raises(NothingToDownload, match="Q2_K.*offers: "):
        pull(f"{GGUF_REPO}:Q2_K")
    with pytest.raises(NothingToDownload, match="not a GGUF"):
        pull("test/tiny-hf:Q4_K_M")


def test_other_tools_downloads_are_reused_and_ours_are_found(hub, env, served_files) -> None:
    from huggingface_hub import hf_hub_download

    cache = str(env / "hf-cache")
    commit = hub.repos[GGUF_REPO].commit
    theirs = hf_hub_download(GGUF_REPO, Q4, cache_dir=cache, endpoint=hub.url)
    hub.log.clear()
    result = pull(f"{GGUF_REPO}:Q4_K_M")
    assert not hub.gets(Q4)  # not fetched again
    assert result.reused_bytes == len(served_files["gguf"][Q4])
    assert os.path.samefile(result.path, theirs)  # one copy on disk, hard-linked

    pull(f"{GGUF_REPO}:Q8_0")
    found = hf_hub_download(GGUF_REPO, Q8, cache_dir=cache, revision=commit, local_files_only=True)
    assert Path(found).read_bytes() == served_files["gguf"][Q8]


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
        cache_repo(env, GGUF_REPO) / "blobs" / (hashlib.sha256(data).hexdigest() + ".incomplete")
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
    partial = next((cache_repo(env, GGUF_REPO) / "blobs").glob("*.incomplete"))
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
    folder = cache_repo(env, GGUF_REPO)
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
    folder = cache_repo(env, GGUF_REPO)
    assert not [p for p in (folder / "blobs").iterdir() if not p.name.endswith(".incomplete")]
    assert not list((env / "home" / "models").rglob("*.gguf"))
    assert not downloaded(env)


# -- offline mode -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["argument", "environment", "setting", "cli"])
def test_offline_mode_makes_no_network_request(hub, env, monkeypatch, capsys, how) -> None:
    from app.cli import main
    from models.hub import set_offline_setting

    offline = True if how == "argument" else None
    if how == "environment":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    elif how == "setting":
        set_offline_setting(True)
    hub.log.clear()
    with pytest.MonkeyPatch.context() as mp:
        attempts = block_network(mp)
        start = time.monotonic()
        if how == "cli":
            assert main(["search", "tiny", "--offline"]) == 1
            assert main(["pull", f"{GGUF_REPO}:Q8_0", "--offline"]) == 1
            err = capsys.readouterr().err
            assert err.count("offline mode is on") == 2
        else:
            with pytest.raises(HubOffline, match="offline"):
                search("tiny", offline=offline)
            with pytest.raises(HubOffline, match="offline"):
                pull(f"{GGUF_REPO}:Q8_0", offline=offline)
        assert time.monotonic() - start < 1.0
    assert attempts == [] and hub.log == []
    assert not downloaded(env)


def block_network(mp: pytest.MonkeyPatch) -> list[object]:
    """Any attempt to open a connection or resolve a name fails (and is recorded)."""
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise AssertionError(f"network use in offline mode: {args!r}")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket.socket, "connect_ex", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_offline_setting_from_the_cli(env, capsys) -> None:
    from app.cli import main
    from models import paths
    from models.hub import is_offline

    assert main(["offline", "on"]) == 0
    assert json.loads(paths.settings_path().read_text())["offline"] is True
    assert is_offline() and "on" in capsys.readouterr().out
    assert main(["offline", "off"]) == 0
    assert not is_offline()


# -- the terminal -----------------------------------------------------------------------------


def test_pull_from_the_cli_registers_and_lists_the_model(hub, env, capsys) -> None:
    from app.cli import main

    assert main(["pull", f"{GGUF_REPO}:Q4_K_M"]) == 0
    out = capsys.readouterr()
    assert "Pulling test/tiny-GGUF Q4_K_M" in out.err
    assert (
        "Added tiny-gguf-q4_k_m" in out.out and "fireside chat --model tiny-gguf-q4_k_m" in out.out
    )
    assert main(["models", "list", "--json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["tiny-gguf-q4_k_m"]["source"] == "downloaded"
    assert main(["pull", "test/nope"]) == 1
    assert "no repository test/nope" in capsys.readouterr().err


def test_progress_line_shows_percent_speed_and_time_left() -> None:
    import io

    from app.commands.hub import _ProgressLine

    stream = io.StringIO()
    line = _ProgressLine(stream)
    line(0, 4_000_000)
    time.sleep(0.05)
    line(1_000_000, 4_000_000)
    line.end()
    last = stream.getvalue().split("\r")[-1]
    assert "25.0%" in last and "1 MB / 4 MB" in last and "/s" in last
    eta = last.split("ETA ")[1].strip()
    assert eta != "--:--" and eta.count(":") == 1


# -- reading listings (no network) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("model.IQ2_XXS.gguf", "IQ2_XXS"),
        ("ggml-model-q4_0.gguf", "Q4_0"),
        ("x-UD-Q4_K_XL-00001-of-00003.gguf", "UD-Q4_K_XL"),
        ("phi-3-mini-f16.gguf", "F16"),
        ("Qwen2.5-0.5B-Instruct-bf16.gguf", "BF16"),
        ("plain.gguf", None),
    ],
)
def test_quantization_is_read_from_file_names(name: str, quant: str | None) -> None:
    from models.hub.listing import quant_of

    assert quant_of(name) == quant


def test_shards_group_and_the_default_quant_is_q4_k_m() -> None:
    from models.hub.listing import RemoteFile, choose_variant, gguf_variants

    files = [
        RemoteFile("m-Q8_0-00002-of-00002.gguf", 5),
        RemoteFile("m-Q8_0-00001-of-00002.gguf", 5),
        RemoteFile("m-Q4_K_M.gguf", 6),
        RemoteFile("mmproj-m-f16.gguf", 1),
    ]
    variants = {v.label: v for v in gguf_variants(files)}
    assert set(variants) == {"Q8_0", "Q4_K_M"}
    assert [f.path for f in variants["Q8_0"].files] == [
        "m-Q8_0-00001-of-00002.gguf",
        "m-Q8_0-00002-of-00002.gguf",
    ]
    assert variants["Q8_0"].size == 10
    assert choose_variant(list(variants.values()), None, "r/m").label == "Q4_K_M"
    assert choose_variant(list(variants.values()), "q8_0", "r/m").label == "Q8_0"


@pytest.mark.parametrize(
    "bad", ["", "..", "a/../b", "/etc/passwd", "\\\\srv\\x", "a\\b", "C:x", "a//b", "./a", "a\nb"]
)
def test_unsafe_names_are_refused(bad: str) -> None:
    from models.hub import check_filename

    with pytest.raises(HubBadListing):
        check_filename(bad)


def test_safe_names_pass() -> None:
    from models.hub import check_filename

    for good in ("model.gguf", "Q4_K_M/model-00001-of-00002.gguf", "a..b.gguf", ".gitattributes"):
        assert check_filename(good) == good
