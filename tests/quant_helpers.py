"""Shared by the quant tests: llama.cpp (llama-cpp-python, the peer) run in a child process,
next-token distributions and their comparison, and GGUF contents side by side.

llama-cpp-python is only ever loaded in a child process (``python tests/quant_helpers.py
COMMAND ...``): the test process loads xllamacpp's library for Fireside's quantizer, and two
copies of llama.cpp/ggml must never share one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def kl_and_top1(ref_logits: np.ndarray, got_logits: np.ndarray) -> tuple[float, float]:
    """Mean KL(ref || got) over positions, and the share of positions with the same argmax."""
    p, q = log_softmax(ref_logits), log_softmax(got_logits)
    kl = (np.exp(p) * (p - q)).sum(-1)
    return float(kl.mean()), float((ref_logits.argmax(-1) == got_logits.argmax(-1)).mean())


def _peer(command: str, *args: str, timeout: float = 600) -> None:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), command, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"llama-cpp-python {command} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )


def llama_logits(gguf_path: Path, token_lists: list[list[int]]) -> list[np.ndarray]:
    """llama.cpp's logits at every position of each token list (one model load, in a child)."""
    with tempfile.TemporaryDirectory() as tmp:
        ids, out = Path(tmp) / "ids.json", Path(tmp) / "logits.npz"
        ids.write_text(json.dumps(token_lists))
        _peer("logits", str(gguf_path), str(ids), str(out))
        with np.load(out) as data:
            return [data[f"a{i}"] for i in range(len(token_lists))]


def llama_vocab(gguf_path: Path, texts: list[str], detokenize: list[list[int]]) -> dict[str, Any]:
    """llama.cpp's tokenization of ``texts`` (BOS added, special tokens parsed) and its
    detokenization of ``detokenize`` (with and without special tokens), from the vocabulary."""
    with tempfile.TemporaryDirectory() as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "out.json"
        job.write_text(json.dumps({"texts": texts, "ids": detokenize}))
        _peer("vocab", str(gguf_path), str(job), str(out))
        return json.loads(out.read_text())


def llama_quantize(
    src: Path, dst: Path, file_type: int, threads: int = 2, imatrix: Path | None = None
) -> None:
    """llama.cpp's own ``llama_model_quantize`` of ``src`` into ``dst`` (llama_ftype), with
    an importance matrix from ``imatrix`` (.npz: tensor name -> one weight per column)."""
    extra = [str(imatrix)] if imatrix is not None else []
    _peer("quantize", str(src), str(dst), str(int(file_type)), str(threads), *extra)


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def gguf_contents(path: Path) -> tuple[dict[str, bytes], list[tuple[str, int, tuple, bytes]]]:
    """A GGUF's metadata (key -> its value's exact encoding) and its tensors (name, type,
    shape in GGUF order, bytes), in file order. A small reader of its own: gguf's GGUFReader
    takes seconds over a 49k-token vocabulary."""
    import struct

    import gguf

    data = Path(path).read_bytes()
    magic, _version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", data, 0)
    assert magic == b"GGUF", path
    pos = 24

    def string(at: int) -> tuple[str, int]:
        (n,) = struct.unpack_from("<Q", data, at)
        return data[at + 8 : at + 8 + n].decode("utf-8"), at + 8 + n

    def skip(vtype: int, at: int) -> int:
        if vtype in _SCALAR_SIZES:
            return at + _SCALAR_SIZES[vtype]
        if vtype == _STRING:
            return string(at)[1]
        assert vtype == _ARRAY, vtype
        item, count = struct.unpack_from("<IQ", data, at)
        at += 12
        if item in _SCALAR_SIZES:
            return at + count * _SCALAR_SIZES[item]
        for _ in range(count):
            at = skip(item, at)
        return at

    meta: dict[str, bytes] = {}
    for _ in range(n_kv):
        key, pos = string(pos)
        (vtype,) = struct.unpack_from("<I", data, pos)
        end = skip(vtype, pos + 4)
        meta[key] = data[pos:end]
        pos = end
    infos = []
    for _ in range(n_tensors):
        name, pos = string(pos)
        (n_dims,) = struct.unpack_from("<I", data, pos)
        dims = struct.unpack_from(f"<{n_dims}Q", data, pos + 4)
        ttype, offset = struct.unpack_from("<IQ", data, pos + 4 + 8 * n_dims)
        pos += 4 + 8 * n_dims + 12
        infos.append((name, ttype, tuple(dims), offset))
    align = 32
    if "general.alignment" in meta:
        align = struct.unpack_from("<I", meta["general.alignment"], 4)[0]
    base = pos + (-pos % align)
    tensors = []
    for name, ttype, dims, offset in infos:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(ttype)]
        n_bytes = int(np.prod(dims, dtype=np.int64)) // block * size
        tensors.append((name, ttype, dims, data[base + offset : base + offset + n_bytes]))
    return meta, tensors


# -- the child side --------------------------------------------------------------------------


def _child_logits(gguf_path: str, ids_path: str, out_path: str) -> None:
    import llama_cpp

    token_lists = json.loads(Path(ids_path).read_text())
    longest = max(len(t) for t in token_lists)
    llm = llama_cpp.Llama(
        gguf_path,
        n_ctx=max(64, longest + 8),
        n_batch=512,
        logits_all=True,
        verbose=False,
        n_threads=2,
    )
    try:
        out = {}
        for i, tokens in enumerate(token_lists):
            llm.reset()
            llm.eval(tokens)
            out[f"a{i}"] = np.array(llm.scores[: len(tokens)], dtype=np.float32)
        np.savez(out_path, **out)
    finally:
        llm.close()


def _child_vocab(gguf_path: str, job_path: str, out_path: str) -> None:
    import llama_cpp

    job = json.loads(Path(job_path).read_text())
    llm = llama_cpp.Llama(gguf_path, n_ctx=256, vocab_only=True, verbose=False)
    try:
        result = {
            "tokens": [
                llm.tokenize(t.encode("utf-8"), add_bos=True, special=True) for t in job["texts"]
            ],
            "special": [
                llm.detokenize(ids, special=True).decode("utf-8", "replace") for ids in job["ids"]
            ],
            "plain": [llm.detokenize(ids).decode("utf-8", "replace") for ids in job["ids"]],
        }
    finally:
        llm.close()
    Path(out_path).write_text(json.dumps(result))


def _child_quantize(src: str, dst: str, file_type: str, threads: str, imatrix: str = "") -> None:
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(file_type)
    params.nthread = int(threads)
    if imatrix:
        with np.load(imatrix) as data:
            arrays = {k: np.ascontiguousarray(data[k], dtype=np.float32) for k in data.files}
        entries = (llama_cpp.llama_model_imatrix_data * (len(arrays) + 1))()
        for entry, (name, values) in zip(entries, arrays.items()):
            entry.name = name.encode()
            entry.data = values.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entry.size = values.size
        entries[len(arrays)].name = None  # the end of the list
        params.imatrix = entries
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit(f"llama_model_quantize returned {rc}")


CHILD_COMMANDS = {"logits": _child_logits, "vocab": _child_vocab, "quantize": _child_quantize}

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    CHILD_COMMANDS[sys.argv[1]](*sys.argv[2:])
