"""Shared by the quant tests: next-token distributions from llama.cpp and their comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def kl_and_top1(ref_logits: np.ndarray, got_logits: np.ndarray) -> tuple[float, float]:
    """Mean KL(ref || got) over positions, and the share of positions with the same argmax."""
    p, q = log_softmax(ref_logits), log_softmax(got_logits)
    kl = (np.exp(p) * (p - q)).sum(-1)
    return float(kl.mean()), float((ref_logits.argmax(-1) == got_logits.argmax(-1)).mean())


def llama_logits(gguf_path: Path, token_lists: list[list[int]]) -> list[np.ndarray]:
    """llama.cpp's logits at every position of each token list (one model load)."""
    import llama_cpp

    longest = max(len(t) for t in token_lists)
    llm = llama_cpp.Llama(
        str(gguf_path),
        n_ctx=max(64, longest + 8),
        n_batch=512,
        logits_all=True,
        verbose=False,
        n_threads=2,
    )
    try:
        out = []
        for tokens in token_lists:
            llm.reset()
            llm.eval(tokens)
            out.append(np.array(llm.scores[: len(tokens)], dtype=np.float32))
        return out
    finally:
        llm.close()
