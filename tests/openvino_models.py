"""Models for the OpenVINO GenAI tests, made once and cached: the real SmolLM2 checkpoint
converted to a Q8_0 GGUF by our own converter (``quant.convert``; OpenVINO refuses the bundled
Q4_1), and an OpenVINO IR folder that OpenVINO GenAI writes from that GGUF itself
(``enable_save_ov_model``), with the checkpoint's config.json beside it as an exported folder
has.

Cache entries are keyed by the converter's source, openvino-genai's version and the
checkpoint, built under a file lock in a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from importlib.metadata import version
from pathlib import Path

from hf_checkpoint import locked

ROOT = Path(__file__).resolve().parents[1]
IR_FILES = (
    "openvino_model.xml",
    "openvino_model.bin",
    "openvino_tokenizer.xml",
    "openvino_tokenizer.bin",
    "openvino_detokenizer.xml",
    "openvino_detokenizer.bin",
)


def _key(checkpoint: Path) -> str:
    h = hashlib.sha256()
    for f in ("quant/to_gguf.py", "quant/ggml_quants.py", "quant/vocab.py"):
        h.update((ROOT / f).read_bytes())
    h.update(version("openvino-genai").encode())
    h.update(str(checkpoint.resolve()).encode())
    h.update(str((checkpoint / "model.safetensors").stat().st_mtime_ns).encode())
    return h.hexdigest()[:16]


def openvino_models(cache_dir: Path, checkpoint: Path) -> tuple[Path, Path]:
    """(the Q8_0 GGUF, the IR folder), from the cache."""
    from quant import convert

    folder = cache_dir / f"openvino-{_key(checkpoint)}"
    gguf, ir = folder / "smollm2-q8_0.gguf", folder / "smollm2-ir"
    with locked(folder.with_suffix(".lock")):
        folder.mkdir(parents=True, exist_ok=True)
        if not gguf.is_file():
            convert(checkpoint, "gguf-q8_0", gguf)
        if not (ir / IR_FILES[0]).is_file():
            import openvino_genai

            work = folder / "ir-building"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            os.symlink(gguf, work / gguf.name)
            openvino_genai.LLMPipeline(str(work / gguf.name), "CPU", enable_save_ov_model=True)
            (work / gguf.name).unlink()
            shutil.copyfile(checkpoint / "config.json", work / "config.json")
            missing = [n for n in IR_FILES if not (work / n).is_file()]
            assert not missing, f"OpenVINO wrote no {missing}"
            work.rename(ir)
    return gguf, ir
