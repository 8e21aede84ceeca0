"""``fireside convert SOURCE --to TYPE``: Hugging Face / PyTorch weights to GGUF (or MLX)."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.work import Progress

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
        help=f"output type: {', '.join(GGUF_TYPES)} (or mlx-4bit, mlx-8bit, mlx-bf16, "
        "onnx-int8, onnx-int4)",
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


def output_label(to: str) -> tuple[str, str]:
    """(the library's label of type ``to``, the output's file suffix); unknown types refused."""
    if to.strip().lower().startswith("mlx-"):
        from quant.mlx import mlx_type

        return mlx_type(to).label, ""
    if to.strip().lower().startswith("onnx-"):
        from quant.onnx import onnx_type

        return onnx_type(to).label, ""
    from quant import output_type

    return output_type(to).label, ".gguf"


def library_output(folder: Path, to: str, name: str | None = None) -> Path:
    """A free place in the library's models folder for ``folder`` converted to ``to``."""
    from models.paths import models_dir
    from models.records import slugify

    label, suffix = output_label(to)
    base = f"{slugify(name or folder.name)}-{slugify(label)}"
    out, n = models_dir() / f"{base}{suffix}", 2
    while out.exists():
        out, n = models_dir() / f"{base}-{n}{suffix}", n + 1
    return out


@dataclass
class Converted:
    record: Any  # the ModelRecord, registered
    report: Any = None  # the QualityReport, or None
    note: str | None = None  # something the user should know about the result
    report_problem: str | None = None  # why there is no report, in plain words


def convert_into_library(
    folder: Path,
    to: str,
    *,
    catalog: Any,
    out: Path | None = None,
    name: str | None = None,
    group_size: int | None = None,
    source_id: str | None = None,
    report: bool = True,
    progress: Progress | None = None,
    report_progress: Progress | None = None,
    cancel: Any = None,
) -> Converted:
    """Convert, measure the quality (``report``), register: the one pipeline of the CLI and the
    window. A cancel at any point (``cancel.is_set()``) leaves nothing behind; a report that
    cannot be made leaves the model registered without one (``report_problem`` says why)."""
    from models import Cancelled
    from models.errors import describe
    from quant import ConversionError

    is_mlx = to.strip().lower().startswith("mlx-")
    if not is_mlx and group_size is not None:
        raise ConversionError("--group-size applies to the MLX types only")
    owned = out is None
    out = out or library_output(folder, to, name)
    note = None
    if is_mlx:
        from quant.mlx import convert_mlx, mlx_record

        result = convert_mlx(
            folder, to, out, progress=progress, cancel=cancel, group_size=group_size
        )
        note, path = result.note, result.path
        record = mlx_record(result, folder, name=name)
    elif to.strip().lower().startswith("onnx-"):
        from quant.onnx import convert_onnx, onnx_record

        path = convert_onnx(folder, to, out, progress=progress, cancel=cancel)
        record = onnx_record(path, folder, to, name=name)
    else:
        from quant import convert

        path = convert(folder, to, out, progress=progress, cancel=cancel, name=name)
        record = gguf_record(path, folder, to, name=name)
    quality, problem = None, None
    if report:
        from quant.quality import measure

        if to.strip().lower().startswith("onnx-"):
            from quant.onnx import measure_onnx as measure
        try:
            quality = measure(folder, path, to, progress=report_progress, cancel=cancel)
        except Cancelled:
            _remove(path)
            raise Cancelled("conversion cancelled; nothing was kept") from None
        except Exception as exc:  # the model is fine; only its report is missing
            problem = describe(exc)
    if cancel is not None and cancel.is_set():
        _remove(path)
        raise Cancelled("conversion cancelled; nothing was kept")
    provenance = dict(record.provenance)
    if source_id:
        provenance["source_id"] = source_id
    if quality is not None:
        provenance["quality"] = quality.to_dict()
    try:
        record = catalog.add(record.replace(owned=owned, provenance=provenance))
    except BaseException:
        if owned:
            _remove(path)
        raise
    return Converted(record, quality, note, problem)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    from models import Cancelled, Catalog

    folder, source_id = _source_folder(args.source)
    label, _ = output_label(args.to)
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
        done = convert_into_library(
            folder, args.to, catalog=Catalog(), out=out, name=args.name,
            group_size=args.group_size, source_id=source_id, report=args.report,
            progress=bars[0], report_progress=report_progress, cancel=cancel,
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
