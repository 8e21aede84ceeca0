"""The conversions controller: one conversion at a time (Hugging Face / PyTorch weights to GGUF,
MLX or ONNX, through ``quant.convert_into_library`` in a child), then its quality report, then the result in the library; all on a worker through the
one job runner.

The page talks to it by its public methods and signals only. Before any work, ``check`` says
in plain words why a source cannot become a target (unsupported architecture, no tokenizer,
not a checkpoint) from its config and headers alone; ``expected_size`` and ``fit`` say how big
the result will be and whether it will fit this machine's memory. A finished conversion asks
the library to show the new model (``ctx.library_changed``) and offers "Chat with it"; a
cancel leaves nothing behind (the pipeline removes what it wrote). ``start(..., imatrix=)``
takes what ``fireside convert --imatrix`` takes (``auto``: computed from the source first, the
first stretch of the same progress bar; or a llama.cpp file, checked by ``check_imatrix``).
"""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from .context import AppContext
from .worker import Job, Worker, run_job

# What the page offers, in its order: (type name, label).
TARGETS: tuple[tuple[str, str], ...] = (
    ("gguf-q4_k_m", "GGUF Q4_K_M"),
    ("gguf-q5_k_m", "GGUF Q5_K_M"),
    ("gguf-q6_k", "GGUF Q6_K"),
    ("gguf-q8_0", "GGUF Q8_0"),
    ("gguf-q4_0", "GGUF Q4_0"),
    ("gguf-iq4_xs", "GGUF IQ4_XS"),
    ("gguf-q3_k_m", "GGUF Q3_K_M"),
    ("gguf-q2_k", "GGUF Q2_K"),
    ("gguf-f16", "GGUF F16"),
    ("gguf-bf16", "GGUF BF16"),
    ("mlx-4bit", "MLX 4-bit"),
    ("mlx-8bit", "MLX 8-bit"),
    ("mlx-bf16", "MLX BF16"),
    ("onnx-int8", "ONNX int8"),
    ("onnx-int4", "ONNX int4"),
)
TARGET_WORDS = {
    "gguf-q4_k_m": "small and good: the usual choice for llama.cpp",
    "gguf-q5_k_m": "a little larger, a little closer to the original",
    "gguf-q6_k": "close to the original, half the size of 16-bit",
    "gguf-q8_0": "nearly the original, about half the size of 16-bit",
    "gguf-q4_0": "the plainest 4-bit; loses more than Q4_K_M",
    "gguf-iq4_xs": "a little smaller than Q4_K_M; needs an importance matrix",
    "gguf-q3_k_m": "smaller still, loses more; needs an importance matrix",
    "gguf-q2_k": "the smallest, loses the most; needs an importance matrix",
    "gguf-f16": "unquantized 16-bit: the original's quality and size",
    "gguf-bf16": "unquantized bfloat16: the original's weights as they are",
    "mlx-4bit": "small and fast on Apple Silicon",
    "mlx-8bit": "nearly the original, on Apple Silicon",
    "mlx-bf16": "unquantized, on Apple Silicon",
    "onnx-int8": "for ONNX Runtime: fast on many CPUs, close to the original",
    "onnx-int4": "for ONNX Runtime: small, but loses much more than Q4_K_M",
}
# The GGUF types quantized in llama.cpp's mixes, which an importance matrix guides, and those
# made only with one (quant.types: ``mixed`` and ``needs_imatrix``; kept here because that
# module loads gguf and numpy, and the page lists the types while the window starts; a test
# holds the two tables together).
IMATRIX_TARGETS = frozenset(
    ("gguf-q4_k_m", "gguf-q5_k_m", "gguf-q6_k", "gguf-q4_0", "gguf-iq4_xs", "gguf-q3_k_m",
     "gguf-q2_k")
)  # fmt: skip
NEEDS_IMATRIX = frozenset(("gguf-iq4_xs", "gguf-q3_k_m", "gguf-q2_k"))
AUTO = "auto"  # the importance matrix computed from the source
IMATRIX_SHARE = 0.25  # of the progress bar, when the matrix is computed first
CONVERT_SHARE = 0.7  # of what follows, when a quality report follows
FIT_WORDS = {
    "fits": "Fits in memory",
    "tight": "Tight in memory",
    "won't fit": "Won't fit in memory",
}


def family(to: str) -> str:
    """gguf, mlx or onnx: which converter makes ``to``, and the library format of the result."""
    return to.split("-", 1)[0]


def is_mlx(to: str) -> bool:
    return family(to) == "mlx"


def apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def unavailable(to: str) -> str | None:
    """Why this machine cannot make ``to`` (its converter is not installed), with the
    install command; None when it can."""
    from quant.needs import unavailable as why_not  # cheap: the window asks while it starts

    return why_not(to)


def mlx_available() -> bool:
    return unavailable("mlx-4bit") is None


def recommended_target() -> str:
    """MLX 4-bit on Apple Silicon (where mlx-lm is installed), GGUF Q4_K_M elsewhere."""
    return "mlx-4bit" if apple_silicon() and mlx_available() else "gguf-q4_k_m"


def target_label(to: str) -> str:
    return dict(TARGETS).get(to, to)


def check(folder: str | os.PathLike[str], to: str) -> str | None:
    """Why ``folder`` cannot be converted to ``to``, in plain words; None when it can.

    ``quant.check``: config.json, the tokenizer's file names and the safetensors headers only
    (no weights, no torch), cheap enough for the GUI thread.
    """
    from models.errors import FiresideError, describe
    from quant import check as check_source

    try:
        check_source(folder, to)
    except FiresideError as exc:
        return str(exc)
    except OSError as exc:
        return describe(exc)
    return None


def check_imatrix(path: str | os.PathLike[str], folder: Path | None, to: str) -> str | None:
    """Why the llama.cpp imatrix file at ``path`` cannot guide ``folder``'s conversion to
    ``to`` (unreadable, damaged, made for another model), in plain words; None when it can.
    The file is read whole (small: one row of numbers per weight), the model's headers only."""
    from models.errors import FiresideError, describe
    from quant.imatrix import read_imatrix, weights_for

    try:
        if folder is None:
            read_imatrix(path)
        else:
            weights_for(path, folder, to=to)
    except FiresideError as exc:
        return str(exc)
    except OSError as exc:
        return describe(exc)
    return None


def imatrix_words(spec: str | None) -> str:
    """Where a model's importance matrix came from (its provenance's ``imatrix``), in words."""
    if not spec:
        return "none"
    if spec == AUTO:
        return "computed from the source"
    return f"read from {spec}"


def expected_size(folder: str | os.PathLike[str], to: str) -> int:
    """About how many bytes the result will take (``quant.expected_size``)."""
    from quant import expected_size as size_of

    return size_of(folder, to)


def fit(size: int, to: str) -> str:
    """``fits`` / ``tight`` / ``won't fit`` for a result of ``size`` bytes (models.fit)."""
    from models.fit import verdict_for_download

    return verdict_for_download(size, family(to))


@dataclass(frozen=True)
class Request:
    folder: Path
    to: str
    name: str | None = None
    source_id: str | None = None  # the library id of the source, when it has one
    report: bool = True
    imatrix: str | None = None  # "auto" or a llama.cpp imatrix file's path

    @property
    def title(self) -> str:
        return f"{self.name or self.folder.name} → {target_label(self.to)}"


class ConvertController(QObject):
    """``start(folder, to)``, ``cancel()``, ``shutdown()``; state by ``busy``, ``fraction``,
    ``stage`` and ``seconds_left``."""

    busy_changed = Signal(bool)
    progressed = Signal()  # fraction, stage or seconds_left moved
    converted = Signal(object)  # quant.Converted: record, report, notes
    failed = Signal(str)  # what went wrong, in plain words
    cancelled = Signal()  # nothing was kept

    def __init__(self, ctx: AppContext) -> None:
        super().__init__()
        self.ctx = ctx
        self._worker: Worker | None = None
        self.request: Request | None = None
        self.fraction = 0.0
        self.stage = ""
        self.seconds_left: float | None = None
        self._started = 0.0

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def start(
        self,
        folder: str | os.PathLike[str],
        to: str,
        *,
        name: str | None = None,
        source_id: str | None = None,
        report: bool = True,
        imatrix: str | None = None,
    ) -> bool:
        """Begin converting (``imatrix``: ``"auto"`` computes an importance matrix from the
        source first; a path reads a llama.cpp file); False (with the reason on the banner)
        when it cannot start."""
        if self.busy or self.ctx.closing:
            if self.busy:
                self.ctx.tell("A conversion is already running; wait for it or cancel it.")
            return False
        if self.ctx.catalog is None:
            self.ctx.tell("The model library is still opening; try again in a moment.")
            return False
        problem = check(folder, to) or self._imatrix_problem(Path(folder), to, imatrix)
        if problem:
            self.ctx.tell(f"Cannot convert {Path(folder).name}: {problem}", "error")
            return False
        if imatrix and imatrix != AUTO:
            imatrix = str(Path(imatrix).expanduser().resolve())
        request = Request(Path(folder).resolve(), to, name or None, source_id, report, imatrix)
        self.request, self._started = request, time.monotonic()
        self.fraction, self.seconds_left = 0.0, None
        self.stage = self._stage_at(0.0)
        catalog = self.ctx.catalog
        bounds = self._bounds(request)

        def job(j: Job) -> Any:
            from app.convert_process import convert_in_child

            def phase(start: float, end: float) -> Any:  # one stretch of the one bar
                def moved(done: int, total: int) -> None:
                    part = (end - start) * done / total if total else 0.0
                    j.progress(int(1000 * (start + part)), 1000)

                return moved

            # in a child: torch and transformers never load into the window's process
            return convert_in_child(
                request.folder, request.to, db_path=catalog.db_path, name=request.name,
                source_id=request.source_id, report=request.report, imatrix=request.imatrix,
                imatrix_progress=phase(0.0, bounds[0]), progress=phase(*bounds),
                report_progress=phase(bounds[1], 1.0), cancel=j.cancel,
            )  # fmt: skip

        self._worker = run_job(
            job,
            on_progress=self._moved,
            on_done=self._done,
            on_error=self._failed,
            on_finished=self._finished,
            name="fireside-convert",
        )
        self.busy_changed.emit(True)
        self.progressed.emit()
        return True

    @staticmethod
    def _imatrix_problem(folder: Path, to: str, imatrix: str | None) -> str | None:
        label = target_label(to)
        if imatrix and to not in IMATRIX_TARGETS:
            return f"an importance matrix applies only to the GGUF K-quant types, not {label}"
        if not imatrix and to in NEEDS_IMATRIX:
            return (
                f"{label} needs an importance matrix: compute one from the source, or choose a "
                f"llama.cpp imatrix file"
            )
        if imatrix and imatrix != AUTO:
            return check_imatrix(imatrix, folder, to)
        return None

    @staticmethod
    def _bounds(request: Request) -> tuple[float, float]:
        """Where the conversion's part of the progress bar starts and ends: after the
        importance matrix (when it is computed), before the quality report (when one is made)."""
        start = IMATRIX_SHARE if request.imatrix == AUTO else 0.0
        end = start + (1 - start) * CONVERT_SHARE if request.report else 1.0
        return start, end

    def _stage_at(self, fraction: float) -> str:
        request = self.request
        if request is None:
            return ""
        start, end = self._bounds(request)
        if request.imatrix == AUTO and fraction < start:
            return "Computing the importance matrix from the source…"
        if request.report and fraction > end:
            return "Checking the quality…"
        return f"Converting to {target_label(request.to)}…"

    def cancel(self) -> None:
        """Stop the conversion (or its report); whatever it wrote is removed."""
        if self._worker is not None and not self._worker.cancelled:
            self._worker.cancel()
            self.stage, self.seconds_left = "Cancelling…", None
            self.progressed.emit()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running job ends (tests and shutdown only)."""
        worker = self._worker
        return worker is None or worker.wait(timeout)

    def shutdown(self, timeout: float = 30.0) -> None:
        """The window is closing: cancel, and wait for the job to clean up after itself."""
        worker = self._worker
        if worker is not None:
            worker.cancel()
            worker.wait(timeout)

    # -- from the worker ------------------------------------------------------------------
    def _moved(self, permille: int, total: int) -> None:
        if self._worker is None or self._worker.cancelled or self.request is None:
            return
        self.fraction = min(1.0, permille / total)
        self.stage = self._stage_at(self.fraction)
        elapsed = time.monotonic() - self._started
        if self.fraction >= 0.03 and elapsed > 1.0:
            self.seconds_left = elapsed * (1 - self.fraction) / self.fraction
        self.progressed.emit()

    def _done(self, result: Any) -> None:
        self.fraction, self.seconds_left, self.stage = 1.0, None, "Done"
        if self.ctx.closing:
            return
        record = result.record
        self.converted.emit(result)
        self.ctx.library_changed.emit(record.id)
        said = f"{record.name} ({record.quantization}) is in your library."
        if result.report is not None:
            said += " " + result.report.describe()
        model_id = record.id
        self.ctx.tell(said, "info", "Chat with it", lambda: self.ctx.use_model.emit(model_id))

    def _failed(self, exc: BaseException) -> None:
        from models import Cancelled
        from models.errors import describe

        self.seconds_left = None
        if isinstance(exc, Cancelled):
            self.stage = "Cancelled; nothing was kept."
            if not self.ctx.closing:
                self.cancelled.emit()
            return
        self.stage = "Stopped."
        if self.ctx.closing:
            return
        title = self.request.title if self.request else "the model"
        self.failed.emit(describe(exc))
        self.ctx.error(f"Could not convert {title}", exc)

    def _finished(self) -> None:
        self._worker = None
        if not self.ctx.closing:
            self.busy_changed.emit(False)
            self.progressed.emit()
