"""Bringing models into the library and taking them out: import (link or copy) and remove.

``import_model`` is what ``fireside models import`` and the window's drag-and-drop call.
Everything is validated before anything is registered or copied; a copy goes to a temporary
folder inside the library, with progress and cancellation, and is renamed into place only
when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths
from .atomic import fsync_dir
from .catalog import Catalog
from .errors import Cancelled, DiskFull, FiresideError, InvalidModelFile, LibraryError
from .errors import describe as describe_error
from .file_hashes import HASHED_FORMATS, file_hashes
from .gguf_model import read_gguf_model
from .recognize import _raise_empty, check_exists, describe, find_models, kind_of
from .records import ModelRecord
from .space import require_space
from .work import CancelFlag, Progress

COPY_CHUNK = 8 * 1024 * 1024
DISK_MARGIN = 256 * 1024 * 1024  # leave this much free after a copy
IMPORT_MODES = ("link", "copy")


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        paths.canonical_path(path).relative_to(paths.canonical_path(folder))
    except ValueError:
        return False
    return True


def default_mode(path: Path) -> str:
    """Link what already lives in the library or another app's store; copy anything else."""
    from .stores import store_roots

    if _is_inside(path, paths.models_dir()):
        return "link"
    return "link" if any(_is_inside(path, root) for root in store_roots()) else "copy"


def model_paths(path: Path) -> list[Path]:
    """The models at ``path``: itself, or each model found in a folder of several."""
    check_exists(path)
    kind = kind_of(path)
    if kind in ("gguf", "folder-model"):
        return [path]
    if kind == "collection":
        found, _ = find_models(path)
        if not found:
            _raise_empty(path)
        return found
    raise InvalidModelFile(
        f"{path.name} is not a model Fireside recognises (expected a .gguf file, the first part "
        "of a split GGUF, or a folder with config.json and weights)"
    )


def import_model(
    path: str | os.PathLike[str],
    *,
    mode: str | None = None,
    name: str | None = None,
    catalog: Catalog | None = None,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
) -> list[ModelRecord]:
    """Validate and register the model(s) at ``path``; returns their records.

    ``mode``: "link" registers in place, "copy" copies into the library (progress, cancel,
    sha256 recorded); None picks link for files already in the library or another app's store
    and copy otherwise. Every model is validated before anything happens: if one is invalid,
    nothing is registered or copied. Importing something already in the library returns the
    existing record instead of making a second one.
    """
    if mode not in (None, *IMPORT_MODES):
        raise LibraryError(f"unknown import mode {mode!r}; use 'link' or 'copy'")
    source = Path(path).expanduser()
    catalog = catalog or Catalog()
    found = model_paths(source)

    # Validate everything first; collect the problems so the user sees them all at once.
    described: list[tuple[Path, ModelRecord]] = []
    problems: list[str] = []
    for p in found:
        try:
            described.append((p, describe(p, source="imported")))
        except FiresideError as exc:
            problems.append(str(exc))
    if problems:
        if len(found) == 1:
            raise InvalidModelFile(problems[0])
        raise InvalidModelFile(
            f"{len(problems)} of the {len(found)} models in {source} cannot be imported, so "
            "none was: " + "; ".join(problems)
        )

    chosen = mode or default_mode(source)
    results: list[ModelRecord] = []
    todo: list[tuple[Path, ModelRecord, str | None]] = []
    for p, record in described:
        wanted = _name_for(name, record, len(described))
        existing = catalog.find_by_origin(p)
        if existing:
            rec = existing[0]
            if wanted and rec.name != wanted:
                rec = catalog.rename(rec.id, wanted)
            results.append(rec)
            continue
        todo.append((p, record, wanted))

    if chosen == "copy" and todo:
        total = sum(_copy_size(p, r) for p, r, _ in todo)
        _check_space(total)
        done = [0]
        for p, record, wanted in todo:
            results.append(_copy_in(p, record, wanted, catalog, total, done, progress, cancel))
    else:
        for p, record, wanted in todo:
            owned = _is_inside(p, paths.models_dir())
            provenance = {**record.provenance, "mode": "link"}
            if record.format in HASHED_FORMATS:  # its runtime never checks its weights: we do
                provenance["files"] = file_hashes(p)
            rec = record.replace(owned=owned, provenance=provenance)
            if wanted:
                rec = rec.replace(name=wanted)
            results.append(catalog.add(rec))
    return results


def _name_for(name: str | None, record: ModelRecord, count: int) -> str | None:
    if not name or not name.strip():
        return None
    return name.strip() if count == 1 else f"{name.strip()} ({record.name})"


# -- copying ----------------------------------------------------------------------------------
def _files_of(path: Path, record: ModelRecord) -> list[Path]:
    """The files that make up a model: the GGUF (all parts), or a folder's top-level files."""
    if record.format in ("gguf", "gguf-split"):
        return [info.path for info in read_gguf_model(path).parts]
    return sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))


def _copy_size(path: Path, record: ModelRecord) -> int:
    return sum(f.stat().st_size for f in _files_of(path, record))


def _check_space(total: int) -> None:
    require_space(
        paths.models_dir(),
        total + DISK_MARGIN,
        doing="copying the model",
        advice="Free some space, or import with --link to use the files where they are.",
        error=DiskFull,
    )


def _copy_file(
    src: Path,
    dst: Path,
    total: int,
    done: list[int],
    progress: Progress | None,
    cancel: CancelFlag | None,
) -> str:
    digest = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(dst, "xb") as fout:
            while True:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("the import was cancelled; nothing was added")
                chunk = fin.read(COPY_CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                fout.write(chunk)
                done[0] += len(chunk)
                if progress:
                    progress(done[0], total)
            fout.flush()
            os.fsync(fout.fileno())
    except OSError as exc:
        raise LibraryError(f"copying {src.name} failed: {describe_error(exc)}") from None
    return digest.hexdigest()


def _copy_in(
    src: Path,
    record: ModelRecord,
    name: str | None,
    catalog: Catalog,
    total: int,
    done: list[int],
    progress: Progress | None,
    cancel: CancelFlag | None,
) -> ModelRecord:
    library = paths.models_dir()
    model_id = catalog.unique_id(record.id)
    tmp = Path(tempfile.mkdtemp(prefix=f".{model_id}.", suffix=".partial", dir=library))
    try:
        hashes: dict[str, str] = {}
        for f in _files_of(src, record):
            hashes[f.name] = _copy_file(f, tmp / f.name, total, done, progress, cancel)
        fsync_dir(tmp)
        final_dir = library / model_id
        n = 2
        while final_dir.exists():
            final_dir = library / f"{model_id}-{n}"
            n += 1
        os.replace(tmp, final_dir)
        fsync_dir(library)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model_path = final_dir / src.name if src.is_file() else final_dir
    provenance: dict[str, Any] = {"origin": str(paths.canonical_path(src)), "mode": "copy"}
    if src.is_file():
        provenance["sha256"] = hashes[src.name]
    provenance["files"] = hashes
    if "sha256" in provenance:
        same = catalog.find_by_sha256(provenance["sha256"])
        if same is not None:  # the same bytes are already in the library under another path
            shutil.rmtree(final_dir, ignore_errors=True)
            return same
    try:
        copied = describe(model_path, source="imported")
    except FiresideError:
        shutil.rmtree(final_dir, ignore_errors=True)
        raise
    rec = copied.replace(
        id=model_id,
        name=name or record.name,
        owned=True,
        provenance=provenance,
    )
    try:
        return catalog.add(rec)
    except BaseException:
        shutil.rmtree(final_dir, ignore_errors=True)
        raise


# -- removing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Removal:
    record: ModelRecord
    deleted_files: bool
    folder: Path | None  # what was deleted, when files were

    def message(self) -> str:
        if self.deleted_files:
            return f"removed {self.record.name} and deleted its files ({self.folder})"
        return (
            f"removed {self.record.name} from the library; its files were left where they are "
            f"({self.record.path})"
        )


def owned_folder(record: ModelRecord) -> Path | None:
    """The folder inside the library that holds ``record``'s files, if the library owns them."""
    if not record.owned or record.format == "remote":
        return None
    library = paths.canonical_path(paths.models_dir())
    try:
        rel = paths.canonical_path(record.path).relative_to(library)
    except ValueError:
        return None
    if not rel.parts:
        return None
    return library / rel.parts[0]


def remove_model(model_id: str, *, catalog: Catalog | None = None) -> Removal:
    """Unregister a model; delete its files only when the library owns them."""
    catalog = catalog or Catalog()
    record = catalog.get(model_id)
    if record.source == "bundled":
        raise LibraryError(
            f"{record.name} ships with Fireside and cannot be removed (it takes no extra space)"
        )
    folder = owned_folder(record)
    if folder is None:
        catalog.unregister(model_id)
        return Removal(record, False, None)
    # Move aside first (atomic), then forget, then delete: never a record without its files.
    trash = folder.with_name(f".{folder.name}.removing")
    with contextlib.suppress(FileNotFoundError):
        os.replace(folder, trash)
    try:
        catalog.unregister(model_id)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(trash, folder)
        raise
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            trash.unlink()
    return Removal(record, True, folder)
