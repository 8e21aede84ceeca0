"""``--compile`` and ``--static-cache``, the PyTorch engine's opt-in speed options, shared by
``fireside chat`` and ``fireside serve`` (runtime/torch_fast.py says why they are off)."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compile",
        action="store_true",
        help="PyTorch engine: compile the decode step with torch.compile, on a static KV "
        "cache (a minute or more at load; measured no faster on a laptop CPU: try it on a GPU)",
    )
    p.add_argument(
        "--static-cache",
        action="store_true",
        help="PyTorch engine: a static KV cache, without compiling",
    )


def backend_extra(args: argparse.Namespace) -> dict[str, Any]:
    """``BackendOptions.extra`` for the flags (other engines ignore it)."""
    extra: dict[str, Any] = {}
    if args.compile:
        extra["torch_compile"] = True
    if args.static_cache:
        extra["torch_static_cache"] = True
    return extra
