"""Hugging Face / PyTorch checkpoint -> GGUF, one tensor at a time.

F16, BF16 and Q8_0 are written directly; the K-quants and Q4_0 are made by llama.cpp's own
quantizer (in a child process, so it can be cancelled and a native crash stays there) from
an intermediate file in the source's own precision, removed afterwards. Output goes to a
temporary name beside the target, is re-opened and checked, and only then renamed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from models.atomic import atomic_path
from models.errors import Cancelled, InvalidModelFile
from models.gguf import read_gguf
from models.hf import HFCheckpoint, read_hf_folder

from .arch import Architecture, architecture_for
from .errors import ConversionError, NotEnoughSpace
from .sources import TensorSource, as_bf16, as_f16, as_f32, open_source
from .types import CONVERTER_VERSION, OutputType, output_type
from .vocab import write_tokenizer

Q = gguf.GGMLQuantizationType
SPACE_MARGIN = 32 * 1024 * 1024
CHUNK_BYTES = 16 * 1024 * 1024  # float32 working set per piece of a large tensor
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PlannedTensor:
    source: str | None  # the checkpoint's name (None: computed by the converter)
    name: str  # the GGUF name
    shape: tuple[int, ...]
    ggml_type: Q
    n_bytes: int


def _nbytes(shape: tuple[int, ...], qtype: Q) -> int:
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape, dtype=np.int64)) // block * size


def _layer_key(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _choose_type(kind: str, shape: tuple[int, ...], otype: OutputType) -> Q:
    if len(shape) < 2:
        return Q.F32  # norms, biases: llama.cpp wants them in full precision
    if otype.label == "F16":
        return Q.F16
    if otype.label == "BF16":
        return Q.BF16
    if otype.label == "Q8_0":
        return Q.Q8_0 if shape[-1] % 32 == 0 else Q.F16
    # Intermediate for llama.cpp's quantizer: the source's own precision, nothing lost.
    return {"BF16": Q.BF16, "F16": Q.F16}.get(kind, Q.F32)


def plan_tensors(arch: Architecture, src: TensorSource, otype: OutputType) -> list[PlannedTensor]:
    plan = []
    for hf_name in sorted(src.tensors, key=_layer_key):
        t = src.tensors[hf_name]
        name = arch.gguf_name(hf_name)
        if name is None:
            continue
        qtype = _choose_type(t.kind, t.shape, otype)
        plan.append(PlannedTensor(hf_name, name, t.shape, qtype, _nbytes(t.shape, qtype)))
    for name, array in arch.extra_tensors().items():
        plan.append(PlannedTensor(None, name, array.shape, Q.F32, array.nbytes))
    names = [p.name for p in plan]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidModelFile(f"two checkpoint tensors map to the same GGUF tensor {dup!r}")
    if not any(n.startswith("token_embd") for n in names):
        raise InvalidModelFile("the checkpoint has no token embedding; it looks incomplete")
    return plan


def _encode(array: np.ndarray, kind: str, qtype: Q) -> np.ndarray:
    if qtype == Q.F32:
        return np.ascontiguousarray(as_f32(array, kind))
    if qtype == Q.F16:
        return np.ascontiguousarray(as_f16(array, kind))
    if qtype == Q.BF16:
        return np.ascontiguousarray(as_bf16(array, kind))
    if qtype == Q.Q8_0:
        return gguf.quants.quantize(np.ascontiguousarray(as_f32(array, kind)), Q.Q8_0)
    raise ConversionError(f"internal: no encoder for {qtype.name}")


def _chunks(arch: Architecture, name: str, data: np.ndarray, kind: str):
    """The tensor in pieces of whole rows (about CHUNK_BYTES of float32 each), transformed.

    Tensors an architecture transforms are handled whole (they are small: q/k, norms).
    """
    if arch.needs_float(name):
        data, kind = as_f32(data, kind), "F32"
    if arch.changes(name) or data.ndim < 2:
        yield arch.transform(name, data), kind
        return
    rows = data.reshape(-1, data.shape[-1])
    step = max(1, CHUNK_BYTES // (rows.shape[1] * 4))
    for start in range(0, rows.shape[0], step):
        yield rows[start : start + step], kind


def _file_type(plan: list[PlannedTensor], otype: OutputType) -> int:
    if otype.label == "Q8_0":
        return gguf.LlamaFileType.MOSTLY_Q8_0
    big = [p.ggml_type for p in plan if len(p.shape) >= 2]
    if big and all(t == Q.BF16 for t in big):
        return gguf.LlamaFileType.MOSTLY_BF16
    if big and all(t == Q.F16 for t in big):
        return gguf.LlamaFileType.MOSTLY_F16
    return gguf.LlamaFileType.ALL_F32


def _write_gguf(
    path: Path,
    ckpt: HFCheckpoint,
    arch: Architecture,
    src: TensorSource,
    plan: list[PlannedTensor],
    otype: OutputType,
    name: str,
    tick: Callable[[int], None],
    cancel: Any,
) -> None:
    w = gguf.GGUFWriter(path, arch.arch_name)
    try:
        w.add_name(name)
        w.add_string("general.source.converter", CONVERTER_VERSION)
        w.add_file_type(_file_type(plan, otype))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        arch.write_hparams(w)
        write_tokenizer(w, ckpt.path, arch.vocab_size)
        for p in plan:
            # llama.cpp reads GGUF shapes in reverse order; the writer reverses numpy's.
            w.add_tensor_info(
                p.name, p.shape, np.dtype(np.float32), p.n_bytes, raw_dtype=p.ggml_type
            )
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        extras = arch.extra_tensors()
        fout = w.fout[0]
        for p in plan:
            if cancel is not None and cancel.is_set():
                raise Cancelled("conversion cancelled; nothing was kept")
            fout.write(b"\0" * (-fout.tell() % w.data_alignment))
            if p.source is None:
                data, kind = extras[p.name], "F32"
            else:
                kind = src.tensors[p.source].kind
                data = src.read(p.source)
            written = 0
            for chunk, chunk_kind in _chunks(arch, p.name, data, kind):
                encoded = _encode(chunk, chunk_kind, p.ggml_type)
                fout.write(encoded.data)
                written += encoded.nbytes
                del chunk, encoded
            if written != p.n_bytes:
                raise ConversionError(f"internal: {p.name} encoded to an unexpected size")
            del data
            if p.source is not None:
                src.release(p.source)
            tick(p.n_bytes)
        w.flush()
    finally:
        w.close()


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed + SPACE_MARGIN:
        raise NotEnoughSpace(
            f"not enough free disk space in {folder}: the conversion needs about "
            f"{(needed + SPACE_MARGIN) / 1e9:.2f} GB, {free / 1e9:.2f} GB are free. "
            f"Free some space or choose another output folder (-o)."
        )


def _quantize(
    src: Path, dst: Path, otype: OutputType, expect: int, progress: Any, cancel: Any
) -> None:
    """llama.cpp's quantizer in a child process; progress from the output's growth."""
    threads = max(1, os.cpu_count() or 1)
    cmd = [
        sys.executable,
        "-m",
        "quant._llama_quantize",
        str(src),
        str(dst),
        str(otype.llama_ftype),
        str(threads),
    ]
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
        try:
            while child.poll() is None:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("conversion cancelled; nothing was kept")
                with contextlib.suppress(OSError):
                    progress(min(dst.stat().st_size, expect))
                time.sleep(0.1)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if child.returncode != 0:
            log.seek(0)
            tail = log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            if child.returncode == 3 or any("No space" in line for line in tail):
                raise ConversionError("the disk filled up while quantizing; nothing was kept")
            raise ConversionError(
                f"llama.cpp's quantizer failed ({otype.label}): " + " / ".join(tail)
            )


def _verify(path: Path, plan_count: int, arch_name: str, otype: OutputType) -> None:
    info = read_gguf(path)
    if info.architecture != arch_name or len(info.tensors) < 1:
        raise ConversionError("the written file does not read back as the converted model")
    if otype.direct and len(info.tensors) != plan_count:
        raise ConversionError(
            f"the written file holds {len(info.tensors)} tensors, {plan_count} were written"
        )


def default_output(ckpt: HFCheckpoint, otype: OutputType) -> Path:
    return ckpt.path.parent / f"{ckpt.path.name}-{otype.label}.gguf"


def convert(
    source: str | os.PathLike[str],
    to: str,
    out: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
    name: str | None = None,
) -> Path:
    """Convert the Hugging Face folder ``source`` to GGUF type ``to`` (e.g. ``gguf-q4_k_m``).

    Returns the output path. Raises InvalidModelFile / UnsupportedModel before any heavy work,
    NotEnoughSpace before writing, Cancelled or ConversionError after removing partial files.
    """
    otype = output_type(to)
    ckpt = read_hf_folder(source)
    arch = architecture_for(ckpt)
    if not ckpt.has_tokenizer:
        raise InvalidModelFile(
            f"{ckpt.path} has no tokenizer (tokenizer.json or tokenizer.model); "
            f"a model cannot be used without one"
        )
    final = Path(out).expanduser() if out else default_output(ckpt, otype)
    if final.exists():
        raise ConversionError(f"{final} already exists; choose another output name (-o)")
    final.parent.mkdir(parents=True, exist_ok=True)
    model_name = name or str(ckpt.config.get("_name_or_path") or "").strip() or ckpt.path.name

    with open_source(ckpt) as src:
        plan = plan_tensors(arch, src, otype)
        written = sum(p.n_bytes for p in plan)
        n_params = sum(int(np.prod(p.shape)) for p in plan)
        final_size = written if otype.direct else int(n_params * otype.bits_per_weight / 8)
        _check_space(final.parent, written + (0 if otype.direct else final_size))
        total = written + (0 if otype.direct else final_size)
        done = 0

        def tick(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(min(done, total), total)

        if progress:
            progress(0, total)
        try:
            with atomic_path(final) as tmp:
                if otype.direct:
                    _write_gguf(tmp, ckpt, arch, src, plan, otype, model_name, tick, cancel)
                else:
                    inter = tmp.with_name(tmp.name + ".intermediate")
                    try:
                        _write_gguf(inter, ckpt, arch, src, plan, otype, model_name, tick, cancel)
                        src.close()
                        base = done
                        _quantize(
                            inter,
                            tmp,
                            otype,
                            final_size,
                            lambda n: progress(min(base + n, total), total) if progress else None,
                            cancel,
                        )
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            inter.unlink()
                _verify(tmp, len(plan), arch.arch_name, otype)
                tmp.chmod(0o644)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise ConversionError(
                    f"the disk filled up while writing {final.name}; nothing was kept. "
                    f"Free some space or choose another output folder (-o)."
                ) from None
            raise ConversionError(f"could not write {final}: {exc.strerror or exc}") from None
    if progress:
        progress(total, total)
    return final
