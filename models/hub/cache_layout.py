"""The Hugging Face cache's layout, as huggingface_hub writes it and other tools read it:
``models--OWNER--NAME/blobs/<etag>``, ``snapshots/<commit>/<path>`` -> blob (a relative
symlink, a copy where there are none), ``refs/<branch>``; and checking a file against the
size and hash a listing gives."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from .config import cache_dir
from .errors import HubBadListing
from .listing import RemoteFile, check_filename

HASH_BLOCK = 4 * 1024 * 1024
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def repo_cache_folder(repo: str, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / ("models--" + repo.replace("/", "--"))


def inside(base: Path, relative: str) -> Path:
    """``base / relative``, refusing anything that would leave ``base``."""
    check_filename(relative)
    target = base.joinpath(*relative.split("/"))
    if os.path.commonpath([os.path.abspath(base), os.path.abspath(target)]) != os.path.abspath(
        base
    ):
        raise HubBadListing(f"refusing to write {relative!r} outside {base}")
    return target


def file_matches(
    path: Path, rf: RemoteFile, check_cancel: Callable[[], None] | None = None
) -> bool:
    """Size and hash of a local file against the listing: SHA-256 for LFS files, the git blob
    id for small ones."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if rf.size is not None and size != rf.size:
        return False
    if rf.sha256:
        digest = hashlib.sha256()
        expected = rf.sha256.lower()
    elif rf.blob_id and re.fullmatch(r"[0-9a-f]{40}", rf.blob_id):
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % size)
        expected = rf.blob_id
    else:
        return True
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            if check_cancel is not None:
                check_cancel()
            digest.update(block)
    return digest.hexdigest() == expected


def symlink_or_copy(blob: Path, pointer: Path) -> None:
    """``pointer`` -> ``blob`` as huggingface_hub does it (relative symlink; a copy where the
    file system has no symlinks)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), tmp)
    except OSError:
        link_or_copy(blob, pointer)
        return
    os.replace(tmp, pointer)


def link_or_copy(src: Path, dst: Path) -> None:
    """Place ``src`` at ``dst`` atomically: a hard link (no extra disk), else a copy."""
    from ..atomic import atomic_path

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(src, tmp)
    except OSError:
        with atomic_path(dst) as part:
            shutil.copyfile(src, part)
        return
    os.replace(tmp, dst)


def write_ref(folder: Path, ref: str, commit: str) -> None:
    if COMMIT.match(ref):
        return
    from ..atomic import write_bytes_atomic

    target = inside(folder / "refs", ref)
    with contextlib.suppress(OSError):
        if target.read_text().strip() == commit:
            return
    write_bytes_atomic(target, commit.encode())
