"""``fireside bench``: end to end on the bundled model (a real subprocess, the real llama.cpp
engine, tiny rounds), Ctrl-C, the stored result and its table on an existing database, the
engine choice honouring a stored result and the user's per-model setting, and the
recommendation rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models import Catalog, describe
from models.benchmarks import BenchStore
from runtime import dispatch
from runtime.bench import candidates, long_prompt
from runtime.bench_result import BenchResult, EngineRow, Round, recommend
from runtime.machine import fingerprint

FIRESIDE = [sys.executable, "-m", "app"]
TINY = ["--rounds", "2", "--tokens", "8", "--parallel", "2", "--long", "300"]


def run(env: dict[str, str], *args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FIRESIDE, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, FIRESIDE_HOME=str(tmp_path / "home"))


def a_round(decode: float, ttft_long: float = 1.0, parallel: float = 0.0) -> Round:
    return Round(0.5, 0.05, ttft_long, decode, parallel, 300_000_000, 1200, 64)


@pytest.mark.slow
def test_bench_on_the_bundled_model_end_to_end(env: dict[str, str]) -> None:
    out = run(env, "bench", *TINY, "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    result = json.loads(out.stdout)
    (row,) = [r for r in result["rows"] if r["engine"] == "llama.cpp"]
    assert row["model_id"] == "smollm2-135m" and row["error"] is None
    assert len(row["rounds"]) == 2
    for r in row["rounds"]:
        assert r["load_s"] > 0 and 0 < r["ttft_short_s"] < r["ttft_long_s"]
        assert r["decode_tps"] > 1 and r["parallel_tps"] > 1
        assert 250 <= r["long_prompt_tokens"] <= 400
        # the engine child holds the 98 MB model and the interpreter
        assert r["peak_bytes"] > Path(describe_bundled().path).stat().st_size
    assert row["kl"] is None and "no source" in row["quality_note"]
    assert {r["use"] for r in result["recommendations"]} == {"chat", "long documents", "server"}
    assert all(r["engine"] == "llama.cpp" for r in result["recommendations"])

    # kept for this machine, and the engine choice says so
    key, _ = fingerprint()
    with BenchStore(Path(env["FIRESIDE_HOME"]) / "fireside.db") as store:
        kept = store.get("smollm2-135m", key)
    assert kept is not None and kept["rows"][0]["rounds"] == row["rounds"]
    doctor = run(env, "doctor")
    assert "measured here by fireside bench" in doctor.stdout, doctor.stdout
    assert "the only engine measured" in doctor.stdout
    shown = run(env, "models", "show", "smollm2-135m")
    assert "engine: llama.cpp on cpu: measured here by fireside bench" in shown.stdout
    shown = json.loads(run(env, "models", "show", "smollm2-135m", "--json").stdout)
    assert shown["engine"].startswith("llama.cpp on cpu: measured here by fireside bench")

    table = run(env, "bench", "--rounds", "1", "--tokens", "4", "--parallel", "1",
                "--long", "200", "--no-save")  # fmt: skip
    assert table.returncode == 0, table.stderr[-2000:]
    assert "DECODE" in table.stdout and "llama.cpp · smollm2-135m Q4_1" in table.stdout
    assert "Recommended here:" in table.stdout and "chat" in table.stdout


def describe_bundled():
    from models.bundled import bundled_model_path

    path = bundled_model_path()
    assert path is not None
    return describe(path)


@pytest.mark.slow
def test_ctrl_c_stops_the_bench_and_keeps_nothing(env: dict[str, str]) -> None:
    proc = subprocess.Popen(
        [*FIRESIDE, "bench", "--rounds", "50", "--tokens", "64"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "benchmark cancelled; nothing was kept" in err and "Traceback" not in err
    with BenchStore(Path(env["FIRESIDE_HOME"]) / "fireside.db") as store:
        assert store.get("smollm2-135m", fingerprint()[0]) is None


def test_bad_settings_are_refused_in_words(env: dict[str, str]) -> None:
    out = run(env, "bench", "--rounds", "0")
    assert out.returncode == 1 and "--rounds must be at least 1" in out.stderr
    out = run(env, "bench", "no-such-model")
    assert out.returncode == 1 and "no model called 'no-such-model'" in out.stderr
    out = run(env, "bench", "--engines", "vulkan")
    assert out.returncode == 1 and "unknown engine 'vulkan'; known:" in out.stderr
    out = run(env, "bench", "--engines", "onnx")
    assert out.returncode == 1 and "no engine here can run" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_table_is_added_to_an_existing_database(tmp_path: Path, bundled_gguf: Path) -> None:
    db = tmp_path / "fireside.db"
    catalog = Catalog(db)  # a library from before benchmarks existed
    record = catalog.add(describe(bundled_gguf).replace(id="mine", name="Mine", path=str(
        bundled_gguf.parent / "copy.gguf")))  # fmt: skip
    catalog.close()
    import sqlite3

    conn = sqlite3.connect(db)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "models" in names and "bench_results" not in names
    conn.close()

    with BenchStore(db) as store:
        store.save("mine", "machine-a", "a machine", {"model_id": "mine", "rows": []})
        store.save("mine", "machine-a", "a machine", {"model_id": "mine", "rows": [1]})
        store.save("mine", "machine-b", "another", {"model_id": "mine", "rows": [2]})
        assert store.get("mine", "machine-a")["rows"] == [1]  # replaced, not added
        assert [r["rows"] for r in store.for_machine("machine-b")] == [[2]]
    conn = sqlite3.connect(db)
    versions = dict(conn.execute("SELECT owner, version FROM schema_versions").fetchall())
    assert versions == {"catalog": 1, "benchmarks": 1}
    assert conn.execute("SELECT count(*) FROM bench_results").fetchone()[0] == 2
    conn.close()
    again = Catalog(db)  # the catalog is untouched by the migration
    assert again.get("mine") == record
    again.close()


def _stored(home: Path, model_id: str, rates: dict[str, float], machine: str | None = None):
    rows = [
        EngineRow(engine, model_id, "Bundled", "gguf", "Q4_1", "this model", [a_round(rate)])
        for engine, rate in rates.items()
    ]
    key = machine or fingerprint()[0]
    result = BenchResult(model_id, key, "here", "2026-12-04T02:00:00+00:00", {}, rows)
    with BenchStore(home / "fireside.db") as store:
        store.save(model_id, key, "here", result.to_dict())


@pytest.fixture(scope="module")
def q8_gguf(cache_dir: Path, hf_checkpoint: Path) -> Path:
    """The real checkpoint as a Q8_0 GGUF (quant.convert, cached): llama.cpp and OpenVINO
    both run it."""
    from openvino_models import openvino_models

    return openvino_models(cache_dir, hf_checkpoint)[0]


def test_dispatch_honours_a_stored_result_and_the_users_setting(
    fresh_home: Path, q8_gguf: Path
) -> None:
    catalog = Catalog()
    bundled = catalog.get("smollm2-135m")
    name, why = dispatch.decide(bundled)  # Q4_1: OpenVINO refuses it, llama.cpp runs it
    assert name == "llama.cpp" and why.startswith("the only engine for this file (OpenVINO")

    record = catalog.add(describe(q8_gguf))
    second = "openvino"
    assert dispatch.engines_for(record) == ["llama.cpp", second]
    assert "default for GGUF" in dispatch.decide(record)[1]

    _stored(fresh_home, record.id, {"llama.cpp": 60.0, second: 90.0}, machine="elsewhere")
    assert dispatch.decide(record)[0] == "llama.cpp"  # another machine's measure: ignored

    _stored(fresh_home, record.id, {"llama.cpp": 60.0, second: 90.0})
    name, why = dispatch.decide(record)
    assert name == second and "measured fastest here" in why and "90 tokens/s" in why
    assert dispatch.plan(record).reason == why

    _stored(fresh_home, record.id, {"llama.cpp": 120.0, second: 90.0})
    assert dispatch.decide(record)[0] == "llama.cpp"

    # the user's setting beats the measure; asking beats both; auto clears the setting
    from app.cli import main

    assert main(["models", "set", record.id, "--engine", second]) == 0
    record = catalog.get(record.id)
    assert record.extra["engine"] == second
    name, why = dispatch.decide(record)
    assert name == second and "your setting for this model" in why
    assert dispatch.decide(record, "llama.cpp")[0] == "llama.cpp"
    assert main(["models", "set", record.id, "--engine", "auto"]) == 0
    assert "engine" not in catalog.get(record.id).extra
    assert dispatch.decide(catalog.get(record.id))[0] == "llama.cpp"


def test_setting_an_engine_that_cannot_run_the_model_is_refused(
    fresh_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    assert main(["models", "set", "smollm2-135m", "--engine", "torch"]) == 1
    err = capsys.readouterr().err
    assert "the torch backend cannot run gguf models" in err and "Traceback" not in err
    assert "engine" not in Catalog().get("smollm2-135m").extra


def test_recommendations_per_use_and_the_quality_bound() -> None:
    fast_bad = EngineRow("onnx", "m-int4", "M int4", "onnx", "ONNX int4", "conversion",
                         [a_round(200.0, 0.4, 300.0)], kl=0.4)  # fmt: skip
    llama = EngineRow("llama.cpp", "m-q8", "M Q8_0", "gguf", "Q8_0", "conversion",
                      [a_round(130.0, 2.0, 250.0), a_round(134.0, 1.8, 260.0)], kl=0.004)  # fmt: skip
    vino = EngineRow("openvino", "m-q8", "M Q8_0", "gguf", "Q8_0", "conversion",
                     [a_round(99.0, 0.5, 120.0)], kl=0.004)  # fmt: skip
    broken = EngineRow("torch", "m", "M", "hf-safetensors", None, "source", error="no memory")
    recs = {r.use: r for r in recommend([fast_bad, llama, vino, broken])}
    assert recs["chat"].engine == "llama.cpp" and "132 tokens/s" in recs["chat"].text
    assert "1.33x openvino" in recs["chat"].text  # 132 / 99
    assert recs["long documents"].engine == "openvino"
    assert recs["server"].engine == "llama.cpp"
    # nothing else ran: a degraded conversion is still the answer, with its KL shown
    (only,) = [r for r in recommend([fast_bad]) if r.use == "chat"]
    assert only.engine == "onnx" and "KL 0.4000" in only.text
    # the stored form reads back as it was
    result = BenchResult("m", "k", "here", "now", {}, [llama, broken])
    assert BenchResult.from_dict(json.loads(json.dumps(result.to_dict()))).rows[0] == llama


def test_the_family_of_a_converted_model(bundled_gguf: Path, hf_checkpoint: Path) -> None:
    source = describe(hf_checkpoint).replace(id="src")
    gguf = describe(bundled_gguf).replace(
        id="q", source="converted", provenance={"origin": source.path, "type": "Q4_1"}
    )
    other = gguf.replace(id="q2", path=source.path + "-copy.gguf")
    runs, skipped = candidates(gguf, [source, gguf, other])
    got = {(c.engine, c.record.id, c.role) for c in runs}
    assert ("llama.cpp", "q", "this model") in got
    assert ("torch", "src", "source") in got and ("llama.cpp", "q2", "conversion") in got
    assert not candidates(gguf, [gguf, source], ("llama.cpp",))[1]
    # the long prompt is about as long as asked (the bundled model's tokenizer)
    assert len(long_prompt(1200)[0]["content"]) > 4 * 1000


def test_my_models_page_shows_the_stored_result(fresh_home: Path) -> None:
    from app.gui.models_page import details_html, engine_lines

    record = Catalog().get("smollm2-135m")
    engine, speed = engine_lines(record)
    assert speed is None and "not measured yet" in details_html(record, "fits", engine, speed)
    _stored(fresh_home, record.id, {"llama.cpp": 61.0})
    engine, speed = engine_lines(record)
    assert engine.startswith("llama.cpp: measured here by fireside bench on 2026-12-04")
    assert (
        speed == "llama.cpp 61 tokens/s, 1.0 s to read a long prompt (fireside bench, 2026-12-04)"
    )
    html = details_html(record, "fits", engine, speed)
    assert "Speed here" in html and "61 tokens/s" in html


def test_an_engine_that_refuses_this_file_is_not_kept_as_its_setting(
    fresh_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    assert main(["models", "set", "smollm2-135m", "--engine", "openvino"]) == 1
    assert "OpenVINO GenAI cannot run" in capsys.readouterr().err  # the bundled file is Q4_1
    assert "engine" not in Catalog().get("smollm2-135m").extra


@pytest.mark.slow
def test_the_engine_process_runs_the_measured_engine(fresh_home: Path, q8_gguf: Path) -> None:
    from runtime import BackendOptions, Engine

    record = Catalog().add(describe(q8_gguf))
    _stored(fresh_home, record.id, {"llama.cpp": 60.0, "openvino": 90.0})
    with Engine() as engine:  # the child decides from the same store (no backend named)
        info = engine.load(record, BackendOptions(n_ctx=512, n_threads=1))
        assert info.backend == "openvino"
        _stored(fresh_home, record.id, {"llama.cpp": 95.0, "openvino": 90.0})
        assert engine.load(record, BackendOptions(n_ctx=512, n_threads=1)).backend == "llama.cpp"
