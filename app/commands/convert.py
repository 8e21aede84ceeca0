"""``fireside convert SOURCE --to TYPE``: Hugging Face / PyTorch weights to GGUF, MLX or ONNX,
through ``quant.convert_into_library`` (the window calls the same)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

HELP = (
    "Convert Hugging Face / PyTorch weights to a 4-, 8- or 16-bit GGUF (or MLX, ONNX) and add "
    "it to the library."
)


def register(sub: Any) -> None:
    p = sub.add_parser("convert", help=HELP, description=HELP)
    p.add_argument("source", metavar="SOURCE", help="a library id or a Hugging Face model folder")
    p.add_argument(
        "--to",
        required=True,
        metavar="TYPE",
        # quant.TARGETS has them all (not imported here: the CLI starts without numpy)
        help="output type: gguf-q4_k_m, gguf-q8_0, gguf-f16 ..., mlx-4bit, mlx-8bit, mlx-bf16, "
        "onnx-int8, onnx-int4 (an unknown type is answered with the full list)",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="where to write (default: the library)")
    p.add_argument("--name", help="the name the library shows for the result")
    p.add_argument(
        "--group-size",
        type=int,
        choices=(32, 64, 128),
        metavar="N",
        help="MLX 4/8-bit only: weights per quantization group, 32, 64 (default) or 128",
    )
    p.add_argument(
        "--imatrix",
        metavar="auto|FILE",
        help="GGUF K-quants: quantize guided by an importance matrix, measured from the source "
        "(auto, about a minute for a small model) or read from a llama.cpp imatrix file; "
        "gguf-q3_k_m, gguf-q2_k and gguf-iq4_xs need one",
    )
    p.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        help="skip the quality report (how closely the result follows the source)",
    )
    p.set_defaults(handler=run)


class ProgressBar:
    """A one-line bar with percentage and ETA on stderr (a line per 10% when not a terminal)."""

    def __init__(self, label: str, stream: Any = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.last_decile = -1

    def __call__(self, done: int, total: int) -> None:
        frac = min(1.0, done / total) if total else 0.0
        now = time.monotonic()
        elapsed = now - self.start
        eta = elapsed / frac - elapsed if frac > 0.01 else None
        eta_text = f"ETA {int(eta) // 60}:{int(eta) % 60:02d}" if eta is not None else "ETA --:--"
        if self.tty:
            if now - self.last_draw < 0.1 and frac < 1.0:
                return
            self.last_draw = now
            width = 30
            filled = int(width * frac)
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {frac:6.1%} {eta_text} ")
        else:
            decile = int(frac * 10)
            if decile == self.last_decile:
                return
            self.last_decile = decile
            self.stream.write(f"{self.label}: {frac:.0%} {eta_text}\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _source_folder(ref: str) -> tuple[Path, str | None]:
    """A Hugging Face folder from a path or a library id; also the library id when there is one."""
    from models import Catalog, InvalidModelFile, ModelNotFound

    candidate = Path(ref).expanduser()
    if candidate.is_dir():
        return candidate.resolve(), None
    try:
        record = Catalog().get(ref)
    except ModelNotFound:
        raise ModelNotFound(
            f"{ref!r} is neither a folder nor a model in the library (see: fireside models list)"
        ) from None
    path = Path(record.path)
    if not path.is_dir():
        raise InvalidModelFile(
            f"{record.id} is a {record.format} model; conversion needs Hugging Face weights "
            f"(a folder with config.json and *.safetensors or pytorch_model.bin)"
        )
    return path, record.id


def run(args: argparse.Namespace) -> int:
    from models import Cancelled, Catalog
    from quant import Options, convert_into_library, target

    label = target(args.to).label
    folder, source_id = _source_folder(args.source)
    out = Path(args.output).expanduser() if args.output else None

    cancel = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.set())
    bars = [ProgressBar(f"{folder.name} -> {label}")]

    def report_progress(done: int, total: int) -> None:
        if len(bars) == 1:  # the conversion is done: its bar ends, the report's begins
            bars[0].finish()
            bars.append(ProgressBar("checking quality"))
        bars[-1](done, total)

    try:
        imatrix = None
        if args.imatrix:
            from quant.imatrix import weights_for

            bar = ProgressBar("importance matrix")
            imatrix = weights_for(args.imatrix, folder, to=args.to, progress=bar, cancel=cancel)
            bar.finish()
            bars[0].start = time.monotonic()
        spec = args.imatrix if args.imatrix in (None, "auto") else str(Path(args.imatrix).resolve())
        options = Options(
            group_size=args.group_size, report=args.report, imatrix=imatrix, imatrix_from=spec
        )
        done = convert_into_library(
            folder, args.to, catalog=Catalog(), out=out, name=args.name, options=options,
            source_id=source_id, progress=bars[0], report_progress=report_progress, cancel=cancel,
        )  # fmt: skip
    except Cancelled:
        bars[-1].finish()
        print("fireside: conversion cancelled; nothing was kept", file=sys.stderr)
        return 130
    except BaseException:
        bars[-1].finish()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    bars[-1].finish()
    record = done.record
    if done.note:
        print(f"note: {done.note}", file=sys.stderr)
    print(f"added {record.id}: {record.name} ({record.quantization}) at {record.path}")
    if done.report is not None:
        print(f"quality: {done.report.describe()}")
    elif done.report_problem:
        print(f"note: no quality report ({done.report_problem})", file=sys.stderr)
    print(f"chat with it: fireside chat --model {record.id}")
    return 0
