"""``fireside models ...``: the library from the terminal."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "List and manage the models in your library."


def register(sub: Any) -> None:
    p = sub.add_parser("models", help=HELP, description=HELP)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lp = msub.add_parser("list", help="list the models in the library")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(handler=run_list)


def human_size(n: int | None) -> str:
    if not n:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1000
    return str(n)


def human_count(n: int | None) -> str:
    if not n:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}".replace(".0", "")
    return str(n)


def run_list(args: argparse.Namespace) -> int:
    from models import Catalog

    records = Catalog().list()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print("The library is empty. Import a model with: fireside models import PATH")
        return 0
    rows = [("ID", "NAME", "FORMAT", "QUANT", "PARAMS", "SIZE", "SOURCE")]
    for r in records:
        rows.append(
            (
                r.id,
                r.name,
                r.format,
                r.quantization or "-",
                human_count(r.parameters),
                human_size(r.size_bytes),
                r.source,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
