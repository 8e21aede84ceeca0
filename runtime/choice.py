"""Why an engine runs a model: the user's setting for it, or what ``fireside bench``
measured on this machine, or the format's default (runtime.dispatch asks here first).

The user's setting is the model's ``extra["engine"]`` in the library (``fireside models set
ID --engine NAME``; ``auto`` clears it). A measurement counts only on the machine and engine
builds it was made with (runtime.machine's fingerprint); among the engines that can run the
model here, the one with the fastest measured decode is chosen (chat is the common use).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.benchmarks import ever_measured, results_here
from models.records import ModelRecord

SETTING = "engine"  # the key in ModelRecord.extra


@dataclass(frozen=True)
class Measured:
    engine: str
    tokens_per_s: float
    measured_at: str
    runner_up: tuple[str, float] | None = None

    @property
    def reason(self) -> str:
        day = self.measured_at[:10]
        rate = f"{self.tokens_per_s:.0f} tokens/s"
        if self.runner_up:
            other = f"{self.runner_up[0]} {self.runner_up[1]:.0f}"
            return f"measured fastest here by fireside bench on {day} ({rate}; {other})"
        return f"measured here by fireside bench on {day} ({rate}; the only engine measured)"


def setting_of(record: ModelRecord) -> str | None:
    value = record.extra.get(SETTING) if isinstance(record.extra, dict) else None
    return value if isinstance(value, str) and value.strip() else None


def setting_reason(record: ModelRecord, engine: str) -> str:
    return (
        f"your setting for this model (fireside models set {record.id} --engine auto "
        f"to let Fireside choose)"
    )


def measured(record: ModelRecord, engines: list[str]) -> Measured | None:
    """The fastest of ``engines`` for ``record`` by the newest bench result on this machine."""
    if not ever_measured(record.id):  # the usual case, answered without the fingerprint
        return None
    from .bench_result import BenchResult
    from .machine import fingerprint

    for data in results_here(fingerprint()[0]):
        try:
            result = BenchResult.from_dict(data)
        except (KeyError, TypeError, ValueError):  # an older or damaged entry: not a measure
            continue
        scores = []
        for row in result.rows:
            rate = row.median("decode_tps") if row.rounds and not row.error else None
            if row.model_id == record.id and row.engine in engines and rate:
                scores.append((rate, row.engine))
        if scores:
            scores.sort(reverse=True)
            second = (scores[1][1], scores[1][0]) if len(scores) > 1 else None
            return Measured(scores[0][1], scores[0][0], result.measured_at, second)
    return None


def bench_summary(record: ModelRecord) -> str | None:
    """One line on the newest bench result here that ran ``record`` (None: not measured)."""
    from .bench_result import BenchResult
    from .machine import fingerprint

    for data in results_here(fingerprint()[0]):
        try:
            result = BenchResult.from_dict(data)
        except (KeyError, TypeError, ValueError):
            continue
        rows = [r for r in result.rows if r.model_id == record.id and r.rounds and not r.error]
        if not rows:
            continue
        parts = []
        for row in rows:
            decode, long = row.median("decode_tps"), row.median("ttft_long_s")
            text = f"{row.engine} {decode or 0:.0f} tokens/s"
            if long:
                text += f", {long:.1f} s to read a long prompt"
            parts.append(text)
        return f"{'; '.join(parts)} (fireside bench, {result.measured_at[:10]})"
    return None
