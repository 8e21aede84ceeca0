"""A converter tool run in a child process (mlx-lm's converter, ONNX Runtime GenAI's model
builder): cancellable (the child is killed), and a native crash or a failure in the tool
never takes the caller down. The child prints the tool's own output as it comes (the caller
turns lines into progress) and ends a failure with one line ``FIRESIDE-ERROR Kind: message``
and exit status 2; here that becomes our error, in words."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.errors import Cancelled, UnsupportedModel

from .errors import CONVERT_ADVICE, ConversionError, NotEnoughSpace

ERROR_PREFIX = "FIRESIDE-ERROR "
STAGE_PREFIX = "FIRESIDE-STAGE "
POLL_S = 0.1
ROOT = str(Path(__file__).resolve().parents[1])


DISK_FULL = "DiskFull"  # the failure line's kind for a full disk (or a file-size limit)


def report_failure(exc: BaseException) -> int:
    """In the child: the failure's line for the parent; the exit status to return."""
    from models.errors import is_disk_full

    text = " ".join(str(exc).split())[:500]
    kind = type(exc).__name__
    cause: BaseException | None = exc
    while cause is not None:  # a full disk, however deep the tool wrapped it
        if is_disk_full(cause):
            kind = DISK_FULL
            break
        cause = cause.__cause__ or cause.__context__
    print(f"{ERROR_PREFIX}{kind}: {text}", flush=True)
    return 2


def run_tool(
    module: str,
    args: list[str],
    *,
    tool: str,
    on_line: Callable[[str], None],
    cancel: Any = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run ``python -m module args``; each output line goes to ``on_line``. ``tool`` names
    the tool for the user ("the MLX converter")."""
    environ = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    environ["PYTHONPATH"] = ROOT + (os.pathsep + environ["PYTHONPATH"] if environ.get("PYTHONPATH") else "")  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-m", module, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, env=environ, cwd=str(cwd or ROOT), text=True, errors="replace",
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=pump, name=f"{module}-output", daemon=True)
    reader.start()
    error = None
    tail: list[str] = []
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("conversion cancelled; nothing was kept")
            try:
                line = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:
                break
            tail = [*tail[-4:], line[:300]]
            if line.startswith(ERROR_PREFIX):
                error = line.removeprefix(ERROR_PREFIX)
            else:
                on_line(line)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        reader.join(timeout=5)
    if child.returncode == 0 and error is None:
        return
    if error is None:
        raise ConversionError(
            f"{tool} stopped unexpectedly (exit status {child.returncode}): "
            + " / ".join(tail[-3:])
            + "; nothing was kept"
        )
    kind, _, text = error.partition(": ")
    if kind == "MemoryError":
        raise ConversionError(f"{tool} ran out of memory; nothing was kept")
    written = "write" in text.lower() or "no space" in text.lower()
    if kind == DISK_FULL or (kind in ("OSError", "RuntimeError") and written):
        raise NotEnoughSpace(
            f"{tool} could not write its output (is the disk full?); nothing was kept. "
            f"{CONVERT_ADVICE}"
        )
    if kind == "NotImplementedError":
        raise UnsupportedModel(f"{tool} cannot convert this model ({text})")
    raise ConversionError(f"{tool} could not convert the model ({text or kind}); nothing was kept")
