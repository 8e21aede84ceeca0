"""What ``fireside bench`` measured, and what it recommends for each use. No engines here.

One :class:`EngineRow` per engine and model file it ran (the model itself, its source
checkpoint, its conversions), holding every round; the figures shown are medians over the
rounds. :func:`recommend` turns the rows into a plain choice per use:

- **chat**: the fastest decode (tokens per second while the answer streams);
- **long documents**: the shortest wait for the first token after a ~1,200-token prompt;
- **server**: the most tokens per second over several requests at once.

A row whose quality against the source is "badly degraded" (mean KL 0.2 or more, the
conversion report's own bound) is recommended only when nothing else ran.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field
from typing import Any

BAD_KL = 0.2  # quant.quality's "badly degraded" bound
USES = {
    "chat": ("decode_tps", max, "the fastest answers while chatting"),
    "long documents": ("ttft_long_s", min, "the shortest wait after a long prompt"),
    "server": ("parallel_tps", max, "the most tokens per second over requests at once"),
}


@dataclass(frozen=True)
class Round:
    load_s: float
    ttft_short_s: float
    ttft_long_s: float
    decode_tps: float
    parallel_tps: float
    peak_bytes: int | None
    long_prompt_tokens: int
    decode_tokens: int


@dataclass
class EngineRow:
    engine: str
    model_id: str
    model_name: str
    format: str
    quantization: str | None
    role: str  # "this model", "source", "conversion"
    rounds: list[Round] = field(default_factory=list)
    kl: float | None = None
    top1: float | None = None
    quality_note: str | None = None  # where the KL came from, or why there is none
    error: str | None = None
    parallel: int = 1

    def median(self, name: str) -> float | None:
        values = [getattr(r, name) for r in self.rounds if getattr(r, name) is not None]
        return float(statistics.median(values)) if values else None

    @property
    def label(self) -> str:
        quant = f" {self.quantization}" if self.quantization else ""
        return f"{self.engine} · {self.model_id}{quant}"

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["medians"] = {n: self.median(n) for n in (f.name for f in dataclasses.fields(Round))}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineRow:
        known = {f.name for f in dataclasses.fields(cls)}
        row = cls(**{k: v for k, v in data.items() if k in known and k != "rounds"})
        row.rounds = [Round(**r) for r in data.get("rounds") or []]
        return row


@dataclass(frozen=True)
class Recommendation:
    use: str
    engine: str
    model_id: str
    text: str


@dataclass
class BenchResult:
    model_id: str
    machine: str  # the fingerprint key (runtime.machine)
    machine_text: str
    measured_at: str
    settings: dict[str, Any]
    rows: list[EngineRow]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (what, why)
    recommendations: list[Recommendation] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "machine": self.machine,
            "machine_text": self.machine_text,
            "measured_at": self.measured_at,
            "settings": self.settings,
            "rows": [r.to_dict() for r in self.rows],
            "skipped": [list(s) for s in self.skipped],
            "recommendations": [dataclasses.asdict(r) for r in self.recommendations],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        return cls(
            model_id=str(data["model_id"]),
            machine=str(data["machine"]),
            machine_text=str(data.get("machine_text", "")),
            measured_at=str(data.get("measured_at", "")),
            settings=dict(data.get("settings") or {}),
            rows=[EngineRow.from_dict(r) for r in data.get("rows") or []],
            skipped=[(str(a), str(b)) for a, b in data.get("skipped") or []],
            recommendations=[Recommendation(**r) for r in data.get("recommendations") or []],
        )

    def best_for(self, use: str) -> Recommendation | None:
        return next((r for r in self.recommendations if r.use == use), None)


def _figure(name: str, value: float) -> str:
    if name.endswith("_s"):
        return f"{value:.2f} s to the first token"
    return f"{value:.0f} tokens/s"


def recommend(rows: list[EngineRow]) -> list[Recommendation]:
    """The engine (and model file) to use for each use, with the figure that decided it."""
    ran = [r for r in rows if r.rounds and not r.error]
    good = [r for r in ran if r.kl is None or r.kl < BAD_KL] or ran
    out = []
    for use, (metric, pick, why) in USES.items():
        scored: list[tuple[float, EngineRow]] = []
        for r in good:
            v = r.median(metric)
            if v is not None and v > 0:
                scored.append((v, r))
        if not scored:
            continue
        value, best = pick(scored, key=lambda vr: vr[0])
        text = f"{best.label}: {_figure(metric, value)}"
        others = [(v, r) for v, r in scored if r is not best]
        if others:
            v2, second = pick(others, key=lambda vr: vr[0])
            ratio = value / v2 if metric.endswith("tps") else v2 / value
            text += f", {ratio:.2f}x {second.label} ({why})"
        else:
            text += " (the only engine that ran)"
        if best.kl is not None:
            text += f"; KL {best.kl:.4f} against the source"
        out.append(Recommendation(use, best.engine, best.model_id, text))
    return out
