"""Importance matrices: how much each input column of each weight matters, for the quantizer.

llama.cpp's definition, kept here: for every matrix multiplication by a weight tensor, the sum
over the tokens of each input column's squared activation, and the number of tokens; the
quantizer weighs each column's rounding error by the mean (sum / tokens). A stacked experts
tensor keeps one row of sums and one count per expert (each over the tokens routed to it).

``compute_imatrix`` (quant.imatrix_compute) measures one from the source checkpoint itself;
``read_imatrix`` reads a llama.cpp file, in the GGUF imatrix format (``general.type`` =
``imatrix``: ``<tensor>.in_sum2`` and ``<tensor>.counts``) or the legacy ``.dat`` one
(entries of name, call count and per-column means times the call count). ``save_imatrix``
writes the GGUF format. ``weights_for(spec, source)`` is what ``convert --imatrix`` uses:
``auto`` or a file. No torch here; numpy and gguf only.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.work import Progress

from .errors import ConversionError

AUTO = "auto"
_MAX_NAME = 4096  # a legacy entry's name longer than this: not an imatrix file


@dataclass
class ImportanceMatrix:
    """GGUF tensor name -> sums of squared activations, (matrices, columns) float64, and
    tokens seen, (matrices,) float64; ``chunks`` of text processed; where they came from."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    chunks: int = 0
    chunk_size: int = 512  # tokens per chunk
    datasets: tuple[str, ...] = ()

    def weights(self) -> dict[str, np.ndarray]:
        """What the quantizer takes: GGUF tensor name -> per-column means, float32, experts
        one after another. A matrix that saw no token gets 1 everywhere (llama.cpp does the
        same: no information, equal weights)."""
        out: dict[str, np.ndarray] = {}
        for name, sums in self.sums.items():
            counts = self.counts[name].reshape(-1, 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                means = np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)
            out[name] = means.astype(np.float32).reshape(-1)
        return out

    def __len__(self) -> int:
        return len(self.sums)


# -- files --------------------------------------------------------------------------------
def _unreadable(path: Path, why: str) -> ConversionError:
    return ConversionError(f"{path.name} is not an importance matrix Fireside can read: {why}")


def read_imatrix(path: str | os.PathLike[str]) -> ImportanceMatrix:
    """A llama.cpp importance matrix file (GGUF or legacy .dat); refused in words if it is not
    one, is damaged, or holds values that are not finite non-negative numbers."""
    path = Path(path).expanduser()
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        raise ConversionError(f"the importance matrix file {path} does not exist") from None
    except IsADirectoryError:
        raise ConversionError(f"{path} is a folder, not an importance matrix file") from None
    except OSError as exc:
        raise ConversionError(f"could not read {path}: {exc.strerror or exc}") from None
    matrix = _read_gguf(path) if head == b"GGUF" else _read_legacy(path)
    if not matrix.sums:
        raise _unreadable(path, "it holds no entries")
    for name, sums in matrix.sums.items():
        counts = matrix.counts[name]
        if not (np.isfinite(sums).all() and np.isfinite(counts).all()):
            raise _unreadable(path, f"the entry for {name} holds values that are not finite")
        if (sums < 0).any() or (counts < 0).any():
            raise _unreadable(path, f"the entry for {name} holds negative values")
    return matrix


def _read_gguf(path: Path) -> ImportanceMatrix:
    import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, struct.error, OSError, IndexError, KeyError) as exc:
        raise _unreadable(path, f"its GGUF structure is damaged ({exc})") from None
    kind = reader.get_field("general.type")
    if kind is None or kind.contents() != "imatrix":
        raise _unreadable(path, "it is a GGUF file, but not of the imatrix type (a model?)")
    tensors = {t.name: t for t in reader.tensors}
    out = ImportanceMatrix()
    for name, t in tensors.items():
        if not name.endswith(".in_sum2"):
            continue
        base = name.removesuffix(".in_sum2")
        count = tensors.get(f"{base}.counts")
        if count is None:
            raise _unreadable(path, f"{base} has sums but no counts")
        if t.tensor_type != gguf.GGMLQuantizationType.F32:
            raise _unreadable(path, f"{base}'s sums are not stored as 32-bit floats")
        # GGUF shapes are ggml's order: (columns, matrices); numpy's data is (matrices, columns)
        n_cols = int(t.shape[0])
        sums = np.asarray(t.data, dtype=np.float64).reshape(-1, n_cols)
        counts = np.asarray(count.data, dtype=np.float64).reshape(-1)
        if counts.size != sums.shape[0]:
            raise _unreadable(path, f"{base} has {sums.shape[0]} matrices but {counts.size} counts")
        out.sums[base], out.counts[base] = sums, counts
    chunks = reader.get_field("imatrix.chunk_count")
    out.chunks = int(chunks.contents()) if chunks is not None else 0
    datasets = reader.get_field("imatrix.datasets")
    if datasets is not None:
        out.datasets = tuple(str(d) for d in datasets.contents())
    return out


def _read_legacy(path: Path) -> ImportanceMatrix:
    """llama.cpp's first format: int32 entry count; per entry int32 name length, the name,
    int32 call count, int32 value count, float32 values (per-column mean times the call
    count); then optionally int32 last chunk and the dataset's name."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            raise _unreadable(path, "it ends in the middle of an entry (truncated?)")
        values = struct.unpack_from(fmt, data, pos)
        pos += size
        return values

    (n_entries,) = take("<i")
    if n_entries <= 0 or n_entries > len(data) // 12:
        raise _unreadable(path, "it does not start like a llama.cpp imatrix (.dat or GGUF)")
    out = ImportanceMatrix()
    for _ in range(n_entries):
        (n_name,) = take("<i")
        if not 0 < n_name <= _MAX_NAME:
            raise _unreadable(path, "an entry's name has an impossible length (damaged?)")
        try:
            name = take(f"<{n_name}s")[0].decode("utf-8")
        except UnicodeDecodeError:
            raise _unreadable(path, "an entry's name is not text (damaged?)") from None
        ncall, nval = take("<ii")
        if nval <= 0 or ncall < 0:
            raise _unreadable(path, f"the entry for {name} has an impossible size")
        values = (
            np.frombuffer(data, np.float32, count=nval, offset=pos)
            if pos + 4 * nval <= len(data)
            else None
        )
        if values is None:
            raise _unreadable(path, "it ends in the middle of an entry (truncated?)")
        pos += 4 * nval
        # values are mean * ncall: as sums over ncall "tokens", the means come out the same
        out.sums[name] = values.astype(np.float64).reshape(1, -1)
        out.counts[name] = np.array([float(ncall)])
    if pos + 4 <= len(data):
        (out.chunks,) = take("<i")
        if pos + 4 <= len(data):
            (n_text,) = take("<i")
            if 0 < n_text <= len(data) - pos:
                out.datasets = (data[pos : pos + n_text].decode("utf-8", "replace"),)
    return out


def save_imatrix(matrix: ImportanceMatrix, path: str | os.PathLike[str]) -> Path:
    """Write ``matrix`` in llama.cpp's GGUF imatrix format (atomically)."""
    import gguf

    from models.atomic import atomic_path

    final = Path(path).expanduser()
    with atomic_path(final) as tmp:
        w = gguf.GGUFWriter(tmp, arch="")
        w.kv_data[0].pop(gguf.Keys.General.ARCHITECTURE, None)  # llama.cpp writes none
        try:
            w.add_type(gguf.GGUFType.IMATRIX)
            w.add_uint32(gguf.Keys.IMatrix.CHUNK_COUNT, matrix.chunks)
            w.add_uint32(gguf.Keys.IMatrix.CHUNK_SIZE, matrix.chunk_size)
            w.add_array(gguf.Keys.IMatrix.DATASETS, list(matrix.datasets) or [""])
            for name in sorted(matrix.sums):
                sums = matrix.sums[name].astype(np.float32)
                w.add_tensor(f"{name}.in_sum2", sums)
                w.add_tensor(f"{name}.counts", matrix.counts[name].astype(np.float32)[None, :])
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
        finally:
            w.close()
    return final


# -- what convert --imatrix takes ----------------------------------------------------------
def weights_for(
    spec: str | os.PathLike[str],
    source: str | os.PathLike[str],
    to: str | None = None,
    progress: Progress | None = None,
    cancel: Any = None,
) -> dict[str, np.ndarray]:
    """``spec`` ``auto``: computed from the ``source`` checkpoint; otherwise a file's path.
    ``to``: the output type, refused first (before any work) if no matrix applies to it."""
    if to is not None:
        from .types import output_type

        try:
            mixed = output_type(to).mixed
        except ConversionError:  # MLX, ONNX
            mixed = False
        if not mixed:
            raise ConversionError(
                f"an importance matrix applies only to the GGUF K-quant and Q4_0 types "
                f"(gguf-q4_k_m, gguf-q3_k_m ...), not {to}"
            )
    if str(spec).strip().lower() == AUTO:
        from .imatrix_compute import compute_imatrix

        matrix = compute_imatrix(source, progress=progress, cancel=cancel)
    else:
        matrix = read_imatrix(spec)
        if to is not None:
            _require_cover(matrix, Path(spec).name, source, to)
    return matrix.weights()


def _require_cover(matrix: ImportanceMatrix, label: str, source: Any, to: str) -> None:
    """A file made for another model names none of this one's tensors: refused, rather than
    a low-bit file made as if no matrix were given (headers only: no weights read)."""
    from models.hf import read_hf_folder

    from .arch import architecture_for
    from .sources import open_source
    from .to_gguf import plan_tensors
    from .types import output_type

    ckpt = read_hf_folder(Path(source).expanduser())
    with open_source(ckpt) as src:
        plan = plan_tensors(architecture_for(ckpt), src, output_type(to), has_imatrix=True)
    wanted = [p.name for p in plan if p.quantized and p.name != "token_embd.weight"]
    if wanted and not any(name in matrix.sums for name in wanted):
        raise ConversionError(
            f"the importance matrix in {label} names none of this model's tensors (e.g. "
            f"{wanted[0]}); it was made for another model"
        )
