"""``fireside search`` / ``fireside pull`` / ``fireside offline``: the Hugging Face Hub."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from models.sizes import size_cell

SEARCH_HELP = "Search the Hugging Face Hub for models (most downloaded first)."
PULL_HELP = "Download a model from the Hugging Face Hub into the library (resumable, verified)."
OFFLINE_HELP = "Show or set offline mode (no network request at all)."


def register(sub: Any) -> None:
    sp = sub.add_parser("search", help=SEARCH_HELP, description=SEARCH_HELP)
    sp.add_argument("query", metavar="QUERY", help="words to look for in repository names")
    sp.add_argument("--format", choices=("gguf", "mlx", "safetensors"), help="only this kind")
    sp.add_argument("--limit", type=int, default=10, help="how many repositories (default 10)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--offline", action="store_true", help="offline mode: make no request")
    sp.set_defaults(handler=run_search)

    pp = sub.add_parser(
        "pull",
        help=PULL_HELP,
        description=PULL_HELP
        + " A GGUF repository gives one quantization (REPO:QUANT, default Q4_K_M when there"
        " are several); an MLX or safetensors repository gives its model folder. Interrupted"
        " downloads continue where they stopped on the next pull.",
    )
    pp.add_argument(
        "ref", metavar="REPO[:QUANT]", help="e.g. bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M"
    )
    pp.add_argument("--revision", help="a branch, tag or commit (default: main)")
    pp.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also download files matching this pattern (e.g. 'mmproj-*'); repeatable",
    )
    pp.add_argument("--offline", action="store_true", help="offline mode: make no request")
    pp.add_argument("--quiet", action="store_true", help="no progress line")
    pp.set_defaults(handler=run_pull)

    op = sub.add_parser("offline", help=OFFLINE_HELP, description=OFFLINE_HELP)
    op.add_argument("state", nargs="?", choices=("on", "off"), help="turn offline mode on or off")
    op.set_defaults(handler=run_offline)


def _offers_line(result: Any) -> list[str]:
    lines = []
    for offer in result.offers:
        fit = f"  {offer.fit}" if offer.fit else ""
        split = f"  ({len(offer.files)} parts)" if offer.split else ""
        lines.append(f"    {offer.label:<14} {size_cell(offer.size):>9}{split}{fit}")
    return lines


def run_search(args: argparse.Namespace) -> int:
    from models.hub import search

    results = search(args.query, format=args.format, limit=args.limit, offline=args.offline or None)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
        return 0
    if not results:
        print(f"Nothing on the Hub matches {args.query!r}.")
        return 0
    for r in results:
        gated = "  gated (log in: hf auth login)" if r.gated else ""
        print(f"{r.repo}  [{r.kind}]  {r.downloads:,} downloads  {r.likes:,} likes{gated}")
        if r.note:
            print(f"    ({r.note})")
        for line in _offers_line(r):
            print(line)
    print("\nDownload one with: fireside pull REPO[:QUANT]")
    return 0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class _ProgressLine:
    def __init__(self, stream: Any) -> None:
        from models.hub import Meter

        self.stream = stream
        self.meter = Meter()
        self.width = 0

    def __call__(self, done: int, total: int) -> None:
        speed, left = self.meter.update(done, total)
        pct = 100.0 * done / total if total else 100.0
        text = (
            f"  {pct:5.1f}%  {size_cell(done)} / {size_cell(total)}"
            f"  {size_cell(int(speed))}/s  ETA {_duration(left)}"
        )
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()

    def end(self) -> None:
        if self.width:
            self.stream.write("\n")
            self.stream.flush()


def run_pull(args: argparse.Namespace) -> int:
    from models.hub import plan_pull, pull_plan

    plan = plan_pull(
        args.ref, revision=args.revision, include=args.include, offline=args.offline or None
    )
    print(
        f"Pulling {plan.repo} {plan.label} @ {plan.revision[:12]}: "
        f"{len(plan.files)} file(s), {size_cell(plan.total)}",
        file=sys.stderr,
    )
    line = None if args.quiet or not sys.stderr.isatty() else _ProgressLine(sys.stderr)
    try:
        result = pull_plan(plan, progress=line)
    except KeyboardInterrupt:
        if line:
            line.end()
            line = None
        print(
            "fireside: interrupted; run the same pull again to continue where it stopped",
            file=sys.stderr,
        )
        return 130
    finally:
        if line:
            line.end()
    rec = result.record
    print(
        f"Added {rec.id} ({rec.format}, {size_cell(rec.size_bytes)}); "
        f"downloaded {size_cell(result.downloaded_bytes)}, reused {size_cell(result.reused_bytes)}."
    )
    print(f"Chat with it: fireside chat --model {rec.id}")
    return 0


def run_offline(args: argparse.Namespace) -> int:
    from models.hub import is_offline, set_offline_setting

    if args.state is not None:
        set_offline_setting(args.state == "on")
    on = is_offline()
    print("offline mode is " + ("on" if on else "off"))
    if on and args.state == "off":
        print("(HF_HUB_OFFLINE is set in the environment, so it stays on for this shell)")
    return 0
