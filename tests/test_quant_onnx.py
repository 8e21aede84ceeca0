"""``fireside convert SRC --to onnx-int8|onnx-int4``: the model builder in a child process,
the result checked, registered with provenance and file hashes, its quality measured."""

from __future__ import annotations

import json
import threading

import pytest

from models import Cancelled, Catalog, UnsupportedModel

pytestmark = pytest.mark.slow


def test_convert_into_library_registers_with_hashes_and_quality(hf_checkpoint, fresh_home):
    from models.file_hashes import file_hashes
    from quant import convert_into_library

    catalog = Catalog()
    done = convert_into_library(hf_checkpoint, "onnx-int8", catalog=catalog)
    rec = catalog.get(done.record.id)
    assert (rec.format, rec.quantization, rec.source) == ("onnx", "ONNX int8", "converted")
    prov = rec.provenance
    assert prov["type"] == "onnx-int8" and prov["tool"].startswith("onnxruntime-genai")
    assert prov["files"] == file_hashes(rec.path)
    assert done.report is not None and done.report.kl < 0.01 and done.report.top1 > 0.85
    assert prov["quality"]["kl"] == pytest.approx(done.report.kl, abs=1e-6)
    assert not [p for p in (fresh_home / "models").iterdir() if p.name.startswith(".")]
    catalog.close()


def test_cancel_kills_the_builder_and_leaves_nothing(hf_checkpoint, tmp_path):
    from quant.onnx import convert_onnx

    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 2:  # the builder is running
            cancel.set()

    with pytest.raises(Cancelled):
        convert_onnx(hf_checkpoint, "onnx-int4", tmp_path / "out", progress, cancel)
    assert list(tmp_path.iterdir()) == []


def test_unknown_architecture_and_type_are_refused_before_work(hf_checkpoint, tmp_path):
    from quant import ConversionError
    from quant.onnx import convert_onnx

    src = tmp_path / "odd"
    src.mkdir()
    for f in hf_checkpoint.iterdir():
        if f.is_file():
            (src / f.name).symlink_to(f)
    config = json.loads((hf_checkpoint / "config.json").read_text())
    config["architectures"] = ["MambaForCausalLM"]
    (src / "config.json").unlink()
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModel, match="MambaForCausalLM"):
        convert_onnx(src, "onnx-int8", tmp_path / "out")
    with pytest.raises(ConversionError, match="onnx-int8, onnx-int4"):
        convert_onnx(hf_checkpoint, "onnx-fp8", tmp_path / "out")
    assert not (tmp_path / "out").exists()
