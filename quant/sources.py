"""Reading a checkpoint's tensors one at a time, in numpy, without holding the model.

Safetensors files are memory-mapped; each tensor is a view on the map, and its pages are
released after it has been written, so resident memory stays near one tensor. bf16 is kept
as raw 16-bit words (numpy has no bfloat16) and widened with a shift, never through torch.
PyTorch pickles are opened only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import InvalidModelFile, UnsupportedModel
from models.hf import HFCheckpoint

# Kinds of source data: a numpy dtype, except BF16 held as uint16 words.
NUMPY_KINDS = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


@dataclass(frozen=True)
class SourceTensor:
    name: str
    kind: str  # F32 / F16 / BF16 / F64
    shape: tuple[int, ...]


def require_tokenizer(ckpt: HFCheckpoint) -> None:
    """Refuse, before any work, a checkpoint whose folder lacks its tokenizer."""
    if not ckpt.has_tokenizer:
        raise InvalidModelFile(
            f"{ckpt.path} has no tokenizer (tokenizer.json or tokenizer.model); "
            f"a model cannot be used without one"
        )


def require_unquantized(ckpt: HFCheckpoint) -> None:
    """Refuse, before any work, weights that are already quantized (a converter's input is
    the original weights)."""
    if "quantization_config" in ckpt.config or "quantization" in ckpt.config:
        raise UnsupportedModel(
            f"{ckpt.path.name} is already quantized; convert the original (unquantized) weights"
        )


def as_f32(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32, copy=False)


def as_f16(array: np.ndarray, kind: str) -> np.ndarray:
    if kind == "F16":
        return array
    return as_f32(array, kind).astype(np.float16)


def as_bf16(array: np.ndarray, kind: str) -> np.ndarray:
    """Raw bf16 words (uint16), rounded to nearest even from wider types."""
    if kind == "BF16":
        return array
    bits = as_f32(array, kind).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))
    return (rounded >> 16).astype(np.uint16)


class TensorSource:
    """The checkpoint's tensors by name; ``read`` returns a numpy array of ``kind``."""

    tensors: dict[str, SourceTensor]

    def read(self, name: str) -> np.ndarray:
        raise NotImplementedError

    def release(self, name: str) -> None:
        """The tensor has been written; let its memory go."""

    def close(self) -> None:
        pass


class SafetensorsSource(TensorSource):
    def __init__(self, ckpt: HFCheckpoint) -> None:
        self._entries = ckpt.tensors
        self.tensors = {}
        for name, t in ckpt.tensors.items():
            if t.dtype not in NUMPY_KINDS:
                raise InvalidModelFile(
                    f"tensor {name!r} is stored as {t.dtype}; Fireside converts only "
                    f"float32, float16 and bfloat16 weights"
                )
            self.tensors[name] = SourceTensor(name, t.dtype, t.shape)
        self._maps: dict[Path, tuple[Any, mmap.mmap]] = {}

    def _map(self, path: Path) -> mmap.mmap:
        if path not in self._maps:
            fh = open(path, "rb")  # noqa: SIM115 (closed in close())
            self._maps[path] = (fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
        return self._maps[path][1]

    def read(self, name: str) -> np.ndarray:
        t = self._entries[name]
        mm = self._map(t.file)
        dtype = NUMPY_KINDS[t.dtype]
        count = t.n_bytes // np.dtype(dtype).itemsize
        return np.frombuffer(mm, dtype=dtype, count=count, offset=t.start).reshape(t.shape)

    def release(self, name: str) -> None:
        t = self._entries[name]
        mm = self._maps.get(t.file)
        if mm is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        page = mmap.PAGESIZE
        start = t.start // page * page
        with contextlib.suppress(OSError, ValueError):
            mm[1].madvise(mmap.MADV_DONTNEED, start, t.start + t.n_bytes - start)

    def close(self) -> None:
        for fh, mm in self._maps.values():
            with contextlib.suppress(BufferError):
                mm.close()
            fh.close()
        self._maps.clear()


def _refuse_unsafe_pickle(path: Path, exc: Exception) -> InvalidModelFile:
    return InvalidModelFile(
        f"{path.name} is a PyTorch pickle that asks to run code or build objects beyond "
        f"plain tensors, so Fireside will not open it (only safe, weights-only files are "
        f"loaded). Use a .safetensors version of this model instead. ({str(exc).splitlines()[0]})"
    )


class PyTorchSource(TensorSource):
    """PyTorch ``.bin``/``.pt`` files, opened with weights_only=True and memory-mapped."""

    def __init__(self, ckpt: HFCheckpoint) -> None:
        import pickle

        import torch

        self._torch = torch
        self._state: dict[str, Any] = {}
        self.tensors = {}
        for path in ckpt.weight_files:
            try:
                try:
                    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                except RuntimeError as exc:
                    if "mmap" not in str(exc):  # legacy (non-zip) files cannot be mapped
                        raise
                    state = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                raise _refuse_unsafe_pickle(path, exc) from None
            except (RuntimeError, EOFError, OSError, ValueError) as exc:
                raise InvalidModelFile(
                    f"{path.name} is not a readable PyTorch weights file ({exc})"
                ) from None
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            if not isinstance(state, dict):
                raise InvalidModelFile(f"{path.name} does not hold a dictionary of tensors")
            for name, value in state.items():
                if not isinstance(value, torch.Tensor):
                    continue
                kind = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}.get(
                    value.dtype
                )
                if kind is None:
                    raise InvalidModelFile(
                        f"tensor {name!r} in {path.name} is {value.dtype}; Fireside converts "
                        f"only float32, float16 and bfloat16 weights"
                    )
                self._state[name] = value
                self.tensors[name] = SourceTensor(name, kind, tuple(value.shape))

    def read(self, name: str) -> np.ndarray:
        t = self._state[name].contiguous()
        if t.dtype == self._torch.bfloat16:
            return t.view(self._torch.int16).numpy().view(np.uint16)
        return t.numpy()

    def release(self, name: str) -> None:
        self._state.pop(name, None)

    def close(self) -> None:
        self._state.clear()


@contextlib.contextmanager
def open_source(ckpt: HFCheckpoint) -> Iterator[TensorSource]:
    source: TensorSource = (
        SafetensorsSource(ckpt) if ckpt.weight_format == "safetensors" else PyTorchSource(ckpt)
    )
    try:
        yield source
    finally:
        source.close()
