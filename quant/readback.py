"""A converted model's weights read back by checkpoint name, dequantized to float32, for the
quality report (:mod:`quant.quality`). No Qt; numpy only (MLX folders need no mlx).

A GGUF's tensors are dequantized by ``gguf.quants.dequantize`` and mapped back to the
checkpoint's names by inverting the converter's own mapping (``quant.arch``); an MLX
folder's affine weights are dequantized in numpy (``w = scale * q + bias`` per group).
"""

from __future__ import annotations

import contextlib
import mmap
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from models.errors import InvalidModelFile

from .errors import QualityError

SKIPPED = ("rotary_emb.inv_freq", "attn.bias", "attn.masked_bias")  # computed, never converted


# -- the result's weights, by checkpoint name -----------------------------------------------
def _inverse(arch: Any, gguf_name: str, shape: tuple[int, ...]) -> Callable[[np.ndarray], Any]:
    """Undo ``arch.transform`` on a tensor of (numpy) ``shape``, found by probing it (so the
    converter's mapping stays the one definition): a re-ordering of rows (the rope
    permutation) or a constant offset (``1 + w`` norms) are what the architectures do."""
    if not arch.changes(gguf_name):
        return lambda a: a
    if len(shape) >= 2:
        order = np.asarray(
            arch.transform(gguf_name, np.arange(shape[0], dtype=np.float32)[:, None])
        )
        order = order[:, 0].astype(np.int64)
        if sorted(order.tolist()) != list(range(shape[0])):
            raise QualityError(f"internal: no inverse for the transform of {gguf_name}")

        def unpermute(a: np.ndarray) -> np.ndarray:
            out = np.empty_like(a)
            out[order] = a
            return out

        return unpermute
    offset = np.asarray(arch.transform(gguf_name, np.zeros(shape, np.float32)))
    if not np.allclose(
        np.asarray(arch.transform(gguf_name, np.ones(shape, np.float32))) - offset, 1
    ):
        raise QualityError(f"internal: no inverse for the transform of {gguf_name}")
    return lambda a: a - offset


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield mm
        finally:
            with contextlib.suppress(BufferError):  # an array still viewing it: the GC closes it
                mm.close()


def _floats(raw: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return raw.view({"F16": np.float16, "F32": np.float32}[dtype]).astype(np.float32)


def mlx_dequantize(
    packed: np.ndarray, scales: np.ndarray, biases: np.ndarray, bits: int, group_size: int
) -> np.ndarray:
    """MLX's affine quantization undone: ``packed`` uint32 words (little-endian, ``32/bits``
    values each), one float ``scale`` and ``bias`` per group of ``group_size`` values."""
    shifts = (np.arange(32 // bits, dtype=np.uint32) * bits)[None, :]
    rows = packed.reshape(-1, packed.shape[-1])
    q = (rows[..., None] >> shifts) & np.uint32((1 << bits) - 1)
    q = q.reshape(rows.shape[0], -1, group_size).astype(np.float32)
    s = scales.reshape(rows.shape[0], -1, 1).astype(np.float32)
    b = biases.reshape(rows.shape[0], -1, 1).astype(np.float32)
    return (q * s + b).reshape(*packed.shape[:-1], -1)


class _Result:
    """A converted model's weights by checkpoint name (``weights``), and ``shapes``: each
    tensor's logical, numpy-order shape (None: absent; what the result leaves out on purpose,
    a tied lm_head, is not listed)."""

    def __init__(self, source: Path, path: Path, kind: str) -> None:
        self.source, self.path, self.name = source, path, path.name
        self.expected: dict[str, tuple[int, ...]] = {}  # shapes the last check expected

    def shapes(self, names: list[str]) -> dict[str, tuple[int, ...] | None]:
        raise NotImplementedError

    def weights(self, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        raise NotImplementedError

    def check(self, expected: dict[str, tuple[int, ...]]) -> None:
        self.expected = dict(expected)
        for name, shape in self.shapes(list(expected)).items():
            if shape != expected[name]:
                got = "it lacks it" if shape is None else f"it has {shape}"
                raise QualityError(
                    f"{self.name} is not a conversion of {self.source.name}: the source's "
                    f"{name} has shape {expected[name]}, {got}"
                )


# transformers 5 keeps each layer's experts as one 3-D parameter per projection, (experts,
# out, in); the checkpoint (and the GGUF) may hold them otherwise. Gate and up fused in one
# parameter are llama.cpp's two stacked tensors, one after the other along the outputs.
STACKED_EXPERTS = re.compile(
    r"(?:^|\.)layers\.(\d+)\..*experts\.(gate_up_proj|gate_proj|up_proj|down_proj)$"
)
_STACKED_PARTS = {
    "gate_up_proj": (gguf.MODEL_TENSOR.FFN_GATE_EXP, gguf.MODEL_TENSOR.FFN_UP_EXP),
    "gate_proj": (gguf.MODEL_TENSOR.FFN_GATE_EXP,),
    "up_proj": (gguf.MODEL_TENSOR.FFN_UP_EXP,),
    "down_proj": (gguf.MODEL_TENSOR.FFN_DOWN_EXP,),
}


def stacked_expert_names(name: str) -> tuple[str, ...]:
    """The GGUF tensors (llama.cpp's stacked experts) a transformers-5 experts parameter
    ``name`` holds, in order along its outputs; () for any other name."""
    match = STACKED_EXPERTS.search(name)
    if match is None:
        return ()
    layer = int(match[1])
    return tuple(
        f"{gguf.TENSOR_NAMES[t].format(bid=layer)}.weight" for t in _STACKED_PARTS[match[2]]
    )


@dataclass(frozen=True)
class _Where:
    """Where one checkpoint or model tensor lives in the GGUF: ``parts`` (GGUF names, joined
    along axis 1 when several: fused experts), ``expert`` (one expert of a stacked tensor), or
    ``derived`` (re-laid by the converter: found by probing its transform with indices)."""

    parts: tuple[str, ...]
    expert: int | None = None
    derived: bool = False


class _GGUFResult(_Result):
    def __init__(self, source: Path, path: Path, kind: str) -> None:
        super().__init__(source, path, kind)
        from models.gguf import read_gguf
        from models.hf import read_hf_folder

        from .arch import architecture_for
        from .types import OUTPUT_TYPES

        self.arch = architecture_for(read_hf_folder(source))
        try:
            self.info = read_gguf(path)
        except InvalidModelFile as exc:
            raise QualityError(f"{path.name} cannot be measured: {exc}") from None
        otype = OUTPUT_TYPES.get(kind.strip().lower())
        found = self.info.file_type
        if otype is not None and found and found != otype.label:
            raise QualityError(f"{path.name} is a {found} file, not {otype.label}")
        if self.info.architecture != self.arch.arch_name:
            raise QualityError(
                f"{path.name} holds a {self.info.architecture or 'unknown'} model and "
                f"{source.name} is {self.arch.arch_name}: it is not a conversion of this source"
            )
        self.tensors = {t.name: t for t in self.info.tensors}

    def _where(self, name: str) -> _Where | None:
        shape = self.expected.get(name)
        if shape is not None and len(shape) >= 2:
            made = self.arch.derived(name, tuple(shape))
            if made:
                return _Where(tuple(n for n, _ in made), derived=True)
        stacked = stacked_expert_names(name) if self.arch.n_experts else ()
        if stacked and (shape is None or len(shape) == 3):
            return _Where(stacked)
        part = self.arch.expert_part(name)
        if part is not None:
            gname = self.arch.gguf_name(part[0])
            return None if gname is None else _Where((gname,), expert=part[1])
        gname = self.arch.gguf_name(name)
        return None if gname is None else _Where((gname,))

    def _gguf(self, names: list[str]) -> dict[str, _Where]:
        mapped = {n: self._where(n) for n in names}
        return {n: w for n, w in mapped.items() if w is not None}

    def _shape(self, gname: str) -> tuple[int, ...] | None:
        t = self.tensors.get(gname)
        return tuple(reversed(t.shape)) if t else None

    def shapes(self, names: Any) -> dict[str, tuple[int, ...] | None]:
        out: dict[str, tuple[int, ...] | None] = {}
        for name, where in self._gguf(list(names)).items():
            shapes = [self._shape(g) for g in where.parts]
            if any(s is None for s in shapes):
                out[name] = None
            elif where.derived:  # the converter's own shapes for this source shape
                made = dict(self.arch.derived(name, self.expected[name]))
                fits = all(made[g] == s for g, s in zip(where.parts, shapes, strict=True))
                out[name] = self.expected[name] if fits else shapes[0]
            elif where.expert is not None:
                out[name] = shapes[0][1:]  # type: ignore[index]
            elif len(shapes) > 1:
                first = shapes[0]
                assert first is not None
                out[name] = (first[0], sum(s[1] for s in shapes if s), *first[2:])
            else:
                out[name] = shapes[0]
        return out

    def _read(self, mm: mmap.mmap, gname: str) -> np.ndarray:
        import gguf

        t = self.tensors[gname]
        qtype = gguf.GGMLQuantizationType(t.ggml_type)
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        shape = tuple(reversed(t.shape))
        start = self.info.data_offset + t.offset
        raw = np.frombuffer(mm, np.uint8, count=t.n_bytes, offset=start)
        raw = raw.reshape(*shape[:-1], shape[-1] // block * size)
        array = np.asarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32)
        return array.reshape(shape)

    def _underived(self, mm: mmap.mmap, name: str, where: _Where) -> np.ndarray:
        """A tensor the converter cut or re-laid, put back: its transform applied to the
        source's element indices says where each written value came from."""
        shape = tuple(self.expected[name])
        out = np.empty(shape, np.float32)
        index = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
        for gname in where.parts:
            came_from = np.asarray(self.arch.transform(gname, index))
            out.reshape(-1)[came_from.reshape(-1)] = self._read(mm, gname).reshape(-1)
        return out

    def weights(self, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        cached: tuple[str, np.ndarray] | None = None  # one stacked tensor, for its experts
        with _mapped(self.path) as mm:
            for name, where in self._gguf(names).items():
                if where.derived:
                    yield name, self._underived(mm, name, where)
                    continue
                arrays = []
                for gname in where.parts:
                    if cached is None or cached[0] != gname:
                        array = self._read(mm, gname)
                        cached = (gname, _inverse(self.arch, gname, array.shape)(array))
                    arrays.append(cached[1])
                if where.expert is not None:
                    yield name, np.ascontiguousarray(arrays[0][where.expert])
                elif len(arrays) > 1:
                    yield name, np.concatenate(arrays, axis=1)
                else:
                    yield name, arrays[0]
                del arrays


class _MLXResult(_Result):
    def __init__(self, source: Path, path: Path, kind: str) -> None:
        super().__init__(source, path, kind)
        from models.hf import read_hf_folder

        from .mlx import MLX_TYPES

        try:
            self.ckpt = read_hf_folder(path)
        except InvalidModelFile as exc:
            raise QualityError(f"{path.name} cannot be measured: {exc}") from None
        config = self.ckpt.config
        quant = config.get("quantization") or config.get("quantization_config")
        self.bits, self.group = None, 64
        if isinstance(quant, dict) and quant.get("bits"):
            self.bits, self.group = int(quant["bits"]), int(quant.get("group_size", 64))
            if self.bits not in (2, 4, 8) or quant.get("mode", "affine") != "affine":
                raise QualityError(f"{path.name} uses a quantization that cannot be measured")
        mtype = MLX_TYPES.get(kind.strip().lower())
        if mtype is not None and mtype.bits != self.bits:
            has = f"{self.bits}-bit" if self.bits else "unquantized"
            raise QualityError(f"{path.name} holds {has} weights, not {mtype.label}")
        self.tied = bool(config.get("tie_word_embeddings", False))
        self.tensors = self.ckpt.tensors

    def _packed(self, name: str) -> tuple[Any, Any] | None:
        base = name.removesuffix(".weight")
        sc, bi = self.tensors.get(f"{base}.scales"), self.tensors.get(f"{base}.biases")
        if self.tensors[name].dtype == "U32" and sc is not None and bi is not None and self.bits:
            return sc, bi
        return None

    def shapes(self, names: Any) -> dict[str, tuple[int, ...] | None]:
        out: dict[str, tuple[int, ...] | None] = {}
        for name in names:
            t = self.tensors.get(name)
            if t is None:
                if not name.endswith(SKIPPED) and not (self.tied and name == "lm_head.weight"):
                    out[name] = None
                continue
            shape = tuple(t.shape)
            if self._packed(name) is not None:
                shape = (*shape[:-1], shape[-1] * 32 // (self.bits or 32))
            out[name] = shape
        return out

    def weights(self, names: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        with contextlib.ExitStack() as stack:
            maps: dict[Path, mmap.mmap] = {}

            def read(name: str) -> np.ndarray:
                t = self.tensors[name]
                if t.file not in maps:
                    maps[t.file] = stack.enter_context(_mapped(t.file))
                return np.frombuffer(maps[t.file], np.uint8, count=t.n_bytes, offset=t.start)

            for name in names:
                t = self.tensors.get(name)
                if t is None:
                    continue
                packed = self._packed(name)
                if packed is not None:
                    sc, bi = packed
                    array = mlx_dequantize(
                        read(name).view(np.uint32).reshape(t.shape),
                        _floats(read(sc.name), sc.dtype).reshape(sc.shape),
                        _floats(read(bi.name), bi.dtype).reshape(bi.shape),
                        self.bits or 4,
                        self.group,
                    )
                elif t.dtype in ("BF16", "F16", "F32"):
                    array = _floats(read(name), t.dtype).reshape(t.shape)
                else:
                    raise QualityError(f"{self.name}: {name} is stored as {t.dtype}")
                yield name, array
                del array


def open_result(source: Path, result: Path, kind: str) -> _Result:
    if not result.exists():
        raise QualityError(f"{result} does not exist; there is nothing to measure")
    mlx = kind.strip().lower().startswith("mlx")
    if mlx != result.is_dir():
        what = "an MLX folder" if mlx else "a GGUF file"
        raise QualityError(f"{result.name} is not {what}, so it cannot be a {kind} conversion")
    return (_MLXResult if mlx else _GGUFResult)(source, result, kind)
