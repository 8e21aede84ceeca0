"""``fireside bench MODEL``: the model on every engine that runs it here, side by side.

The measuring is runtime.bench's; this face adds the quality against the source (the
conversion's own report from quant.quality when the library kept it, measured now when it
did not), prints the table and the recommendation per use, and stores the result for this
machine in the library database, where the engine choice (runtime.dispatch) reads it.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

from models.sizes import size_cell

HELP = "Measure a model on every engine that can run it here and recommend one per use."


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help=HELP, description=HELP + " The result is kept for this "
                       "machine and used to choose the engine when you do not.")  # fmt: skip
    p.add_argument("model", nargs="?", help="a library id or a path (default: the bundled model)")
    p.add_argument("--rounds", type=int, default=3, metavar="N", help="rounds per engine (3)")
    p.add_argument("--tokens", type=int, default=128, metavar="N",
                   help="tokens decoded per answer (128)")  # fmt: skip
    p.add_argument("--parallel", type=int, default=4, metavar="N",
                   help="requests at once for the server figure (4; 1 skips it)")  # fmt: skip
    p.add_argument("--long", type=int, default=1200, metavar="N",
                   help="length of the long prompt in tokens, about (1200)")  # fmt: skip
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads per engine")
    p.add_argument("--engines", metavar="A,B",
                   help="only these engines (also ones used here only when asked, like mlx)")  # fmt: skip
    p.add_argument("--no-quality", action="store_true",
                   help="skip the KL / top-1 comparison against the source checkpoint")  # fmt: skip
    p.add_argument("--no-save", action="store_true", help="do not keep the result")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=run)


class QualityLookup:
    """KL / top-1 of each benched model file against the source (once per file)."""

    def __init__(self, source: Any, cancel: Any = None) -> None:
        self.source, self.cancel = source, cancel
        self.seen: dict[str, tuple[float | None, float | None, str | None]] = {}

    def __call__(self, cand: Any) -> tuple[float | None, float | None, str | None]:
        record = cand.record
        if record.id not in self.seen:
            self.seen[record.id] = self._measure(record)
        return self.seen[record.id]

    def _measure(self, record: Any) -> tuple[float | None, float | None, str | None]:
        from models.errors import describe

        if self.source is None:
            return None, None, "no source checkpoint in the library to compare with"
        if record.path == self.source.path:
            return 0.0, 1.0, "the source itself"
        kept = record.provenance.get("quality")
        if isinstance(kept, dict) and "kl" in kept and "top1" in kept:
            return float(kept["kl"]), float(kept["top1"]), "its conversion report"
        kind = str(record.provenance.get("type") or "")
        if not kind and record.format.startswith("gguf") and record.quantization:
            kind = f"gguf-{record.quantization.lower()}"  # quant's name for the GGUF type
        try:
            from quant import measure  # the face: weights read back, or ONNX Runtime's run

            report = measure(self.source.path, record.path, kind, cancel=self.cancel)
        except Exception as exc:  # the speed figures stand; only the comparison is missing
            return None, None, f"not measured: {describe(exc)}"
        return report.kl, report.top1, "measured now"


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def render(result: Any) -> str:
    head = ("ENGINE · MODEL", "LOAD", "FIRST TOKEN", "LONG PROMPT", "DECODE", "PARALLEL",
            "PEAK MEMORY", "KL", "TOP-1")  # fmt: skip
    table = [head]
    notes = []
    for row in result.rows:
        if row.error:
            notes.append(f"{row.label}: could not run ({row.error})")
            continue
        m = row.median
        long_tokens = m("long_prompt_tokens")
        peak = m("peak_bytes")
        table.append((
            row.label,
            _cell(m("load_s"), ".2f") + " s",
            _cell(m("ttft_short_s"), ".3f") + " s",
            _cell(m("ttft_long_s"), ".2f") + f" s ({long_tokens:.0f} tok)" if long_tokens else "-",
            _cell(m("decode_tps"), ".1f") + " tok/s",
            _cell(m("parallel_tps"), ".1f") + f" tok/s ×{row.parallel}" if row.parallel > 1 else "-",
            size_cell(int(peak)) if peak else "-",
            _cell(row.kl, ".4f"),
            _cell(None if row.top1 is None else 100 * row.top1, ".0f") + ("%" if row.top1 is not None else ""),
        ))  # fmt: skip
        if row.quality_note and row.kl is None:
            notes.append(f"{row.label}: KL {row.quality_note}")
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = [f"{result.model_id} on {result.machine_text}",
             f"{result.settings['rounds']} alternating rounds, medians; greedy, "
             f"{result.settings['tokens']} tokens per answer", ""]  # fmt: skip
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    for what, why in result.skipped:
        notes.append(f"{what}: skipped ({why})")
    if notes:
        lines += [""] + [f"note: {n}" for n in notes]
    if result.recommendations:
        lines += ["", "Recommended here:"]
        lines += [f"  {r.use:<15} {r.text}" for r in result.recommendations]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import threading

    from app.commands.convert import ProgressBar
    from models import Catalog, resolve
    from models.benchmarks import BenchStore
    from models.errors import Cancelled, FiresideError
    from runtime.bench import Bench, BenchSettings, find_source
    from runtime.dispatch import BACKENDS, normalize_name

    for name in ("rounds", "tokens", "parallel", "long"):
        if getattr(args, name) < 1:
            raise FiresideError(f"--{name} must be at least 1")
    catalog = Catalog()
    record = resolve(catalog, args.model)
    library = catalog.list()
    engines = tuple(normalize_name(e) for e in (args.engines or "").split(",") if e.strip())
    if unknown := [e for e in engines if e not in BACKENDS]:
        raise FiresideError(f"unknown engine {unknown[0]!r}; known: {', '.join(sorted(BACKENDS))}")
    settings = BenchSettings(args.rounds, args.tokens, args.parallel, args.threads,
                             long_tokens=args.long, engines=engines)  # fmt: skip
    bench = Bench(settings, threading.Event())
    source = find_source(record, library)
    quality = None if args.no_quality else QualityLookup(source, bench.cancel)
    bar = ProgressBar(f"bench {record.id}")
    previous = signal.signal(signal.SIGINT, lambda *_: bench.stop())
    try:
        result = bench.run(record, library, quality=quality, progress=bar)
    except Cancelled:
        bar.finish()
        print("fireside: benchmark cancelled; nothing was kept", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, previous)
    bar.finish()
    if not args.no_save:
        with BenchStore(catalog.db_path) as store:
            store.save(record.id, result.machine, result.machine_text, result.to_dict())
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(render(result))
    if not args.no_save and result.recommendations:
        print("\nKept for this machine: chat and the server now choose by it when you do not "
              "(set one yourself: fireside models set ID --engine NAME)")  # fmt: skip
    return 0 if any(r.rounds for r in result.rows) else 1
