"""What the window asks of the library, in one place (Qt-free).

The library's operations live in ``models``; this module only adapts them for the faces and
degrades gracefully while a piece (the memory-fit estimate) is not there yet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import Catalog, ModelRecord
from models.sizes import size_cell


@dataclass(frozen=True)
class Fit:
    verdict: str  # short: "fits", "tight", "too big", or "unknown"
    detail: str  # a sentence for a tooltip


def fit_of(record: ModelRecord) -> Fit:
    """The memory-fit verdict for ``record`` (``models.fit.estimate``). Reads the model's
    header, so the window calls it off the GUI thread."""
    try:
        from models.fit import estimate
    except ImportError:
        return Fit("unknown", "the memory estimate is not available")
    try:
        result = estimate(record)
    except Exception as exc:  # an estimate must never break the picker
        return Fit("unknown", f"could not estimate: {exc}")
    notes = "; ".join(result.notes)
    return Fit(result.verdict, result.detail + (f" ({notes})" if notes else ""))


def describe_record(record: ModelRecord) -> str:
    """One line for the model picker: name · format quantization · size · fit."""
    fmt = record.format.upper() if record.format.startswith("gguf") else record.format
    quant = f" {record.quantization}" if record.quantization else ""
    return f"{record.name} · {fmt}{quant} · {size_cell(record.size_bytes)}"


def import_model(
    path: str | os.PathLike[str],
    mode: str,
    catalog: Catalog,
    progress: Any = None,
    cancel: Any = None,
) -> list[ModelRecord]:
    from models.library import import_model as _import

    return _import(Path(path), mode=mode, catalog=catalog, progress=progress, cancel=cancel)


def remove_model(model_id: str, catalog: Catalog) -> str:
    from models.library import remove_model as _remove

    return _remove(model_id, catalog=catalog).message()


def scan_stores(catalog: Catalog) -> str:
    from models.stores import scan

    result = scan(catalog)
    parts = [f"found {len(result.added)} new model(s)"]
    if result.known:
        parts.append(f"{len(result.known)} already in the library")
    if result.skipped:
        parts.append(f"{len(result.skipped)} skipped")
    where = ", ".join(result.searched) if result.searched else "no model folders of other apps"
    return "Scan " + ", ".join(parts) + f" (searched: {where})."


def reveal_folder(record: ModelRecord) -> Path:
    path = Path(record.path)
    return path if path.is_dir() else path.parent
