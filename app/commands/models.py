"""``fireside models ...``: the library from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "List and manage the models in your library."


def register(sub: Any) -> None:
    p = sub.add_parser("models", help=HELP, description=HELP)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lp = msub.add_parser("list", help="list the models in the library")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(handler=run_list)
    register_add_remote(msub)


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


# -- models add-remote -------------------------------------------------------------------
def register_add_remote(msub: Any) -> None:
    rp = msub.add_parser(
        "add-remote",
        help="add a model served by an OpenAI-compatible server (vLLM, llama-server, Ollama, …)",
        description="Add a library entry that chats through an OpenAI-compatible server. "
        "The API key is never stored: only the name of the environment variable holding it.",
    )
    rp.add_argument("name", help="the name to call it by (also its library id)")
    rp.add_argument("url", help="the server's API base, e.g. http://gpu-box:8000/v1")
    rp.add_argument("--model", metavar="ID", help="the server's model id (asked if omitted)")
    rp.add_argument(
        "--api-key-env", metavar="VAR", help="environment variable that holds the API key"
    )
    rp.set_defaults(handler=run_add_remote)


def run_add_remote(args: argparse.Namespace) -> int:
    from models import Catalog
    from runtime.remote import (
        api_key_from_env,
        context_length_of,
        list_remote_models,
        normalize_base_url,
        remote_record,
    )

    base = normalize_base_url(args.url)
    remote_model, n_ctx = args.model, None
    if remote_model is None:  # ask the server which models it has
        offered = list_remote_models(base, api_key_from_env(args.api_key_env, args.name))
        if len(offered) != 1:
            ids = ", ".join(m["id"] for m in offered[:20]) or "none"
            print(
                f"fireside: {base} offers {len(offered)} models ({ids}); choose one with --model",
                file=sys.stderr,
            )
            return 1
        remote_model, n_ctx = offered[0]["id"], context_length_of(offered[0])
    record = remote_record(args.name, base, remote_model, api_key_env=args.api_key_env)
    catalog = Catalog()
    existing = next((r for r in catalog.list() if r.path == record.path), None)
    if existing is not None:
        print(f"{remote_model} at {base} is already in the library as {existing.id}")
        return 0
    record = catalog.add(record.replace(id=catalog.unique_id(record.id), context_length=n_ctx))
    key_note = f", key from ${args.api_key_env}" if args.api_key_env else ""
    print(f"Added {record.id}: {remote_model} at {base}{key_note}")
    print(f"Chat with it: fireside chat --model {record.id}")
    return 0
