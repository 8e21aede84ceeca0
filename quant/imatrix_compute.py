"""An importance matrix measured from the source checkpoint itself (``--imatrix auto``).

The checkpoint runs in transformers (float32, CPU) over the built-in calibration text
(quant.calibration), in chunks of up to 512 tokens; every ``F.linear`` call is watched
(a torch function mode) and the squared activations entering each weight are summed per
input column, as llama.cpp's imatrix tool does. Weights are found by their storage, so a
tied output projection counts for the token embedding (llama.cpp's ``token_embd``), and a
slice of a stacked experts parameter (transformers 5 keeps each layer's experts as one 3-D
tensor) counts for its expert's row of llama.cpp's stacked ``ffn_*_exps`` tensor, over the
tokens the router sent it. Names are the converter's own (quant.arch), so the matrix lines
up with the GGUF it guides. torch and transformers load lazily.
"""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path
from typing import Any

from models.errors import Cancelled, UnsupportedModel
from models.work import Progress

from .calibration import DATASET_NAME, calibration_texts
from .errors import ConversionError
from .imatrix import ImportanceMatrix

CHUNK_TOKENS = 512
# transformers 5's stacked experts: one 3-D parameter per projection (experts, out, in)
_STACKED = re.compile(
    r"(?:^|\.)layers\.(\d+)\..*experts\.(gate_up_proj|gate_proj|up_proj|down_proj)$"
)
_STACKED_TARGETS = {
    "gate_up_proj": ("ffn_gate_exps", "ffn_up_exps"),
    "gate_proj": ("ffn_gate_exps",),
    "up_proj": ("ffn_up_exps",),
    "down_proj": ("ffn_down_exps",),
}


class _Target:
    """Where one weight's input statistics go: GGUF tensor names (gate and up share an input),
    the matrix count (experts; 1 for a plain weight), the expert this weight is (or -1: a
    stacked parameter, the expert found from the slice's offset), the stride between experts."""

    def __init__(self, names: tuple[str, ...], n_mat: int, expert: int, stride: int = 0):
        self.names, self.n_mat, self.expert, self.stride = names, n_mat, expert, stride


def _targets(model: Any, arch: Any) -> tuple[dict[int, _Target], dict[int, _Target]]:
    """(2-D weights by storage address, stacked experts parameters by storage address)."""
    plain: dict[int, _Target] = {}
    stacked: dict[int, _Target] = {}
    for name, p in model.named_parameters():  # tied parameters once, by their first name
        if p.ndim == 3:
            match = _STACKED.search(name)
            if match is not None:
                layer, proj = match[1], match[2]
                names = tuple(f"blk.{layer}.{t}.weight" for t in _STACKED_TARGETS[proj])
                stride = p.stride(0) * p.element_size()
                stacked[p.data_ptr()] = _Target(names, p.shape[0], -1, stride)
            continue
        if p.ndim != 2:
            continue
        part = arch.expert_part(name)  # older layouts: one module per expert
        try:
            gguf_name = arch.gguf_name(part[0] if part else name)
        except UnsupportedModel:
            continue  # a tensor the converter does not write: nothing to guide
        if gguf_name is None:
            continue
        if part is not None:
            plain[p.data_ptr()] = _Target((gguf_name,), arch.n_experts, part[1])
        else:
            plain[p.data_ptr()] = _Target((gguf_name,), 1, 0)
    return plain, stacked


def _chunks(tokenizer: Any, limit: int) -> list[list[int]]:
    text = "\n\n".join(calibration_texts(tokenizer))
    ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    bos = getattr(tokenizer, "bos_token_id", None)
    size = max(16, min(CHUNK_TOKENS, limit) - (1 if bos is not None else 0))
    pieces = [ids[i : i + size] for i in range(0, len(ids), size)]
    if len(pieces) > 1 and len(pieces[-1]) < size // 4:
        pieces.pop()  # a scrap at the end adds little
    return [([bos] if bos is not None else []) + p for p in pieces]


def compute_imatrix(
    source: str | os.PathLike[str],
    progress: Progress | None = None,
    cancel: Any = None,
) -> ImportanceMatrix:
    """Measure the importance matrix of the Hugging Face checkpoint ``source`` on the built-in
    calibration text. ``progress(chunks done, chunks)``; a cancel (``cancel.is_set()``) stops
    within one layer. Raises UnsupportedModel without torch, ConversionError in plain words."""
    from models.hf import read_hf_folder

    from .arch import architecture_for
    from .quality import _load_source, _need_torch

    folder = Path(source).expanduser().resolve()
    arch = architecture_for(read_hf_folder(folder))  # unsupported: refused before any work
    torch = _need_torch()
    from torch.overrides import TorchFunctionMode

    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("the importance matrix was cancelled; nothing was kept")

    check_cancel()
    tokenizer, model = _load_source(folder)
    if hasattr(model, "set_experts_implementation"):
        try:  # the plain loop over experts: each expert's weight is seen with its tokens
            model.set_experts_implementation("eager")
        except (ValueError, AttributeError, NotImplementedError):
            pass
    limit = int(getattr(model.config, "max_position_embeddings", CHUNK_TOKENS) or CHUNK_TOKENS)
    chunks = _chunks(tokenizer, limit)
    plain, stacked = _targets(model, arch)
    sums: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    linear = torch.nn.functional.linear
    # input-major experts (gpt-oss: x @ W[e], W[e] of shape (in, out)) multiply instead
    matmuls = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__)

    def record(target: _Target, expert: int, x: Any) -> None:
        rows = x.reshape(-1, x.shape[-1]).float()
        squares = (rows * rows).sum(0).double()
        for name in target.names:
            if name not in sums:
                sums[name] = torch.zeros(target.n_mat, rows.shape[1], dtype=torch.float64)
                counts[name] = torch.zeros(target.n_mat, dtype=torch.float64)
            sums[name][expert] += squares
            counts[name][expert] += rows.shape[0]

    class Watch(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is linear:
                x = args[0] if args else kwargs["input"]
                w = args[1] if len(args) > 1 else kwargs["weight"]
                target = plain.get(w.data_ptr())
                if target is not None:
                    record(target, target.expert, x)
                elif w._base is not None:
                    base = stacked.get(w._base.data_ptr())
                    if base is not None:
                        record(base, (w.data_ptr() - w._base.data_ptr()) // base.stride, x)
                check_cancel()
            elif func in matmuls and len(args) == 2:
                x, w = args
                if getattr(w, "_base", None) is not None and w.ndim == 2:
                    base = stacked.get(w._base.data_ptr())
                    if base is not None and x.shape[-1] == w.shape[0]:
                        record(base, (w.data_ptr() - w._base.data_ptr()) // base.stride, x)
            return func(*args, **kwargs)

    # The output projection's input is the body's last hidden state: run the body alone and
    # record it, rather than computing a vocabulary's worth of logits nobody reads.
    body, head = getattr(model, "base_model", model), model.get_output_embeddings()
    head_target = plain.get(head.weight.data_ptr()) if head is not None else None
    if body is model or head_target is None:
        body, head_target = model, None
    if progress:
        progress(0, len(chunks))
    try:
        with torch.inference_mode():
            for i, ids in enumerate(chunks, 1):
                check_cancel()
                with Watch():
                    out = body(torch.tensor([ids]))
                if head_target is not None:
                    record(head_target, 0, out[0])
                del out
                if progress:
                    progress(i, len(chunks))
    finally:
        del model
        gc.collect()
    if not sums:
        raise ConversionError(
            "no weight of this model was seen during calibration, so no importance matrix "
            "could be made; convert without --imatrix"
        )
    return ImportanceMatrix(
        sums={n: s.numpy() for n, s in sums.items()},
        counts={n: c.numpy() for n, c in counts.items()},
        chunks=len(chunks),
        chunk_size=max(len(c) for c in chunks),
        datasets=(DATASET_NAME,),
    )


def coverage(matrix: ImportanceMatrix, names: list[str]) -> list[str]:
    """Of ``names`` (GGUF tensors to be quantized), those the matrix has no entry for."""
    return [n for n in names if n not in matrix.sums]
