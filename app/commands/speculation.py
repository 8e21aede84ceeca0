"""``--speculate`` and ``--draft``, shared by ``fireside chat`` and ``fireside serve``."""

from __future__ import annotations

import argparse
from typing import Any

UNUSED = "speculative decoding runs on llama.cpp (GGUF models) only; this model answers without it"


def unused(options: Any, info: Any) -> bool:
    """Whether speculation was asked for but the engine that loaded the model has none."""
    asked = options.draft or options.speculate not in (None, "off")
    return bool(asked) and getattr(info, "speculation", "off") == "off"


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
