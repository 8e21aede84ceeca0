"""Hub search and pull against a real HTTP server on 127.0.0.1 playing the Hub (tests/fake_hub.py).

Real parts throughout: huggingface_hub's own client and error mapping, real sockets, real
files in a temporary HF cache and FIRESIDE_HOME, real GGUF / safetensors models built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import pytest
from hub_data import GGUF_REPO, Q4, Q8, cache_folder, downloaded

from models.hub import (
    HubOffline,
    NothingToDownload,
    plan_pull,
    pull,
    search,
)

ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ("hub_fixtures",)  # env, served_files, hub


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
    folder = cache_folder(env, GGUF_REPO)
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
