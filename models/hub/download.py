"""``pull``: bring one model home from the Hub, resumably, verified, into the shared cache.

Files land in the Hugging Face cache exactly as huggingface_hub lays it out
(``models--OWNER--NAME/blobs/<etag>``, ``snapshots/<commit>/<path>`` -> blob, ``refs/<branch>``),
so a model another tool already fetched is reused and ours is found by other tools. A file
being downloaded lives at ``blobs/<etag>.incomplete`` and survives an interruption: the next
pull asks the Hub only for the missing bytes (huggingface_hub 2.x itself discards partial files,
so the transfer loop is ours, on huggingface_hub's own HTTP client). Each file is checked
against the SHA-256 the Hub publishes before it gets its final name; then it is hard-linked
(copied where links are impossible) into Fireside's models directory and registered.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.work import CancelFlag, Progress

from .. import paths
from ..errors import Cancelled, is_disk_full
from ..records import ModelRecord, slugify
from ..space import require_space
from .cache_layout import (
    COMMIT,
    file_matches,
    inside,
    link_or_copy,
    repo_cache_folder,
    symlink_or_copy,
    write_ref,
)
from .config import cache_dir, endpoint
from .errors import DiskFull, DownloadVerificationFailed, HubBadListing, HubUnreachable
from .listing import LARGE_FILE, GGUFVariant, RemoteFile, RepoListing, check_filename, select_files
from .net import (
    check_repo_id,
    fetch_listing,
    hub_errors,
    require_online,
    timeout,
    unreachable_message,
)

RETRY_DELAYS = (0.5, 1.0, 2.0)  # after a dropped connection that brought no new bytes
PROGRESS_INTERVAL = 0.1  # seconds between progress callbacks (and always the last one)
_ETAG = re.compile(r"^[A-Za-z0-9_\-]{6,128}$")


# -- references ---------------------------------------------------------------------------


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``OWNER/NAME[:QUANT]`` (also with an ``hf.co/`` or ``https://huggingface.co/`` prefix)."""
    text = ref.strip()
    for prefix in (
        "https://huggingface.co/",
        "http://huggingface.co/",
        "huggingface.co/",
        "hf.co/",
    ):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    repo, _, quant = text.partition(":")
    return check_repo_id(repo.strip("/")), (quant.strip() or None)


# -- progress -----------------------------------------------------------------------------


class _Tracker:
    """Adds up bytes across files and calls ``progress(done, total)``, at most every 0.1 s."""

    def __init__(self, total: int, progress: Progress | None, cancel: CancelFlag | None) -> None:
        self.total = total
        self.done = 0
        self.downloaded = 0
        self.reused = 0
        self._progress = progress
        self._cancel = cancel
        self._last = 0.0

    def check_cancel(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(
                "download cancelled; run the same pull again to continue where it stopped"
            )

    def add(self, n: int, *, fresh: bool) -> None:
        self.done += n
        if fresh:
            self.downloaded += n
        self.emit()

    def emit(self, force: bool = False) -> None:
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last >= PROGRESS_INTERVAL:
            self._last = now
            self._progress(min(self.done, self.total), self.total)


# -- the plan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PullPlan:
    repo: str
    revision: str  # the commit
    ref: str  # what the user asked for (a branch, tag or commit), "main" by default
    kind: str  # gguf | mlx | safetensors | pytorch
    variant: GGUFVariant | None
    files: tuple[RemoteFile, ...]

    @property
    def total(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def label(self) -> str:
        return self.variant.label if self.variant else self.kind


@dataclass(frozen=True)
class PullResult:
    record: ModelRecord
    plan: PullPlan
    path: Path
    downloaded_bytes: int
    reused_bytes: int
    files: tuple[Path, ...] = field(default=())


def plan_pull(
    ref: str,
    *,
    revision: str | None = None,
    include: Sequence[str] = (),
    offline: bool | None = None,
) -> PullPlan:
    """Ask the Hub what ``pull`` would download (one request), without downloading it."""
    require_online(offline)
    repo, quant = parse_ref(ref)
    if revision is not None:
        check_filename(revision)  # it becomes a file under refs/
    listing = fetch_listing(repo, revision)
    return plan_from_listing(listing, quant, include, ref=revision or "main")


def plan_from_listing(
    listing: RepoListing, quant: str | None, include: Sequence[str] = (), *, ref: str = "main"
) -> PullPlan:
    if not COMMIT.match(listing.revision or ""):
        raise HubBadListing(f"the Hub gave no commit for {listing.repo}; try again later")
    kind, variant, files = select_files(listing, quant, include)
    for f in files:
        if f.size is None:
            raise HubBadListing(f"the Hub lists no size for {f.path}; refusing to download it")
        if f.size > LARGE_FILE and not f.sha256:
            raise HubBadListing(
                f"the Hub publishes no SHA-256 for {f.path}, so it could not be verified; not downloading"
            )
    return PullPlan(listing.repo, listing.revision, ref, kind, variant, files)


# -- the cache ----------------------------------------------------------------------------


class _Fetcher:
    """Downloads files of one repository commit into the cache, resuming what is there."""

    def __init__(self, plan: PullPlan, tracker: _Tracker) -> None:
        self.plan = plan
        self.tracker = tracker
        self.folder = repo_cache_folder(plan.repo)

    def ensure(self, rf: RemoteFile) -> Path:
        """The verified blob for ``rf`` in the cache (downloaded unless already there)."""
        pointer = inside(self.folder / "snapshots" / self.plan.revision, rf.path)
        if pointer.exists():
            if file_matches(pointer, rf, self.tracker.check_cancel):
                self.tracker.reused += rf.size or 0
                self.tracker.add(rf.size or 0, fresh=False)
                return pointer.resolve()
            pointer.unlink()  # a damaged copy: fetch it again
        etag, url = self._head(rf)
        blob = self.folder / "blobs" / etag
        from huggingface_hub.utils import WeakFileLock

        lock = cache_dir() / ".locks" / self.folder.name / f"{etag}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with WeakFileLock(lock):
            if blob.exists() and file_matches(blob, rf, self.tracker.check_cancel):
                self.tracker.reused += rf.size or 0
                self.tracker.add(rf.size or 0, fresh=False)
            else:
                part = blob.with_name(blob.name + ".incomplete")
                self._transfer(url, part, rf)
                if not file_matches(part, rf, self.tracker.check_cancel):
                    part.unlink()
                    raise DownloadVerificationFailed(
                        f"{rf.path} from {self.plan.repo} does not match the SHA-256 the Hub "
                        "publishes for it (damaged in transit, or altered); it was deleted and "
                        "not registered. Pull again to fetch it afresh"
                    )
                os.replace(part, blob)
            symlink_or_copy(blob, pointer)
        return blob

    def _head(self, rf: RemoteFile) -> tuple[str, str]:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url

        url = hf_hub_url(self.plan.repo, rf.path, revision=self.plan.revision, endpoint=endpoint())
        with hub_errors(self.plan.repo, self.plan.revision):
            meta = get_hf_file_metadata(url, timeout=timeout(), endpoint=endpoint())
        if meta.commit_hash and meta.commit_hash != self.plan.revision:
            raise HubBadListing(
                f"the Hub served {rf.path} from another commit than it listed; try again"
            )
        if meta.size is not None and rf.size is not None and meta.size != rf.size:
            raise HubBadListing(
                f"the Hub gives two sizes for {rf.path} ({meta.size} and {rf.size}); try again later"
            )
        etag = meta.etag or rf.sha256 or rf.blob_id or ""
        if not _ETAG.match(etag):
            raise HubBadListing(f"the Hub gave an unusable ETag for {rf.path} ({etag!r})")
        return etag, url

    def _transfer(self, url: str, part: Path, rf: RemoteFile) -> None:
        """Fetch ``url`` into ``part``, continuing from the bytes already there."""
        import httpx2
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        expected = rf.size or 0
        tracker = self.tracker
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if have > expected:
            part.unlink()
            have = 0
        self._check_space(part.parent, expected - have)
        tracker.add(have, fresh=False)  # resumed bytes count as done, not as downloaded now
        failures = 0
        while have < expected or (expected == 0 and not part.exists()):
            tracker.check_cancel()
            headers = build_hf_headers()
            headers["Accept-Encoding"] = "identity"
            if have:
                headers["Range"] = f"bytes={have}-"
            before = have
            try:
                with get_session().stream("GET", url, headers=headers, timeout=timeout()) as resp:
                    if resp.status_code == 416 and have:  # our partial is stale: start over
                        tracker.add(-have, fresh=False)
                        part.unlink()
                        have = 0
                        continue
                    with hub_errors(self.plan.repo, self.plan.revision):
                        hf_raise_for_status(resp)
                    resumed = (
                        have > 0
                        and resp.status_code == 206
                        and resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")
                    )
                    if have and not resumed:  # the server sent the whole file again
                        tracker.add(-have, fresh=False)
                        have = 0
                    with open(part, "ab" if resumed else "wb") as fh:
                        for chunk in resp.iter_bytes():
                            tracker.check_cancel()
                            if have + len(chunk) > expected:
                                raise HubBadListing(
                                    f"the Hub sent more bytes for {rf.path} than it listed; not keeping them"
                                )
                            fh.write(chunk)
                            have += len(chunk)
                            tracker.add(len(chunk), fresh=True)
                if have < expected:
                    raise httpx2.RemoteProtocolError("the connection closed early")
            except httpx2.TransportError as exc:
                failures = 0 if have > before else failures + 1
                if failures > len(RETRY_DELAYS):
                    raise HubUnreachable(
                        f"lost the connection while downloading {rf.path} "
                        f"({have * 100 // max(expected, 1)}% kept); run the same pull again to "
                        f"continue where it stopped. {unreachable_message(str(exc).splitlines()[0] if str(exc) else '')}"
                    ) from exc
                if failures:
                    self._sleep(RETRY_DELAYS[failures - 1])
            except OSError as exc:
                if is_disk_full(exc):
                    raise DiskFull(
                        f"the disk is full (or a file size limit was reached) at {part.parent} "
                        f"while downloading {rf.path}; free some space and pull again: it "
                        "continues where it stopped"
                    ) from exc
                raise

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.tracker.check_cancel()
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    @staticmethod
    def _check_space(folder: Path, needed: int) -> None:
        require_space(
            folder,
            needed,
            doing="the rest of the download",
            advice="Free some space (or point HF_HUB_CACHE elsewhere) and pull again.",
            error=DiskFull,
        )


# -- pull ---------------------------------------------------------------------------------


def library_folder(plan: PullPlan) -> Path:
    """Where a pulled model lives in Fireside's models directory (one folder per commit)."""
    owner, name = plan.repo.split("/", 1)
    return paths.models_dir() / "hub" / f"{owner}--{name}" / plan.revision[:12]


def pull(
    ref: str,
    *,
    revision: str | None = None,
    include: Sequence[str] = (),
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
    offline: bool | None = None,
    catalog: Any = None,
) -> PullResult:
    """Download ``OWNER/NAME[:QUANT]`` and register it in the library.

    One quantization of a GGUF repository, or the model folder of an MLX / safetensors one
    (plus files matching ``include``). ``progress(done, total)`` gets bytes; ``cancel.is_set()``
    stops it (:class:`Cancelled`), keeping what was fetched for the next pull. Every file is
    verified before it gets its final name. Returns the registered record.
    """
    plan = plan_pull(ref, revision=revision, include=include, offline=offline)
    return pull_plan(plan, progress=progress, cancel=cancel, catalog=catalog)


def pull_plan(
    plan: PullPlan,
    *,
    progress: Progress | None = None,
    cancel: CancelFlag | None = None,
    catalog: Any = None,
) -> PullResult:
    tracker = _Tracker(plan.total, progress, cancel)
    fetcher = _Fetcher(plan, tracker)
    blobs: list[tuple[RemoteFile, Path]] = []
    for rf in plan.files:
        tracker.check_cancel()
        blobs.append((rf, fetcher.ensure(rf)))
    write_ref(fetcher.folder, plan.ref, plan.revision)
    tracker.emit(force=True)

    dest = library_folder(plan)
    placed: list[Path] = []
    try:
        for rf, blob in blobs:
            target = inside(dest, rf.path)
            if not (target.exists() and os.path.samefile(target, blob)):
                link_or_copy(blob, target)
            placed.append(target)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull(
                f"the disk is full at {dest}; free some space and pull again (the download is kept)"
            ) from exc
        raise
    record_path = placed[0] if plan.variant is not None else dest
    record = _register(plan, record_path, catalog)
    return PullResult(
        record=record,
        plan=plan,
        path=record_path,
        downloaded_bytes=tracker.downloaded,
        reused_bytes=tracker.reused,
        files=tuple(placed),
    )


def _register(plan: PullPlan, path: Path, catalog: Any) -> ModelRecord:
    from ..catalog import Catalog
    from ..recognize import describe

    record = describe(path, source="downloaded")
    repo_name = plan.repo.split("/", 1)[1]
    label = f" {plan.variant.label}" if plan.variant is not None else ""
    record = record.replace(
        id=slugify(f"{repo_name}{label}".replace(" ", "-")),
        name=f"{repo_name}{label}",
        source="downloaded",
        owned=True,
        provenance={
            "origin": f"{plan.repo}@{plan.revision}",
            "repo": plan.repo,
            "revision": plan.revision,
            "ref": plan.ref,
            "endpoint": endpoint(),
            "files": [f.path for f in plan.files],
            "sha256": {f.path: f.sha256 for f in plan.files if f.sha256},
        },
    )
    own = catalog is None
    cat = Catalog() if own else catalog
    try:
        return cat.add(record)
    finally:
        if own:
            cat.close()
