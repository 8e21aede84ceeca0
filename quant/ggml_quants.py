"""ggml's quantizer (``ggml_quantize_chunk``), called through ctypes in xllamacpp's library.

xllamacpp's single native extension holds llama.cpp and ggml and exports ggml's C API; it is
opened as a plain shared library (the Python package itself is not imported). The version
and the functions Fireside relies on are checked when it is first loaded, and every failure
becomes a :class:`ConversionError` in plain words, never a raw exception.

Quantization is row-independent, so a tensor's rows are split over a small thread pool
(ctypes releases the GIL during each call); the bytes are the same as one call would give.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import importlib.metadata
import importlib.util
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gguf
import numpy as np

from .errors import ConversionError

Q = gguf.GGMLQuantizationType
PACKAGE = "xllamacpp"
MIN_VERSION = (2026, 10)
INSTALL = f"install {PACKAGE}>={MIN_VERSION[0]}.{MIN_VERSION[1]}"
REQUIRED = (
    "ggml_quantize_chunk",
    "ggml_quantize_init",
    "ggml_quantize_requires_imatrix",
    "ggml_row_size",
    "ggml_validate_row_data",
)
# Rows per call below which splitting across threads costs more than it saves.
MIN_ELEMENTS_PER_THREAD = 256 * 1024
MAX_THREADS = 8
# The types Fireside's mixes write through ggml: block sizes checked against gguf's tables.
CHECKED_TYPES = (
    *(Q.F16, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0),
    *(Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_NL, Q.IQ4_XS),
)


class NotFinite(ConversionError):
    """A tensor holds NaN or infinite values (its quantized blocks fail validation)."""


class Quantizer:
    """ggml's quantizer in one loaded library; ``quantize`` turns float32 rows into blocks."""

    def __init__(self, lib: ctypes.CDLL, version: str, threads: int | None = None) -> None:
        self.lib, self.version = lib, version
        self.threads = max(1, min(MAX_THREADS, threads or os.cpu_count() or 1))
        self._pool: ThreadPoolExecutor | None = None
        i64, size, ptr = ctypes.c_int64, ctypes.c_size_t, ctypes.c_void_p
        self._chunk = _function(
            lib, "ggml_quantize_chunk", size, ctypes.c_int, ptr, ptr, i64, i64, i64, ptr
        )
        self._init = _function(lib, "ggml_quantize_init", None, ctypes.c_int)
        self._needs_imatrix = _function(
            lib, "ggml_quantize_requires_imatrix", ctypes.c_bool, ctypes.c_int
        )
        self._row_size = _function(lib, "ggml_row_size", size, ctypes.c_int, i64)
        self._validate = _function(
            lib, "ggml_validate_row_data", ctypes.c_bool, ctypes.c_int, ptr, size
        )
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Both sides must agree on every type's number and block size (the enum is ABI)."""
        for qtype in CHECKED_TYPES:
            block, size = gguf.GGML_QUANT_SIZES[qtype]
            if self._row_size(int(qtype), 256 * block) != 256 * size:
                raise ConversionError(
                    f"the installed {PACKAGE} {self.version} does not store {qtype.name} the "
                    f"way Fireside's GGUF writer expects; {INSTALL}"
                )

    def row_size(self, qtype: Q, n_per_row: int) -> int:
        return int(self._row_size(int(qtype), n_per_row))

    def requires_imatrix(self, qtype: Q) -> bool:
        return bool(self._needs_imatrix(int(qtype)))

    def quantize(
        self, qtype: Q, rows: np.ndarray, imatrix: np.ndarray | None = None, name: str = ""
    ) -> np.ndarray:
        """``rows`` (float32, one row per line of the last axis) as ``qtype`` blocks (bytes)."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        n_per_row = int(rows.shape[-1])
        n_rows = rows.size // n_per_row if n_per_row else 0
        row_bytes = self.row_size(qtype, n_per_row)
        out = np.empty(n_rows * row_bytes, dtype=np.uint8)
        if n_rows == 0:
            return out
        weights = None
        if imatrix is not None:
            weights = np.ascontiguousarray(imatrix, dtype=np.float32)
            if weights.shape != (n_per_row,):
                raise ConversionError(
                    f"the importance matrix for {name} has {weights.size} values; "
                    f"its rows have {n_per_row}"
                )
        elif self.requires_imatrix(qtype):
            raise ConversionError(f"{qtype.name} needs an importance matrix ({name})")
        if not np.isfinite(rows).all():
            raise NotFinite(_not_finite(name))
        src, dst = rows.ctypes.data, out.ctypes.data
        w_ptr = weights.ctypes.data if weights is not None else None

        def run(piece: tuple[int, int]) -> int:
            first, count = piece
            return int(
                self._chunk(
                    int(qtype),
                    src + first * n_per_row * 4,
                    dst + first * row_bytes,
                    0,
                    count,
                    n_per_row,
                    w_ptr,
                )
            )

        self._init(int(qtype))  # once, before any thread (tables of some types)
        pieces = self._pieces(n_rows, n_per_row)
        if len(pieces) == 1:
            written = run(pieces[0])
        else:
            written = sum(self._executor().map(run, pieces))
        if written != out.nbytes:
            raise ConversionError(f"internal: {name} quantized to an unexpected size")
        if not self._validate(int(qtype), dst, out.nbytes):
            raise NotFinite(_not_finite(name))
        return out

    def _pieces(self, n_rows: int, n_per_row: int) -> list[tuple[int, int]]:
        threads = min(self.threads, max(1, n_rows * n_per_row // MIN_ELEMENTS_PER_THREAD))
        threads = min(threads, n_rows)
        step = -(-n_rows // threads)
        return [(r, min(step, n_rows - r)) for r in range(0, n_rows, step)]

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ggml-quantize")
        return self._pool


def _not_finite(name: str) -> str:
    return (
        f"the tensor {name} holds values that are not finite numbers (NaN or infinity), so "
        f"it cannot be quantized; the checkpoint looks damaged"
    )


def _function(lib: ctypes.CDLL, name: str, restype, *argtypes):
    fn = getattr(lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def library_path() -> Path:
    """xllamacpp's native extension, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = Path(folder) / f"{PACKAGE}{suffix}"
            if candidate.is_file():
                return candidate
    raise ConversionError(
        f"the {PACKAGE} package (llama.cpp's quantizer, needed for the K-quant and Q4_0 "
        f"types) is not installed or is incomplete; {INSTALL}"
    )


def open_library(path: Path, version: str, threads: int | None = None) -> Quantizer:
    """The quantizer in the library at ``path``; ConversionError in plain words if unusable."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        detail = str(exc)
        missing = re.search(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object", detail)
        if missing and "gomp" in missing.group(1):
            raise ConversionError(
                f"{PACKAGE} needs the OpenMP runtime ({missing.group(1)}), which this system "
                f"lacks; install it (Debian/Ubuntu: apt install libgomp1; Fedora: dnf install "
                f"libgomp) and try again"
            ) from None
        if missing:
            raise ConversionError(
                f"{PACKAGE} needs the system library {missing.group(1)}, which this system "
                f"lacks; install it and try again"
            ) from None
        raise ConversionError(
            f"the installed {PACKAGE} {version} could not be loaded ({detail.splitlines()[0]}); "
            f"reinstall it: pip install --force-reinstall '{PACKAGE}>={MIN_VERSION[0]}.{MIN_VERSION[1]}'"
        ) from None
    for symbol in REQUIRED:
        if not hasattr(lib, symbol):
            raise ConversionError(f"the installed {PACKAGE} {version} lacks {symbol}; {INSTALL}")
    return Quantizer(lib, version, threads)


@functools.lru_cache(maxsize=1)
def load() -> Quantizer:
    """The quantizer of the installed xllamacpp (loaded once per process)."""
    try:
        version = importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = ""
    path = library_path()
    if not version:
        version = "(unknown version)"
    elif parse_version(version)[:2] < MIN_VERSION:
        raise ConversionError(
            f"the installed {PACKAGE} {version} is older than Fireside's quantizer needs; {INSTALL}"
        )
    return open_library(path, version)
