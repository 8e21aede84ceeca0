"""Where every converter writes: a staging folder beside the output, renamed into place.

The GGUF, MLX and ONNX converters share this tail. The output (a file or a folder) is
written inside ``.NAME.XXXX.partial/`` beside the final path, with any working files
(a staged source, a builder's cache) next to it; only after the converter has read it back
and found it whole is it fsynced and renamed to its final name. A cancel, a crash or a full
disk leaves nothing under a final name, and the staging folder is removed (one a killed
process left behind is found by :func:`partials_beside`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from models.atomic import PARTIAL_SUFFIX, fsync_dir
from models.errors import is_disk_full

from .errors import CONVERT_ADVICE, ConversionError, NotEnoughSpace


@dataclass(frozen=True)
class Stage:
    out: Path  # where the converter writes the output (it does not exist yet)
    scratch: Path  # a folder for working files, removed with the stage


def require_tools(to: str) -> None:
    """Refuse in words (with the install command) when the converter of ``to`` is missing."""
    from models.errors import UnsupportedModel

    from .targets import target

    problem = target(to).unavailable()
    if problem:
        raise UnsupportedModel(problem)


def require_new(out: str | os.PathLike[str] | None, source: Path, to: str) -> Path:
    """Where the conversion of ``source`` to ``to`` goes (``out``, or beside the source),
    refused in words when something already has that name."""
    from .targets import target

    final = Path(out).expanduser() if out else target(to).beside(Path(source))
    if final.exists():
        raise ConversionError(f"{final} already exists; choose another output name (-o)")
    final.parent.mkdir(parents=True, exist_ok=True)
    return final


@contextlib.contextmanager
def staged_output(final: Path) -> Iterator[Stage]:
    """Yield a :class:`Stage`; when the block ends without an exception, ``stage.out`` is
    fsynced and renamed to ``final``. Always removes the staging folder; turns an OSError
    (full disk included) into a ConversionError in words."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=PARTIAL_SUFFIX, dir=final.parent))
    try:
        scratch = work / "scratch"
        scratch.mkdir()
        stage = Stage(work / final.name, scratch)
        yield stage
        if stage.out.is_file():
            with open(stage.out, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(stage.out, final)
        fsync_dir(final.parent)
    except OSError as exc:
        if is_disk_full(exc):
            raise NotEnoughSpace(
                f"the disk filled up while writing {final.name}; nothing was kept. {CONVERT_ADVICE}"
            ) from None
        raise ConversionError(f"could not write {final}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def partials_beside(base: Path) -> list[Path]:
    """Staging folders a killed process left behind for outputs named ``base`` or after it
    (``base.gguf``, ``base-2``...)."""
    return sorted(Path(base).parent.glob(f".{Path(base).name}*{PARTIAL_SUFFIX}"))
