"""``fireside models ...``: the library from the terminal."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from models.sizes import human_count, size_cell

HELP = "List and manage the models in your library."


def register(sub: Any) -> None:
    p = sub.add_parser("models", help=HELP, description=HELP)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    lp = msub.add_parser("list", help="list the models in the library")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(handler=run_list)
    register_add_remote(msub)
    register_library(msub)


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
                size_cell(r.size_bytes),
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
    from runtime.remote_server import (
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


# -- show, import, scan, rename, remove, fit ------------------------------------------------
def register_library(msub: Any) -> None:
    sp = msub.add_parser("show", help="everything about one model: metadata, chat template, files")
    sp.add_argument("id", help="the model's library id")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(handler=run_show)

    ip = msub.add_parser(
        "import",
        help="add a .gguf file, a split GGUF, a Hugging Face or MLX folder, or a folder of them",
        description="Validate and add models to the library. By default a model already inside "
        "the library or another app's store (Hugging Face cache, LM Studio, Ollama) is "
        "registered where it is, and anything else is copied into the library.",
    )
    ip.add_argument("path", help="a .gguf file (the first part of a split one), or a folder")
    mode = ip.add_mutually_exclusive_group()
    mode.add_argument("--copy", dest="mode", action="store_const", const="copy",
                      help="copy the files into the library (checked, with sha256)")  # fmt: skip
    mode.add_argument("--link", dest="mode", action="store_const", const="link",
                      help="register the files where they are; nothing is copied")  # fmt: skip
    ip.add_argument("--name", help="the name to show for it")
    ip.add_argument("--json", action="store_true", help="machine-readable output")
    ip.set_defaults(handler=run_import, mode=None)

    scp = msub.add_parser(
        "scan",
        help="find models in the Hugging Face cache, LM Studio and Ollama; register them in place",
    )
    scp.add_argument("--json", action="store_true", help="machine-readable output")
    scp.set_defaults(handler=run_scan)

    rp = msub.add_parser("rename", help="give a model another display name")
    rp.add_argument("id")
    rp.add_argument("name")
    rp.set_defaults(handler=run_rename)

    dp = msub.add_parser(
        "remove",
        help="remove a model (its files are deleted only if the library owns them)",
    )
    dp.add_argument("id")
    dp.set_defaults(handler=run_remove)

    setp = msub.add_parser("set", help="change a model's settings (the engine that runs it)")
    setp.add_argument("id")
    setp.add_argument(
        "--engine",
        required=True,
        metavar="NAME",
        help="the engine to run it on (llama.cpp, onnx, torch, mlx, ...); auto: let Fireside "
        "choose (by fireside bench where measured)",
    )
    setp.set_defaults(handler=run_set)

    fp = msub.add_parser("fit", help="will the model fit in memory? (weights + KV cache + runtime)")
    fp.add_argument("id")
    fp.add_argument("--ctx", type=int, metavar="N", help="context length in tokens")
    fp.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="requests served at once, each with its own context (default: 1)",
    )
    fp.add_argument("--json", action="store_true", help="machine-readable output")
    fp.set_defaults(handler=run_fit)


def _print_record(r: Any) -> None:
    fields = [
        ("id", r.id),
        ("name", r.name),
        ("format", r.format),
        ("architecture", r.architecture or "-"),
        ("parameters", human_count(r.parameters)),
        ("quantization", r.quantization or "-"),
        ("bits/weight", f"{r.bits_per_weight:.2f}" if r.bits_per_weight else "-"),
        ("size", size_cell(r.size_bytes)),
        ("context", str(r.context_length or "-")),
        ("chat template", "yes" if r.has_chat_template else "no"),
        ("source", r.source + (" (files owned by the library)" if r.owned else "")),
        ("path", r.path),
        ("added", r.added_at),
    ]
    for key, value in r.provenance.items():
        if key == "quality" and isinstance(value, dict):
            fields.append(("quality", quality_sentence(value)))
        elif key != "files":
            fields.append((key, str(value)))
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        print(f"{key.ljust(width)}  {value}")


def quality_sentence(report: dict[str, Any]) -> str:
    """The quality report kept with a converted model (quant.quality), in one sentence."""
    if report.get("summary"):
        return str(report["summary"])
    return f"{report.get('verdict', '?')} (mean KL {report.get('kl')}, top-1 {report.get('top1')})"


def run_show(args: argparse.Namespace) -> int:
    from models import Catalog
    from models.recognize import model_details

    record = Catalog().get(args.id)
    details = model_details(record) if record.format != "remote" else {}
    if record.format != "remote":
        from runtime.reasoning import describe_support as thinking_support
        from runtime.reasoning import thinks
        from runtime.tools import describe_support, tool_format

        template = details.get("chat_template")
        details["tools"] = tool_format(template)  # hermes, llama3, mistral, other or None
        details["thinking"] = thinks(template)  # a reasoning model's template (<think>)
    if args.json:
        details["engine"] = engine_sentence(record)
        print(json.dumps({**record.to_dict(), **details}, indent=2, default=str))
        return 0
    _print_record(record)
    print(f"engine: {engine_sentence(record)}")
    if record.format != "remote":
        print(f"tools: {describe_support(template)}")
        print(f"thinking: {thinking_support(template)}")
    if details.get("files"):
        print("\nfiles:")
        for f in details["files"]:
            print(f"  {f['path']}  ({size_cell(f['size'])})")
    if details.get("metadata"):
        print("\nmetadata:")
        for key, value in details["metadata"].items():
            text = json.dumps(value, default=str) if not isinstance(value, str) else value
            print(f"  {key} = {text[:200]}")
    if details.get("chat_template"):
        print("\nchat template:")
        print(details["chat_template"])
    return 0


class _Bar:
    """A one-line progress bar on stderr (only when it is a terminal)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        pct = int(100 * done / total)
        if pct != self.last:
            self.last = pct
            bar = "#" * (pct // 4)
            print(f"\rcopying [{bar:<25}] {pct:3d}% of {size_cell(total)}",
                  end="", file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        if self.enabled and self.last >= 0:
            print(file=sys.stderr)


def run_import(args: argparse.Namespace) -> int:
    from models import Catalog
    from models.library import import_model

    catalog = Catalog()
    before = {r.id for r in catalog.list()}
    bar = _Bar()
    try:
        records = import_model(
            args.path, mode=args.mode, name=args.name, catalog=catalog, progress=bar
        )
    finally:
        bar.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    for r in records:
        if r.id in before:
            print(f"{r.id}: already in the library ({r.name})")
        else:
            how = (
                "copied into the library"
                if r.owned and r.provenance.get("mode") == "copy"
                else ("registered in place")
            )
            print(f"{r.id}: {r.name} ({r.format}, {size_cell(r.size_bytes)}) {how}")
    return 0


def run_scan(args: argparse.Namespace) -> int:
    from models import Catalog
    from models.stores import scan, store_roots

    result = scan(Catalog())
    if args.json:
        print(json.dumps({
            "added": [r.to_dict() for r in result.added],
            "known": [r.id for r in result.known],
            "skipped": [{"path": p, "reason": why} for p, why in result.skipped],
            "searched": result.searched,
        }, indent=2))  # fmt: skip
        return 0
    if not result.searched:
        print("No other app's model store was found. Looked in:")
        for root in store_roots():
            print(f"  {root}")
        return 0
    print("Searched: " + ", ".join(result.searched))
    for r in result.added:
        print(f"added {r.id}: {r.name} ({r.format}, {size_cell(r.size_bytes)}) at {r.path}")
    if result.known:
        print(f"{len(result.known)} model(s) were already in the library")
    for path, why in result.skipped:
        print(f"skipped {path}: {why}")
    if not result.added and not result.known:
        print("No models found.")
    return 0


def run_set(args: argparse.Namespace) -> int:
    from models import Catalog
    from runtime.choice import SETTING
    from runtime.dispatch import cannot_run, decide, normalize_name
    from runtime.errors import BackendUnavailable

    catalog = Catalog()
    record = catalog.get(args.id)
    extra = dict(record.extra)
    wanted = normalize_name(args.engine)
    if wanted == "auto":
        extra.pop(SETTING, None)
    else:
        decide(record, wanted)  # refuses, in words, an engine that cannot run it here
        if why := cannot_run(wanted, record):
            raise BackendUnavailable(why)
        extra[SETTING] = wanted
    record = catalog.update(record.replace(extra=extra))
    name, why = decide(record)
    print(f"{record.id} runs on {name}: {why}")
    return 0


def engine_sentence(record: Any) -> str:
    """Which engine runs the model here and why, and the stored bench result, for `show`."""
    from runtime.dispatch import plan

    choice = plan(record)
    if choice.device is None:
        return f"cannot run here: {choice.note}"
    return f"{choice.backend} on {choice.device}: {choice.reason}"


def run_rename(args: argparse.Namespace) -> int:
    from models import Catalog

    record = Catalog().rename(args.id, args.name)
    print(f"{record.id} is now called {record.name}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from models.library import remove_model

    print(remove_model(args.id).message())
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from models import Catalog
    from models.fit import estimate

    est = estimate(Catalog().get(args.id), args.ctx, n_parallel=args.parallel)
    if args.json:
        print(json.dumps(est.to_dict(), indent=2))
        return 0
    mem = est.memory
    at_once = f", {est.n_parallel} requests at once" if est.n_parallel > 1 else ""
    print(f"{est.model_id} at {est.n_ctx} tokens of context{at_once} ({est.engine}): {est.verdict}")
    print(f"  weights        {size_cell(est.weights)}")
    slots = f" for {est.n_parallel} slots" if est.n_parallel > 1 else ""
    print(f"  KV cache       {size_cell(est.kv_cache)} ({est.kv_dtype}{slots})")
    print(f"  runtime        {size_cell(est.overhead)}")
    print(f"  peak, chatting {size_cell(est.typical)}")
    print(f"  peak, full context and a long prompt {size_cell(est.worst)}")
    print(f"  available      {size_cell(mem.available)} of {size_cell(mem.total)} {mem.device}")
    for note in est.notes:
        print(f"  note: {note}")
    return 0
