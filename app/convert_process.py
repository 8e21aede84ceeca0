"""A conversion (and its quality report) in a child process, for the window. No Qt.

Converting imports torch and transformers and keeps the CPU busy for minutes; in the
window's own process that would hold its interpreter lock for long stretches (module
imports, a tokenizer's JSON, garbage collection over a heap grown by those frameworks) and
stall the chat's streaming. In a child the window's process stays small and its event loop
free, and a native crash in the quantizer ends the conversion, not the window.

``convert_in_child(...)`` blocks the calling (worker) thread until the child is done, passes
progress on, and turns a cancel into the child's own cancel (it removes what it wrote).
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from models.work import Progress

POLL_S = 0.1


def _child(conn: Any, stop: Any, db_path: str, job: dict[str, Any]) -> None:
    from models import Cancelled, Catalog
    from models.errors import describe
    from quant import Options, convert_into_library

    def send(kind: str) -> Progress:
        return lambda done, total: conn.send((kind, int(done), int(total)))

    try:
        catalog = Catalog(Path(db_path))
        spec = job.pop("imatrix")
        weights = None
        if spec:  # "auto": measured from the source first; else a llama.cpp file, read
            from quant.imatrix import weights_for

            weights = weights_for(
                spec, job["source"], to=job["to"], progress=send("imatrix"), cancel=stop
            )
        options = Options(report=job.pop("report"), imatrix=weights, imatrix_from=spec)
        result = convert_into_library(
            catalog=catalog,
            options=options,
            progress=send("progress"),
            report_progress=send("report"),
            cancel=stop,
            **job,
        )
        conn.send(("done", result))
    except Cancelled as exc:
        conn.send(("cancelled", str(exc)))
    except BaseException as exc:  # told to the window in words; never lost in the child
        conn.send(("error", describe(exc)))
    finally:
        conn.close()


def convert_in_child(
    folder: Path,
    to: str,
    *,
    db_path: Path,
    name: str | None = None,
    source_id: str | None = None,
    report: bool = True,
    imatrix: str | None = None,
    imatrix_progress: Progress | None = None,
    progress: Progress | None = None,
    report_progress: Progress | None = None,
    cancel: Any = None,
) -> Any:
    """What :func:`quant.convert_into_library` returns, computed in a child
    (spawned: no copy of the window's threads or Qt state). ``imatrix``: ``"auto"`` (an
    importance matrix computed from the source first, its progress to ``imatrix_progress``)
    or a llama.cpp imatrix file's path, as ``fireside convert --imatrix`` takes."""
    from models import Cancelled
    from quant import ConversionError, remove_partials

    mp = multiprocessing.get_context("spawn")
    stop = mp.Event()
    ours, theirs = mp.Pipe(duplex=False)
    job = {
        "source": folder, "to": to, "name": name, "source_id": source_id, "report": report,
        "imatrix": imatrix,
    }  # fmt: skip
    child = mp.Process(
        target=_child, args=(theirs, stop, str(db_path), job), name="fireside-convert", daemon=True
    )
    child.start()
    theirs.close()
    outcome: tuple[Any, ...] | None = None
    try:
        while outcome is None:
            if cancel is not None and cancel.is_set():
                stop.set()  # the child stops and removes its partial output
            if not ours.poll(POLL_S):
                if not child.is_alive() and not ours.poll(0):
                    break
                continue
            try:
                message = ours.recv()
            except EOFError:
                break
            kind = message[0]
            if kind == "progress" and progress:
                progress(message[1], message[2])
            elif kind == "imatrix" and imatrix_progress:
                imatrix_progress(message[1], message[2])
            elif kind == "report" and report_progress:
                report_progress(message[1], message[2])
            elif kind in ("done", "cancelled", "error"):
                outcome = message
    finally:
        ours.close()
        child.join(30)
        if child.is_alive():
            child.kill()
            child.join(5)
    if outcome is None:
        remove_partials(folder, to, name)  # what the child was writing: never a final name
        raise ConversionError(
            f"the conversion stopped unexpectedly (its process ended with code "
            f"{child.exitcode}); nothing was added to your library"
        )
    if outcome[0] == "cancelled":
        raise Cancelled(outcome[1])
    if outcome[0] == "error":
        raise ConversionError(outcome[1])
    return outcome[1]
