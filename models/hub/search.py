"""``search``: models on the Hub, most downloaded first, with what each one offers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .errors import HubError
from .listing import RepoListing, folder_files, gguf_variants
from .net import api, fetch_listing, hub_errors, probe, require_online

FORMATS = ("gguf", "mlx", "safetensors")
DEFAULT_LIMIT = 10
_DETAIL_WORKERS = 4


def fit_verdict(size_bytes: int | None, kind: str) -> str | None:
    """This machine's memory-fit verdict for a model of ``size_bytes`` on disk (None: unknown)."""
    if not size_bytes:
        return None
    from ..fit import verdict_for_download

    return verdict_for_download(size_bytes, kind)


@dataclass(frozen=True)
class Offer:
    """One thing a pull can fetch from a repository: a GGUF quantization, or the whole folder."""

    label: str  # "Q4_K_M", or "model" for an MLX/safetensors folder
    size: int
    files: tuple[str, ...]
    split: bool = False
    fit: str | None = None
    name: str = ""  # the GGUF variant's file stem (unique where two share a quantization)

    @property
    def ref_quant(self) -> str | None:
        """What ``REPO:QUANT`` names this offer by (None for a model folder)."""
        return (self.name or self.label) if self.label != "model" else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "size": self.size,
            "files": list(self.files),
            "split": self.split,
            "fit": self.fit,
        }


@dataclass(frozen=True)
class SearchResult:
    repo: str
    kind: str  # gguf | mlx | safetensors | pytorch | other
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    revision: str | None = None
    offers: tuple[Offer, ...] = ()
    total_size: int | None = None  # the model folder (MLX/safetensors) or None for GGUF
    note: str | None = None  # why details are missing, when they are
    tags: tuple[str, ...] = field(default=(), repr=False)
    private: bool = False
    license: str | None = None  # from the repository's ``license:`` tag
    last_modified: str | None = None  # ISO date of the last commit, when the Hub says

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "kind": self.kind,
            "downloads": self.downloads,
            "likes": self.likes,
            "gated": self.gated,
            "revision": self.revision,
            "total_size": self.total_size,
            "offers": [o.to_dict() for o in self.offers],
            "note": self.note,
            "private": self.private,
            "license": self.license,
            "last_modified": self.last_modified,
        }


def license_of(tags: tuple[str, ...] | list[str]) -> str | None:
    for tag in tags:
        if tag.lower().startswith("license:"):
            return tag.split(":", 1)[1] or None
    return None


def recommend(offers: tuple[Offer, ...] | list[Offer]) -> tuple[Offer | None, str]:
    """The offer to suggest on this machine, and why in a sentence: the largest that fits
    comfortably; else the smallest that fits only tightly; else none."""
    fits = [o for o in offers if o.fit == "fits"]
    if fits:
        best = max(fits, key=lambda o: o.size)
        why = "the largest that fits comfortably in this machine's memory"
        return best, why if len(offers) > 1 else "it fits comfortably in this machine's memory"
    tight = [o for o in offers if o.fit == "tight"]
    if tight:
        return min(tight, key=lambda o: o.size), (
            "the smallest one, and even it fits only tightly: close other programs first"
        )
    if offers and all(o.fit == "won't fit" for o in offers):
        return None, "none of these fits in this machine's memory"
    return None, ""


def describe_listing(listing: RepoListing, downloads: int = 0, likes: int = 0) -> SearchResult:
    """What one repository offers (pure: from a listing already fetched)."""
    kind = listing.kind
    offers: list[Offer] = []
    total: int | None = None
    if kind == "gguf":
        for v in gguf_variants(listing.files):
            offers.append(
                Offer(
                    label=v.label,
                    size=v.size,
                    files=tuple(f.path for f in v.files),
                    split=v.split,
                    fit=fit_verdict(v.size, "gguf"),
                    name=v.name,
                )
            )
    elif kind in ("mlx", "safetensors", "pytorch"):
        chosen = folder_files(listing.files)
        total = sum(f.size or 0 for f in chosen)
        offers.append(
            Offer(
                label="model",
                size=total,
                files=tuple(f.path for f in chosen),
                fit=fit_verdict(total, kind),
            )
        )
    return SearchResult(
        repo=listing.repo,
        kind=kind,
        downloads=downloads,
        likes=likes,
        gated=listing.gated,
        revision=listing.revision or None,
        offers=tuple(offers),
        total_size=total,
        tags=listing.tags,
        private=bool(listing.extras.get("private")),
        license=license_of(listing.tags),
        last_modified=_text(listing.extras.get("last_modified")),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def search(
    query: str,
    *,
    format: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offline: bool | None = None,
) -> list[SearchResult]:
    """Models on the Hub matching ``query``, most downloaded first, with their offers.

    ``format`` (gguf | mlx | safetensors) keeps only repositories of that kind. Raises
    :class:`HubOffline` at once in offline mode, :class:`HubUnreachable` quickly without a
    network.
    """
    if format is not None and format not in FORMATS:
        raise HubError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    require_online(offline)
    probe()
    with hub_errors():
        found = list(
            api().list_models(
                search=query or None,
                filter=format,
                sort="downloads",
                limit=max(1, limit),
                expand=[
                    "downloads",
                    "likes",
                    "gated",
                    "tags",
                    "library_name",
                    "lastModified",
                    "private",
                ],
            )
        )
    found.sort(key=lambda m: m.downloads or 0, reverse=True)

    def details(model: Any) -> SearchResult:
        try:
            listing = fetch_listing(model.id)
        except HubError as exc:
            return SearchResult(
                repo=model.id,
                kind="other",
                downloads=model.downloads or 0,
                likes=model.likes or 0,
                gated=bool(model.gated),
                note=str(exc),
                private=bool(getattr(model, "private", False)),
                license=license_of(tuple(model.tags or ())),
                last_modified=_text(getattr(model, "last_modified", None)),
            )
        return describe_listing(listing, model.downloads or 0, model.likes or 0)

    with ThreadPoolExecutor(max_workers=_DETAIL_WORKERS) as pool:
        results = list(pool.map(details, found))
    if format is not None:
        results = [r for r in results if r.kind == format or r.note]
    return results
