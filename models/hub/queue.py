"""The download queue: what the user asked to bring home from the Hub, kept across restarts.

Plain Python (no Qt): a face runs one entry at a time with :meth:`DownloadQueue.run` on a
worker thread and calls :meth:`pause`, :meth:`resume` and :meth:`cancel` from its own thread.
The entries live in ``downloads.json`` in the data directory, rewritten atomically on every
change of state (not on every byte). The bytes themselves are the state of a transfer: a
file being fetched is ``blobs/<etag>.incomplete`` in the Hugging Face cache (see
:mod:`.download`), so a pause, a quit or a crash keeps it and the next run asks the Hub only
for the rest (an HTTP Range request). Every file is checked against the Hub's SHA-256 before
it gets its final name; a finished download is registered in the library.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from models.work import Progress

from .. import paths
from ..atomic import write_bytes_atomic
from ..errors import Cancelled
from .cache_layout import repo_cache_folder
from .download import PullPlan, library_folder, plan_from_listing, pull_plan
from .errors import download_failure, failure_kind
from .listing import RemoteFile, gguf_variants
from .net import fetch_listing, require_online

QUEUED, DOWNLOADING, PAUSED, FAILED, DONE, CANCELLED = (
    "queued", "downloading", "paused", "failed", "done", "cancelled",
)  # fmt: skip
STATES = (QUEUED, DOWNLOADING, PAUSED, FAILED, DONE, CANCELLED)
FINISHED = (DONE, CANCELLED)
FILE_NAME = "downloads.json"
_VERSION = 1


@dataclass(frozen=True)
class Entry:
    """One download: a GGUF quantization (``quant`` names it) or a model folder (None)."""

    id: str
    repo: str
    label: str  # what the user sees: "Q4_K_M", or "model" for a folder
    quant: str | None = None  # the variant's name for REPO:QUANT; None for a model folder
    ref: str = "main"  # what was asked for (branch, tag or commit)
    revision: str | None = None  # the commit, once the Hub has been asked
    kind: str | None = None  # gguf | mlx | safetensors | pytorch, once planned
    files: tuple[dict[str, Any], ...] = ()  # path, size, sha256, blob_id, once planned
    target: str | None = None  # the library folder it lands in
    state: str = QUEUED
    done: int = 0  # bytes on disk (verified files and partial ones)
    total: int = 0
    error: str | None = None  # why it failed, in plain words
    error_kind: str | None = None  # disk_full | unreachable | access | damaged | missing | other
    model_id: str | None = None  # the library entry, once done
    reused: tuple[str, ...] = ()  # files that were already on disk: a cancel keeps them
    added_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return f"{self.repo.split('/', 1)[-1]} {self.label}" if self.label != "model" else self.repo

    @property
    def active(self) -> bool:
        """Waiting or running (a paused, failed or finished one is not)."""
        return self.state in (QUEUED, DOWNLOADING)

    def remote_files(self) -> tuple[RemoteFile, ...]:
        return tuple(
            RemoteFile(f["path"], f.get("size"), f.get("sha256"), f.get("blob_id"))
            for f in self.files
        )

    def file_progress(self, done: int | None = None) -> tuple[int, str, int, int] | None:
        """``(index, path, bytes done of it, its size)`` of the file ``done`` bytes reach
        (files are fetched in order); None before the files are known."""
        if not self.files:
            return None
        left = self.done if done is None else done
        for i, f in enumerate(self.files):
            size = int(f.get("size") or 0)
            if left < size or i == len(self.files) - 1:
                return i, f["path"], max(0, min(left, size)), size
            left -= size
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [dict(f) for f in self.files]
        data["reused"] = list(self.reused)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["files"] = tuple(dict(f) for f in known.get("files") or ())
        known["reused"] = tuple(known.get("reused") or ())
        if known.get("state") not in STATES:
            known["state"] = QUEUED
        return cls(**known)


class _Either:
    """Set when either event is (the queue's own stop, or the caller's)."""

    def __init__(self, *events: Any) -> None:
        self._events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


class DownloadQueue:
    """The persistent queue. Thread-safe: one runner thread, any number of controllers."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else paths.data_dir() / FILE_NAME
        self._lock = threading.RLock()
        self._stops: dict[str, threading.Event] = {}  # running entries
        self._after_stop: dict[str, str] = {}  # what a stopped run becomes: paused | cancelled
        self._entries: dict[str, Entry] = {}
        for entry in self._load():
            if entry.state == DOWNLOADING:  # the app quit or crashed in the middle
                entry = replace(entry, state=QUEUED)
            if entry.state not in FINISHED and entry.files:
                entry = replace(entry, done=self.bytes_on_disk(entry))
            self._entries[entry.id] = entry

    # -- reading ----------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.added_at)

    def get(self, entry_id: str) -> Entry:
        with self._lock:
            return self._entries[entry_id]

    def active_count(self) -> int:
        with self._lock:
            return sum(1 for e in self._entries.values() if e.active)

    def next_queued(self) -> Entry | None:
        return next((e for e in self.entries() if e.state == QUEUED), None)

    def running(self) -> str | None:
        with self._lock:
            return next(iter(self._stops), None)

    def find(self, repo: str, label: str) -> Entry | None:
        """The newest entry for this repository and variant that is not cancelled."""
        hits = [e for e in self.entries() if e.repo == repo and e.label == label]
        hits = [e for e in hits if e.state != CANCELLED]
        return hits[-1] if hits else None

    # -- changing ---------------------------------------------------------------------------
    def add(
        self,
        repo: str,
        quant: str | None = None,
        *,
        label: str | None = None,
        revision: str | None = None,
        size: int = 0,
    ) -> Entry:
        """Queue ``repo`` (one GGUF variant, or the model folder when ``quant`` is None).
        The same variant already queued, paused or failed is put back in line instead."""
        label = label or quant or "model"
        with self._lock:
            same = self.find(repo, label)
            if same is not None and same.state != DONE:
                return self.resume(same.id) if same.state in (PAUSED, FAILED) else same
            entry = Entry(
                id=uuid.uuid4().hex[:12],
                repo=repo,
                label=label,
                quant=quant,
                ref=revision or "main",
                total=int(size or 0),
            )
            self._entries[entry.id] = entry
            self._save()
            return entry

    def pause(self, entry_id: str) -> Entry:
        """Stop the transfer, keeping the partial file for :meth:`resume`."""
        return self._stop(entry_id, PAUSED, allowed=(QUEUED, DOWNLOADING))

    def cancel(self, entry_id: str) -> Entry:
        """Give the download up and delete what it fetched (files that were already on disk
        before it started stay)."""
        with self._lock:
            entry = self._stop(entry_id, CANCELLED, allowed=(QUEUED, DOWNLOADING, PAUSED, FAILED))
            if entry.state == CANCELLED and entry_id not in self._stops:
                self._discard(entry)  # not running: clean up now (a run does it as it stops)
                entry = self._set(entry_id, done=0)
            return entry

    def resume(self, entry_id: str) -> Entry:
        """Put a paused or failed download back in line (it continues from its partial file)."""
        with self._lock:
            entry = self._entries[entry_id]
            if entry.state not in (PAUSED, FAILED):
                return entry
            self._after_stop.pop(entry_id, None)  # still stopping: it goes back in line
            return self._set(entry_id, state=QUEUED, error=None, error_kind=None)

    def remove(self, entry_id: str) -> None:
        """Forget a finished, cancelled or failed entry (a downloaded model stays)."""
        with self._lock:
            entry = self._entries.get(entry_id)
            if entry is None or entry.active or entry_id in self._stops:
                return
            if entry.state in (PAUSED, FAILED):
                self._discard(entry)
            del self._entries[entry_id]
            self._save()

    # -- running ----------------------------------------------------------------------------
    def run(
        self,
        entry_id: str,
        *,
        progress: Progress | None = None,
        cancel: Any = None,
        catalog: Any = None,
        offline: bool | None = None,
    ) -> Entry:
        """Download one queued entry (blocking; call it on a worker thread) and return it as
        it ended: done (registered), paused, cancelled, failed (``error`` says why), or back
        in the queue when ``cancel`` (the caller's: the app is quitting) stopped it. Raises
        :class:`HubOffline` before anything changes when offline mode is on."""
        require_online(offline)
        with self._lock:
            entry = self._entries[entry_id]
            if entry.state != QUEUED or entry_id in self._stops:
                return entry
            stop = threading.Event()
            self._stops[entry_id] = stop
            self._set(entry_id, state=DOWNLOADING, error=None, error_kind=None)
        either = _Either(stop, cancel)

        def moved(done: int, total: int) -> None:
            with self._lock:
                self._entries[entry_id] = replace(self._entries[entry_id], done=done, total=total)
            if progress is not None:
                progress(done, total)

        try:
            plan = self._plan(entry_id)
            if either.is_set():
                raise Cancelled()
            result = pull_plan(plan, progress=moved, cancel=either, catalog=catalog)
        except Cancelled:
            return self._stopped(entry_id)
        except Exception as exc:  # every failure ends as a failed entry, in plain words
            with self._lock:
                self._stops.pop(entry_id, None)
                if self._after_stop.pop(entry_id, None) == CANCELLED:
                    self._discard(self._entries[entry_id])
                    return self._set(entry_id, state=CANCELLED, done=0)
                entry = self._entries[entry_id]
                entry = replace(entry, done=self.bytes_on_disk(entry) if entry.files else 0)
                self._entries[entry_id] = entry
                return self._set(
                    entry_id,
                    state=FAILED,
                    error=download_failure(entry.name, entry.done, entry.total, exc),
                    error_kind=failure_kind(exc),
                )
        except BaseException:
            self._stopped(entry_id)
            raise
        with self._lock:
            self._stops.pop(entry_id, None)
            self._after_stop.pop(entry_id, None)
            return self._set(
                entry_id, state=DONE, done=plan.total, total=plan.total, model_id=result.record.id
            )

    def _plan(self, entry_id: str) -> PullPlan:
        """The files to fetch: asked of the Hub once, then kept in the entry (a resume after
        a restart goes straight to the transfer, pinned to the same commit)."""
        entry = self.get(entry_id)
        if entry.files and entry.revision:
            variant = None
            if entry.kind == "gguf":
                variants = gguf_variants(entry.remote_files())
                variant = variants[0] if variants else None
            return PullPlan(
                entry.repo, entry.revision, entry.ref, entry.kind or "gguf", variant,
                entry.remote_files(),
            )  # fmt: skip
        listing = fetch_listing(entry.repo, None if entry.ref == "main" else entry.ref)
        plan = plan_from_listing(listing, entry.quant, ref=entry.ref)
        files = tuple(
            {"path": f.path, "size": f.size, "sha256": f.sha256, "blob_id": f.blob_id}
            for f in plan.files
        )
        probe = replace(entry, revision=plan.revision, files=files)
        reused = tuple(f["path"] for f in files if self._on_disk(probe, f)[1])
        with self._lock:
            self._set(
                entry_id,
                revision=plan.revision,
                kind=plan.kind,
                files=files,
                total=plan.total,
                target=str(library_folder(plan)),
                reused=reused,
            )
        return plan

    def _stopped(self, entry_id: str) -> Entry:
        with self._lock:
            self._stops.pop(entry_id, None)
            want = self._after_stop.pop(entry_id, None)
            entry = self._entries[entry_id]
            if want == CANCELLED:
                self._discard(entry)
                return self._set(entry_id, state=CANCELLED, done=0)
            done = self.bytes_on_disk(entry) if entry.files else 0
            state = entry.state if entry.state == PAUSED else QUEUED
            return self._set(entry_id, state=state, done=done)

    # -- the files --------------------------------------------------------------------------
    def _on_disk(self, entry: Entry, f: dict[str, Any]) -> tuple[list[Path], bool]:
        """The files in the cache that belong to ``f`` and whether a complete one is there."""
        folder = repo_cache_folder(entry.repo)
        found: list[Path] = []
        complete = False
        if entry.revision:
            pointer = folder / "snapshots" / entry.revision / Path(*f["path"].split("/"))
            if pointer.exists() or pointer.is_symlink():
                found.append(pointer)
                complete = pointer.exists()
        for etag in {str(f.get("sha256") or ""), str(f.get("blob_id") or "")} - {""}:
            for blob in (folder / "blobs" / etag, folder / "blobs" / f"{etag}.incomplete"):
                if blob.exists():
                    found.append(blob)
                    complete = complete or not blob.name.endswith(".incomplete")
        return found, complete

    def bytes_on_disk(self, entry: Entry) -> int:
        """Bytes of ``entry`` already in the cache: complete files plus partial ones."""
        total = 0
        for f in entry.files:
            found, complete = self._on_disk(entry, f)
            if complete:
                total += int(f.get("size") or 0)
            else:
                total += max((p.stat().st_size for p in found if p.exists()), default=0)
        return total

    def _discard(self, entry: Entry) -> None:
        """Delete what ``entry`` fetched: partial files, and complete ones it brought itself."""
        for f in entry.files:
            found, _ = self._on_disk(entry, f)
            keep = f["path"] in entry.reused
            for p in found:
                if not keep or p.name.endswith(".incomplete"):
                    with contextlib.suppress(OSError):
                        p.unlink()
            if entry.target and not keep:
                with contextlib.suppress(OSError):
                    (Path(entry.target) / Path(*f["path"].split("/"))).unlink()

    # -- state ------------------------------------------------------------------------------
    def _stop(self, entry_id: str, state: str, *, allowed: tuple[str, ...]) -> Entry:
        with self._lock:
            entry = self._entries[entry_id]
            if entry.state not in allowed:
                return entry
            stop = self._stops.get(entry_id)
            if stop is not None:
                self._after_stop[entry_id] = state
                stop.set()
            return self._set(entry_id, state=state)

    def _set(self, entry_id: str, **changes: Any) -> Entry:
        with self._lock:
            entry = replace(self._entries[entry_id], **changes)
            self._entries[entry_id] = entry
            self._save()
            return entry

    def _load(self) -> list[Entry]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        out = []
        for item in data.get("entries", []) if isinstance(data, dict) else []:
            with contextlib.suppress(TypeError, ValueError, KeyError):
                out.append(Entry.from_json(item))
        return out

    def _save(self) -> None:
        data = {"version": _VERSION, "entries": [e.to_json() for e in self.entries()]}
        with contextlib.suppress(OSError):  # a full disk must not break the queue in memory
            write_bytes_atomic(self.path, (json.dumps(data, indent=1) + "\n").encode())


__all__ = ["DownloadQueue", "Entry", "STATES"]
