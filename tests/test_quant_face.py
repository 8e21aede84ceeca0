"""quant's one conversion face: every output type parsed in one table, the checks and size
estimate before any work, ``convert_into_library`` (convert, measure, register with
provenance) for GGUF through the real converter on a tiny checkpoint, the staged-output tail
(nothing under a final name after a failure, a full disk in words, partials of a killed
process found and removed), and a missing converter said with its install command."""

from __future__ import annotations

import errno
import sys
import threading
from pathlib import Path

import pytest
from tiny_models import build_tiny

from models import Cancelled, Catalog, UnsupportedModel
from quant import (
    TARGETS,
    ConversionError,
    Options,
    check,
    convert,
    convert_into_library,
    expected_size,
    library_output,
    remove_partials,
    target,
)
from quant.staging import staged_output


@pytest.fixture(scope="module")
def tiny(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("LlamaForCausalLM", tmp_path_factory.mktemp("face") / "tiny", hf_checkpoint)


def test_one_table_of_output_types() -> None:
    families = {t.family for t in TARGETS.values()}
    assert families == {"gguf", "mlx", "onnx"}
    assert target("Q4_K_M") == target("gguf-q4_k_m") == TARGETS["gguf-q4_k_m"]
    assert (target("gguf-q4_k_m").label, target("gguf-q4_k_m").suffix) == ("Q4_K_M", ".gguf")
    assert (target("mlx-4bit").label, target("mlx-4bit").suffix) == ("MLX 4-bit", "")
    assert (target("onnx-int8").family, target("onnx-int8").label) == ("onnx", "ONNX int8")
    with pytest.raises(ConversionError) as refused:
        target("gguf-q9")
    said = str(refused.value)
    assert all(name in said for name in TARGETS), said
    assert all(t.unavailable() is None for t in TARGETS.values())  # every extra is installed
    folder = Path("/models/SmolLM2")
    assert target("q4_k_m").beside(folder) == Path("/models/SmolLM2-Q4_K_M.gguf")
    assert target("mlx-4bit").beside(folder) == Path("/models/SmolLM2-MLX-4bit")
    assert target("onnx-int8").beside(folder) == Path("/models/SmolLM2-ONNX-int8")


def test_without_an_output_the_result_goes_beside_the_source(tiny: Path) -> None:
    out = convert(tiny, "gguf-q8_0")
    assert out == tiny.parent / "tiny-Q8_0.gguf" and out.is_file()
    with pytest.raises(ConversionError, match="already exists; choose another output name"):
        convert(tiny, "gguf-q8_0")
    out.unlink()


def test_a_missing_converter_is_said_with_its_install_command(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as if the [onnx] extra were not installed: the module cannot be found or imported
    monkeypatch.setitem(sys.modules, "onnxruntime_genai", None)
    words = target("onnx-int8").unavailable()
    assert words == (
        "ONNX conversion needs onnxruntime_genai, which is not installed: "
        "pip install 'fireside[onnx,torch]'"
    )
    with pytest.raises(UnsupportedModel, match="pip install 'fireside\\[onnx,torch\\]'"):
        check(tiny, "onnx-int8")
    assert check(tiny, "gguf-q8_0").path == tiny  # the other families are unaffected


def test_checks_and_estimates_come_before_any_work(tiny: Path, tmp_path: Path) -> None:
    for name in TARGETS:
        assert check(tiny, name).path == tiny
        assert expected_size(tiny, name) > 0
    bare = tmp_path / "no-tokenizer"
    bare.mkdir()
    for f in ("config.json", "model.safetensors"):
        (bare / f).symlink_to(tiny / f)
    for name in ("gguf-q4_k_m", "mlx-4bit", "onnx-int8"):
        with pytest.raises(Exception, match="no tokenizer"):
            check(bare, name)


def test_convert_into_library_registers_the_record_with_provenance(
    tiny: Path, fresh_home: Path
) -> None:
    catalog = Catalog()
    planned = library_output(tiny, "gguf-q8_0", "Tiny face")
    assert planned.name == "tiny-face-q8_0.gguf"
    seen: list[tuple[int, int]] = []
    done = convert_into_library(
        tiny, "gguf-q8_0", catalog=catalog, name="Tiny face", source_id="src-1",
        progress=lambda d, t: seen.append((d, t)),
    )  # fmt: skip
    record = catalog.get(done.record.id)
    assert Path(record.path) == planned and planned.is_file() and record.owned
    assert (record.format, record.quantization, record.name) == ("gguf", "Q8_0", "Tiny face")
    prov = record.provenance
    assert prov["origin"] == str(tiny.resolve()) and prov["type"] == "gguf-q8_0"
    assert prov["converter"].startswith("fireside-gguf") and prov["source_id"] == "src-1"
    assert done.report is not None and prov["quality"]["kl"] == pytest.approx(
        done.report.kl, abs=1e-6
    )
    assert prov["quality"]["kind"] == "gguf-q8_0" and done.report.kl < 0.01
    assert seen[-1][0] == seen[-1][1] and seen == sorted(seen)
    # the next one gets a free name; options reach the right converter only
    second = convert_into_library(
        tiny, "q8_0", catalog=catalog, name="Tiny face", options=Options(report=False)
    )
    assert Path(second.record.path).name == "tiny-face-q8_0-2.gguf" and second.report is None
    with pytest.raises(ConversionError, match="MLX types only"):
        convert_into_library(tiny, "gguf-q8_0", catalog=catalog, options=Options(group_size=32))
    models = fresh_home / "models"
    assert sorted(p.name for p in models.iterdir()) == ["tiny-face-q8_0-2.gguf", planned.name]
    catalog.close()


def test_a_cancel_through_the_face_leaves_nothing(tiny: Path, fresh_home: Path) -> None:
    catalog = Catalog()
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done > total // 3:
            cancel.set()

    with pytest.raises(Cancelled):
        convert_into_library(tiny, "gguf-f16", catalog=catalog, progress=progress, cancel=cancel)
    assert list((fresh_home / "models").iterdir()) == []
    assert not [r for r in catalog.list() if r.source == "converted"]
    catalog.close()


def test_the_staged_tail_keeps_nothing_after_a_failure(tmp_path: Path) -> None:
    final = tmp_path / "out" / "model.gguf"
    full = "the disk filled up while writing model.gguf"
    with pytest.raises(ConversionError, match=full), staged_output(final) as stage:
        stage.out.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(RuntimeError), staged_output(final) as stage:
        stage.out.mkdir()
        raise RuntimeError("the converter broke")
    assert list(final.parent.iterdir()) == []
    with staged_output(final) as stage:
        stage.out.write_bytes(b"whole")
        (stage.scratch / "cache").write_bytes(b"working file")
    assert final.read_bytes() == b"whole" and sorted(final.parent.iterdir()) == [final]


def test_partials_of_a_killed_conversion_are_removed(tiny: Path, fresh_home: Path) -> None:
    models = fresh_home / "models"
    models.mkdir(parents=True)
    left = [models / ".tiny-q4_k_m.gguf.abc123.partial", models / ".tiny-q4_k_m-2.gguf.x.partial"]
    for folder in left:
        folder.mkdir()
        (folder / "tiny-q4_k_m.gguf").write_bytes(b"half")
    other = models / ".other-q4_k_m.gguf.zz.partial"
    other.mkdir()
    remove_partials(tiny, "gguf-q4_k_m")
    assert sorted(p.name for p in models.iterdir()) == [other.name]
