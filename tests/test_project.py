"""The README's promises about set-up hold."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    command = [line for line in ci if line.startswith("python3 -m venv")]
    assert len(command) == 1
    assert command[0] in (ROOT / "README.md").read_text()


def test_layout_matches_the_architecture():
    for name in ("app", "runtime", "quant", "models", "assets", "packaging", "tests"):
        assert (ROOT / name).is_dir(), name
