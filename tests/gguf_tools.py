"""Small GGUF surgery for tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from models import read_gguf


def copy_without_chat_template(src: Path, dst: Path) -> Path:
    """Copy ``src`` with its chat template blanked out (same length, so offsets stay valid)."""
    template = read_gguf(src).chat_template
    assert template, "source has no chat template"
    shutil.copyfile(src, dst)
    raw = template.encode("utf-8")
    with open(dst, "r+b") as fh:
        head = fh.read(4 * 1024 * 1024)
        at = head.find(raw)
        assert at > 0
        fh.seek(at)
        fh.write(b" " * len(raw))
    assert read_gguf(dst).chat_template is None
    return dst


def copy_with_chat_template(src: Path, dst: Path, template: str) -> Path:
    """Copy ``src`` with its chat template replaced by ``template`` (padded with spaces to
    the original's length, so offsets stay valid)."""
    old = read_gguf(src).chat_template
    assert old, "source has no chat template"
    raw, new = old.encode("utf-8"), template.encode("utf-8")
    assert len(new) <= len(raw), "the new template must not be longer than the old one"
    shutil.copyfile(src, dst)
    with open(dst, "r+b") as fh:
        head = fh.read(4 * 1024 * 1024)
        at = head.find(raw)
        assert at > 0
        fh.seek(at)
        fh.write(new + b" " * (len(raw) - len(new)))
    return dst
