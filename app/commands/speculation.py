"""``--speculate`` and ``--draft``, shared by ``fireside chat`` and ``fireside serve``."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--speculate",
        choices=("off", "ngram"),
        help="speculative decoding on llama.cpp: 'ngram' proposes tokens the answer repeats "
        "from the prompt (pays when it copies: rewriting code, quoting); default: off",
    )
    p.add_argument(
        "--draft",
        metavar="ID|PATH",
        help="a small GGUF model with the same vocabulary that proposes tokens for the "
        "model to check (speculative decoding)",
    )


def backend_options(args: argparse.Namespace, catalog: Any = None) -> dict[str, Any]:
    """BackendOptions keyword arguments for the speculation flags."""
    if not args.draft:
        return {"speculate": args.speculate}
    from models import Catalog
    from runtime.speculative import draft_path

    own = catalog is None
    catalog = catalog or Catalog()
    try:
        return {"speculate": args.speculate, "draft": draft_path(catalog, args.draft)}
    finally:
        if own:
            catalog.close()
