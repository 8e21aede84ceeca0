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


def test_test_file_names_are_unique_across_the_suite_and_the_benchmarks():
    """pytest imports test modules by their base name: two files called the same (one in
    tests/, one in tests/perf/) stop the collection of the whole run."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
