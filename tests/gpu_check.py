"""One prepared check of the PyTorch backend on a GPU. Not a pytest file; run it as

    python tests/gpu_check.py CHECKPOINT_DIR [--device cuda] [--tokens 64]

from a copy of the repository, on a machine with torch (CUDA build) and transformers; it
imports only the repository's runtime/ and models/, the standard library, torch,
transformers and numpy (jinja2 is used when present; without it the prompt is plain text).

It loads CHECKPOINT_DIR with the PyTorch backend on the device (bf16 on CUDA by default),
streams --tokens tokens greedily, then compares next-token distributions on the prompt plus
the streamed answer against the same checkpoint in float32 on the CPU (mean/max KL, top-1
agreement), and prints one JSON line. Exit status 0 when the checks pass, 1 otherwise.

On CUDA it then checks the fast path too (``--fast auto``, the default; ``on`` forces it on
any device, ``off`` skips it): the same answer with the static KV cache and the decode step
compiled by ``torch.compile`` (CUDA graphs), its compile time, its decode rate against the
eager one, and whether its greedy text matches eager's; a compile that fell back to eager
is a failure here. Without CUDA it says so ("no CUDA") and skips that part.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUESTION = "Explain in a few sentences why the sky is blue."
PLAIN_PROMPT = (
    "<|im_start|>user\n" + QUESTION + "<|im_end|>\n<|im_start|>assistant\n"
)  # ChatML, SmolLM2's own format, for machines without jinja2
# bf16 weights on the GPU against float32 on the CPU: a small, bounded drift is expected.
KL_LIMITS = {"float32": 1e-3, "float16": 2e-2, "bfloat16": 5e-2}


def _log_softmax(x):  # numpy, float64
    import numpy as np

    x = x.astype("float64")
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _answer(backend, messages, params):
    """The greedy answer's text and last chunk (the chat template when ``messages``)."""
    stream = (
        backend.stream(messages, params) if messages else backend.complete(PLAIN_PROMPT, params)
    )
    pieces, last = [], None
    for chunk in stream:
        pieces.append(chunk.text)
        last = chunk
    return "".join(pieces), last


def _fast_check(record, args, messages, params, eager_answer: str, eager_rate: float) -> dict:
    """The static cache + compiled decode step on the same device: compile time, decode
    rate against eager (both on their second answer), greedy text against eager's."""
    from runtime import BackendOptions
    from runtime.torch_backend import TorchBackend

    out: dict = {}
    t0 = time.perf_counter()
    options = BackendOptions(device=args.device, dtype=args.dtype, extra={"torch_compile": True})
    fast = TorchBackend(record, options)
    fast.load()
    out["load_s"] = round(time.perf_counter() - t0, 2)
    out.update(fast.speed)
    _answer(fast, messages, params)  # the first answer carries the compile notice
    answer, last = _answer(fast, messages, params)
    fast.unload()
    rate = last.timings.generation_tokens_per_s
    out["decode_tokens_per_s"] = round(rate, 1)
    out["eager_decode_tokens_per_s"] = round(eager_rate, 1)
    out["decode_ratio_vs_eager"] = round(rate / eager_rate, 3) if eager_rate else None
    out["same_greedy_text"] = answer == eager_answer
    common = next((i for i, (a, b) in enumerate(zip(answer, eager_answer)) if a != b), None)
    out["common_prefix_chars"] = min(len(answer), len(eager_answer)) if common is None else common
    problems = []
    if not out["compile"]:
        problems.append(f"fast path: compile fell back to eager ({out['compile_failure']})")
    if last.completion_tokens < 1:
        problems.append("fast path: nothing was streamed")
    out["problems"] = problems
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="PyTorch backend check on a GPU")
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--device", default="cuda", help="cuda (default), mps or cpu")
    ap.add_argument("--dtype", default=None, help="default: bf16 on CUDA, fp16 MPS, fp32 CPU")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--fast", choices=("auto", "on", "off"), default="auto",
                    help="check static cache + torch.compile too (auto: on CUDA only)")  # fmt: skip
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from models.records import ModelRecord
    from runtime import GREEDY, BackendOptions
    from runtime.torch_backend import TorchBackend

    report: dict = {"ok": False, "checkpoint": str(args.checkpoint), "device": args.device}
    report["torch"] = torch.__version__
    report["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
    elif args.device.startswith("cuda"):
        report["error"] = (
            f"no CUDA: this torch ({torch.__version__}) sees no CUDA device here; run on a "
            f"machine with a GPU, or pass --device cpu to check the CPU path"
        )
        print(json.dumps(report))
        return 1
    record = ModelRecord(
        id="gpu-check",
        name=args.checkpoint.name,
        format="hf-safetensors",
        path=str(args.checkpoint.resolve()),
        source="imported",
    )
    try:
        t0 = time.perf_counter()
        gpu = TorchBackend(record, BackendOptions(device=args.device, dtype=args.dtype))
        info = gpu.load()
        report["load_s"] = round(time.perf_counter() - t0, 2)
        report["dtype"] = gpu.dtype
        report["backend_device"] = info.device

        params = GREEDY.replace(max_tokens=args.tokens)
        messages = [{"role": "user", "content": QUESTION}]
        if importlib.util.find_spec("jinja2") is not None:
            prompt_text, add_bos = gpu.render(messages)
            report["template"] = "model's chat template (sandboxed jinja2)"
        else:
            messages = None
            prompt_text, add_bos = PLAIN_PROMPT, False
            report["template"] = "plain prompt (jinja2 is not installed)"
        answer, last = _answer(gpu, messages, params)
        report["finish_reason"] = last.finish_reason
        report["streamed_tokens"] = last.completion_tokens
        report["decode_tokens_per_s"] = round(last.timings.generation_tokens_per_s, 1)
        report["time_to_first_token_s"] = round(last.timings.time_to_first_token_s, 3)
        report["answer_start"] = answer[:120]

        fast = args.fast == "on" or (args.fast == "auto" and info.device.startswith("cuda"))
        if fast:
            eager_rate = _answer(gpu, messages, params)[1].timings.generation_tokens_per_s
        ids = gpu.tokenize(prompt_text + answer, add_bos=add_bos)
        with torch.inference_mode():
            x = torch.tensor([ids], device=info.device)
            got = gpu.model(x).logits[0].float().cpu().numpy()
        gpu.unload()
        if info.device.startswith("cuda"):
            torch.cuda.empty_cache()

        cpu = TorchBackend(record, BackendOptions(device="cpu", dtype="float32"))
        cpu.load()
        with torch.inference_mode():
            ref = cpu.model(torch.tensor([ids])).logits[0].float().numpy()
        cpu.unload()

        lp, lq = _log_softmax(ref), _log_softmax(got)
        kl = (np.exp(lp) * (lp - lq)).sum(-1)
        report["positions"] = len(ids)
        report["kl_mean"] = float(kl.mean())
        report["kl_max"] = float(kl.max())
        report["top1_agreement"] = float((lp.argmax(-1) == lq.argmax(-1)).mean())
        limit = KL_LIMITS.get(gpu.dtype, 5e-2)
        report["kl_limit"] = limit
        problems = []
        if not math.isfinite(report["kl_mean"]) or report["kl_mean"] > limit:
            problems.append(f"mean KL {report['kl_mean']:.2e} above {limit:g}")
        if report["top1_agreement"] < 0.9:
            problems.append(f"top-1 agreement {report['top1_agreement']:.3f} below 0.9")
        if report["streamed_tokens"] < 1:
            problems.append("nothing was streamed")
        if args.device.startswith("cuda") and not info.device.startswith("cuda"):
            problems.append(f"asked for CUDA, ran on {info.device}")
        if fast:
            report["fast_path"] = _fast_check(record, args, messages, params, answer, eager_rate)
            problems += report["fast_path"].pop("problems")
        else:
            why = "no CUDA" if not torch.cuda.is_available() else f"--fast {args.fast}"
            report["fast_path"] = (
                f"skipped ({why}): static cache + torch.compile are checked on CUDA"
            )
        report["problems"] = problems
        report["ok"] = not problems
    except Exception as exc:  # report, don't crash: the JSON line is the product
        report["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
