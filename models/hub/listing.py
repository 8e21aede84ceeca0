"""What a Hub repository offers, and which of its files a pull needs. Pure logic, no network.

A GGUF repository usually holds one file per quantization (``model-Q4_K_M.gguf``), sometimes
split in shards (``model-Q8_0-00001-of-00002.gguf``) and sometimes with extras (``mmproj-*``
vision projectors, imatrix data). An MLX or safetensors repository is one model folder: its
weights, config and tokenizer files, often beside things a runtime never reads (README,
images, PyTorch duplicates, ONNX exports). This module tells them apart.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .errors import HubBadListing, NothingToDownload

KINDS = ("gguf", "mlx", "safetensors", "pytorch", "other")

# Which of several quantizations a bare ``fireside pull REPO`` takes: the usual sweet spot first.
DEFAULT_QUANT_ORDER = (
    "Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "IQ4_XS", "Q5_K_S", "Q6_K", "Q8_0",
    "Q3_K_M", "Q3_K_L", "Q5_0", "Q2_K", "BF16", "F16", "F32",
)  # fmt: skip

_QUANT_RE = re.compile(
    r"(?:^|[-_.])((?:UD-)?(?:I?Q[1-8](?:_[0-9A-Z]+)*|TQ[12]_0|MXFP4(?:_MOE)?|BF16|FP16|F16|FP32|F32))$",
    re.IGNORECASE,
)
_SPLIT_RE = re.compile(r"-(\d{5})-of-(\d{5})$")
_FOLDER_SUFFIXES = (".safetensors", ".json", ".model", ".tiktoken", ".jinja", ".txt")
_TEXT_NOT_MODEL = ("license", "readme", "notice", "use_policy", "requirements", "citation")
_PYTORCH_WEIGHTS = re.compile(r"^pytorch_model(-\d{5}-of-\d{5})?\.bin$")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
LARGE_FILE = 10 * 1024 * 1024  # above this the Hub always stores a file in LFS, with a SHA-256


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository as the Hub lists it."""

    path: str
    size: int | None = None
    sha256: str | None = None  # published for LFS files (all weights)
    blob_id: str | None = None  # the git object id (SHA-1 of the git blob)

    def to_dict(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class GGUFVariant:
    """One downloadable model of a GGUF repository: a quantization, maybe in several shards."""

    name: str  # the file stem without the shard suffix (and without a folder)
    quant: str | None  # Q4_K_M, Q8_0, F16 ...; None when the name carries none
    files: tuple[RemoteFile, ...]  # shards in order

    @property
    def label(self) -> str:
        return self.quant or self.name

    @property
    def size(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def split(self) -> bool:
        return len(self.files) > 1

    def to_dict(self) -> dict[str, object]:
        return {
            "quant": self.label,
            "name": self.name,
            "files": [f.path for f in self.files],
            "size": self.size,
            "split": self.split,
        }


@dataclass(frozen=True)
class RepoListing:
    repo: str
    revision: str  # the commit the listing describes
    files: tuple[RemoteFile, ...]
    tags: tuple[str, ...] = ()
    library: str | None = None
    gated: bool = False
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return repo_kind(self.files, self.tags, self.library)


def check_filename(name: object) -> str:
    """Refuse a listed path that could land outside the repository's folder."""
    if not isinstance(name, str) or not name:
        raise HubBadListing(
            f"the Hub listed a file with no usable name ({name!r}); nothing was downloaded"
        )
    bad = (
        name.startswith(("/", "\\"))
        or _WINDOWS_DRIVE.match(name) is not None
        or "\\" in name
        or any(ord(c) < 32 for c in name)
        or any(part in ("", ".", "..") for part in name.split("/"))
    )
    if bad:
        raise HubBadListing(
            f"the Hub listed an unsafe file name ({name!r}: absolute, or with '..'); "
            "refusing the whole repository, nothing was downloaded"
        )
    return name


def check_listing(files: Iterable[RemoteFile]) -> tuple[RemoteFile, ...]:
    files = tuple(files)
    for f in files:
        check_filename(f.path)
    return files


def _stem(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base[:-5] if base.lower().endswith(".gguf") else base


def quant_of(path: str) -> str | None:
    """The quantization a GGUF file's name announces (``Q4_K_M``), or None."""
    stem = _SPLIT_RE.sub("", _stem(path))
    m = _QUANT_RE.search(stem)
    return m.group(1).upper() if m else None


def _is_extra_gguf(path: str) -> bool:
    base = path.rsplit("/", 1)[-1].lower()
    return base.startswith("mmproj") or "imatrix" in base


def gguf_variants(files: Iterable[RemoteFile]) -> list[GGUFVariant]:
    """The repository's GGUF models, one per quantization; shards grouped, extras left out."""
    groups: dict[tuple[str, str], list[tuple[int, RemoteFile]]] = {}
    for f in files:
        if not f.path.lower().endswith(".gguf") or _is_extra_gguf(f.path):
            continue
        folder = f.path.rsplit("/", 1)[0] if "/" in f.path else ""
        stem = _stem(f.path)
        m = _SPLIT_RE.search(stem)
        shard = int(m.group(1)) if m else 0
        groups.setdefault((folder, _SPLIT_RE.sub("", stem)), []).append((shard, f))
    variants = [
        GGUFVariant(
            name=stem,
            quant=quant_of(stem + ".gguf"),
            files=tuple(f for _, f in sorted(members, key=lambda x: x[0])),
        )
        for (_, stem), members in groups.items()
    ]
    return sorted(variants, key=lambda v: (v.size, v.name))


def folder_files(files: Iterable[RemoteFile]) -> list[RemoteFile]:
    """The files an MLX / transformers model folder needs: weights, config, tokenizer."""
    top = [f for f in files if "/" not in f.path]
    has_safetensors = any(f.path.endswith(".safetensors") for f in top)
    chosen = []
    for f in top:
        name = f.path.lower()
        if name.endswith(_FOLDER_SUFFIXES):
            if name.endswith(".txt") and name.startswith(_TEXT_NOT_MODEL):
                continue
            chosen.append(f)
        elif not has_safetensors and _PYTORCH_WEIGHTS.match(f.path):
            chosen.append(f)
    if not any(f.path.endswith((".safetensors", ".bin")) for f in chosen):
        return []
    return chosen


def repo_kind(
    files: Sequence[RemoteFile], tags: Sequence[str] = (), library: str | None = None
) -> str:
    tags_lower = {t.lower() for t in tags}
    if ((library or "").lower() == "mlx" or "mlx" in tags_lower) and folder_files(files):
        return "mlx"
    if gguf_variants(files):
        return "gguf"
    chosen = folder_files(files)
    if any(f.path.endswith(".safetensors") for f in chosen):
        return "safetensors"
    if chosen:
        return "pytorch"
    return "other"


def choose_variant(variants: Sequence[GGUFVariant], quant: str | None, repo: str) -> GGUFVariant:
    """The variant ``REPO:QUANT`` asks for; without QUANT, the only one or the usual default."""
    if not variants:
        raise NothingToDownload(f"{repo} has no GGUF files")
    available = ", ".join(v.label for v in variants)
    if quant:
        want = quant.strip().upper()
        hits = [v for v in variants if v.quant == want] or [
            v for v in variants if v.name.upper() == want
        ]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            names = ", ".join(v.name for v in hits)
            raise NothingToDownload(
                f"{repo} has several {want} files ({names}); name one, e.g. {repo}:{hits[0].name}"
            )
        raise NothingToDownload(f"{repo} has no {want} file; it offers: {available}")
    if len(variants) == 1:
        return variants[0]
    for q in DEFAULT_QUANT_ORDER:
        hits = [v for v in variants if v.quant == q]
        if len(hits) == 1:
            return hits[0]
    raise NothingToDownload(
        f"{repo} offers several GGUF files; choose one with {repo}:QUANT ({available})"
    )


def select_files(
    listing: RepoListing, quant: str | None = None, include: Sequence[str] = ()
) -> tuple[str, GGUFVariant | None, tuple[RemoteFile, ...]]:
    """What a pull downloads: ``(kind, variant or None, files)``.

    A GGUF repository gives one variant (``quant`` or the default); an MLX / safetensors /
    PyTorch repository gives its model folder. ``include`` patterns (shell-style, matched
    against the path in the repository) add more files, e.g. ``"mmproj-*"`` or ``"*.md"``.
    """
    kind = listing.kind
    variant: GGUFVariant | None = None
    if kind == "gguf" or (quant and gguf_variants(listing.files)):
        kind = "gguf"
        variant = choose_variant(gguf_variants(listing.files), quant, listing.repo)
        chosen = list(variant.files)
    elif quant:
        raise NothingToDownload(
            f"{listing.repo} is not a GGUF repository, so it has no quantization {quant!r} to pick; "
            f"pull it without ':{quant}'"
        )
    elif kind in ("mlx", "safetensors", "pytorch"):
        chosen = folder_files(listing.files)
    else:
        chosen = []
    seen = {f.path for f in chosen}
    for f in listing.files:
        if f.path not in seen and any(fnmatch.fnmatchcase(f.path, p) for p in include):
            chosen.append(f)
            seen.add(f.path)
    if include and not chosen:
        raise NothingToDownload(f"no file of {listing.repo} matches {', '.join(include)}")
    if not chosen:
        raise NothingToDownload(
            f"{listing.repo} holds no model files Fireside can use (GGUF, MLX or safetensors)"
        )
    return kind, variant, tuple(chosen)
