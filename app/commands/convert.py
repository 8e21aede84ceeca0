"""``fireside convert SOURCE --to TYPE``: Hugging Face / PyTorch weights to GGUF (or MLX)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

HELP = (
    "Convert Hugging Face / PyTorch weights to a 4-, 8- or 16-bit GGUF and add it to the library."
)
GGUF_TYPES = (
    "gguf-f16",
    "gguf-bf16",
    "gguf-q8_0",
    "gguf-q6_k",
    "gguf-q5_k_m",
    "gguf-q4_k_m",
    "gguf-q4_0",
)


def register(sub: Any) -> None:
    p = sub.add_parser("convert", help=HELP, description=HELP)
    p.add_argument("source", metavar="SOURCE", help="a library id or a Hugging Face model folder")
    p.add_argument(
        "--to",
        required=True,
        metavar="TYPE",
        help=f"output type: {', '.join(GGUF_TYPES)} (or mlx-4bit, mlx-8bit, mlx-bf16)",
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
    from models.paths import models_dir
    from models.records import slugify
    from quant import ConversionError

    folder, source_id = _source_folder(args.source)
    is_mlx = args.to.strip().lower().startswith("mlx-")
    if is_mlx:
        from quant.mlx import mlx_type

        label = mlx_type(args.to).label
        suffix = ""
    else:
        from quant import output_type

        if args.group_size is not None:
            raise ConversionError("--group-size applies to the MLX types only")
        label = output_type(args.to).label
        suffix = ".gguf"
    base = slugify(args.name or folder.name)
    owned = args.output is None
    out = (
        Path(args.output).expanduser()
        if args.output
        else models_dir() / f"{base}-{slugify(label)}{suffix}"
    )

    cancel = threading.Event()
    interrupted = False

    def on_sigint(*_: Any) -> None:
        nonlocal interrupted
        interrupted = True
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    bar = ProgressBar(f"{folder.name} -> {label}")
    try:
        if is_mlx:
            from quant.mlx import convert_mlx, mlx_record

            result = convert_mlx(
                folder, args.to, out, progress=bar, cancel=cancel, group_size=args.group_size
            )
            bar.finish()
            if result.note:
                print(f"note: {result.note}", file=sys.stderr)
            record = mlx_record(result, folder, name=args.name)
        else:
            from quant import convert

            path = convert(folder, args.to, out, progress=bar, cancel=cancel, name=args.name)
            bar.finish()
            record = gguf_record(path, folder, args.to, name=args.name)
    except Cancelled:
        bar.finish()
        print("fireside: conversion cancelled; nothing was kept", file=sys.stderr)
        return 130
    except BaseException:
        bar.finish()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        return 130
    if source_id:
        record = record.replace(provenance={**record.provenance, "source_id": source_id})
    record = Catalog().add(record.replace(owned=owned))
    print(f"added {record.id}: {record.name} ({record.quantization}) at {record.path}")
    print(f"chat with it: fireside chat --model {record.id}")
    return 0


def gguf_record(path: Path, source: Path, to: str, name: str | None = None) -> Any:
    """The library record of a converted GGUF, with its provenance (not yet registered)."""
    from models import describe
    from quant import CONVERTER_VERSION, output_type

    record = describe(path, source="converted")
    return record.replace(
        name=name or record.name,
        provenance={
            "origin": str(source),
            "converter": CONVERTER_VERSION,
            "type": output_type(to).name,
        },
    )
