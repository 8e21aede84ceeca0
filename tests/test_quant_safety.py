"""The converter's refusals and clean-ups: unsupported architecture, corrupt shard, hostile
pickle, cancel, full disk; PyTorch .bin input; ``fireside convert`` end to end and Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from tiny_models import TOKENIZER_FILES, build_tiny

from models import Cancelled, InvalidModelFile, UnsupportedModel
from quant import ConversionError, convert

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_llama(hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny(
        "LlamaForCausalLM", tmp_path_factory.mktemp("tiny") / "tiny-llama", hf_checkpoint
    )


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_unsupported_architecture_refused_before_any_work(tiny_llama: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_llama, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsupportedModel) as err:
        convert(folder, "gguf-q4_k_m", out / "x.gguf")
    message = str(err.value)
    assert (
        "GPT2LMHeadModel" in message
        and "LlamaForCausalLM" in message
        and "Qwen3ForCausalLM" in message
    )
    assert leftovers(out) == []


def test_unknown_output_type(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="gguf-q4_k_m"):
        convert(tiny_llama, "gguf-q3_weird", tmp_path / "x.gguf")


def test_corrupt_shard_refused(tiny_llama: Path, tmp_path: Path) -> None:
    folder = copy_model(tiny_llama, tmp_path / "m")
    shard = folder / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(InvalidModelFile, match="truncated"):
        convert(folder, "gguf-f16", tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused_and_never_run(tiny_llama: Path, tmp_path: Path) -> None:
    import torch

    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(tiny_llama / "config.json", folder / "config.json")
    for name in TOKENIZER_FILES:
        if (tiny_llama / name).exists():
            shutil.copy(tiny_llama / name, folder / name)
    marker = tmp_path / "payload-ran"
    torch.save(
        {"model.embed_tokens.weight": torch.zeros(4, 4), "evil": Payload(marker)},
        folder / "pytorch_model.bin",
    )
    with pytest.raises(InvalidModelFile, match="will not open"):
        convert(folder, "gguf-f16", tmp_path / "x.gguf")
    assert not marker.exists()
    assert not (tmp_path / "x.gguf").exists()


def test_pytorch_bin_converts_like_safetensors(tiny_llama: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from models import read_gguf

    folder = tmp_path / "bin"
    folder.mkdir()
    for p in tiny_llama.iterdir():
        if p.suffix != ".safetensors":
            shutil.copy(p, folder / p.name)
    torch.save(load_file(tiny_llama / "model.safetensors"), folder / "pytorch_model.bin")
    a = read_gguf(convert(tiny_llama, "gguf-q8_0", tmp_path / "a.gguf"))
    b = read_gguf(convert(folder, "gguf-q8_0", tmp_path / "b.gguf"))
    assert [(t.name, t.ggml_type, t.shape) for t in a.tensors] == [
        (t.name, t.ggml_type, t.shape) for t in b.tensors
    ]
    data_a = (tmp_path / "a.gguf").read_bytes()[a.data_offset :]
    data_b = (tmp_path / "b.gguf").read_bytes()[b.data_offset :]
    assert data_a == data_b


@pytest.mark.parametrize("to", ["gguf-f16", "gguf-q4_k_m"])
def test_cancel_leaves_nothing(tiny_llama: Path, tmp_path: Path, to: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done > 0:
            cancel.set()

    with pytest.raises(Cancelled):
        convert(tiny_llama, to, out / "x.gguf", progress=progress, cancel=cancel)
    assert seen and seen[-1][0] < seen[-1][1]
    assert leftovers(out) == []


def test_full_disk_leaves_nothing(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))\n"
        "from quant import convert, ConversionError\n"
        "try:\n"
        f"    convert({str(tiny_llama)!r}, 'gguf-f16', {str(out / 'x.gguf')!r})\n"
        "except ConversionError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "disk filled up" in proc.stdout
    assert leftovers(out) == []


def _fireside(*args: str, home: Path, **kw) -> subprocess.Popen:
    env = dict(os.environ, FIRESIDE_HOME=str(home))
    return subprocess.Popen(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def test_cli_convert_end_to_end(tiny_llama: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _fireside(
        "convert", str(tiny_llama), "--to", "gguf-q4_0", "--name", "Tiny Llama", home=home
    )
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "100%" in stderr and "ETA" in stderr
    assert "added tiny-llama-q4_0" in stdout
    listing = _fireside("models", "list", "--json", home=home)
    records = {r["id"]: r for r in json.loads(listing.communicate(timeout=60)[0])}
    rec = records["tiny-llama-q4_0"]
    assert rec["source"] == "converted" and rec["quantization"] == "Q4_0" and rec["owned"]
    assert rec["provenance"]["origin"] == str(tiny_llama)
    assert rec["provenance"]["type"] == "gguf-q4_0"
    assert rec["provenance"]["converter"].startswith("fireside-gguf")
    assert Path(rec["path"]).is_file() and Path(rec["path"]).parent == home / "models"
    assert sorted(p.name for p in (home / "models").iterdir()) == ["tiny-llama-q4_0.gguf"]


def test_cli_ctrl_c_cancels_and_leaves_nothing(hf_checkpoint: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = _fireside("convert", str(hf_checkpoint), "--to", "gguf-q4_k_m", home=home)
    assert proc.stderr is not None
    for line in proc.stderr:  # wait until the conversion is under way
        if "%" in line and not line.strip().endswith("0% ETA --:--"):
            break
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "nothing was kept" in stderr
    assert leftovers(home / "models") == []


def test_not_enough_space_is_a_plain_refusal(tmp_path: Path) -> None:
    from quant import NotEnoughSpace
    from quant.to_gguf import _check_space

    _check_space(tmp_path, 1024)  # a small need fits
    with pytest.raises(NotEnoughSpace, match="not enough free disk space.*-o"):
        _check_space(tmp_path, 10**18)


def test_bos_flag_read_from_the_post_processor_when_the_library_cannot_be_asked(
    tmp_path: Path,
) -> None:
    from quant import vocab

    proc = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel"},
            {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
            },
        ],
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps({"post_processor": proc}))
    assert vocab._post_processor_ids(tmp_path / "tokenizer.json") == [1, -1]
    (tmp_path / "tokenizer.json").write_text(json.dumps({"post_processor": None}))
    assert vocab._post_processor_ids(tmp_path / "tokenizer.json") is None


def test_a_tokenizer_json_the_library_cannot_read_is_refused_in_words(tmp_path: Path) -> None:
    from quant import vocab

    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "FutureModel"}}))
    with pytest.raises(InvalidModelFile, match="cannot read this folder's tokenizer.json"):
        vocab._hf_add_flags(tmp_path, 1, 2)
