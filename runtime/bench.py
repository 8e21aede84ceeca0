"""``fireside bench``'s measuring: the same model on every engine that runs it here.

The family of a model is the model itself, the source checkpoint it was converted from (the
library's provenance) and the source's other conversions in the library (GGUF, ONNX, MLX).
Each member runs on every engine registered for its format that is installed here (an
engine used only on request here, such as MLX off Apple Silicon, is listed as skipped).

Rounds alternate the order of the engines, so machine noise hits all alike. A round runs
one engine in a fresh engine child (``runtime.engine``): load, a short warm-up, a short
prompt with a streamed answer (time to first token, decode tokens/s), a ~1,200-token prompt
(time to first token), several requests at once (total tokens/s), and the child's peak
resident memory. Greedy decoding; nothing is cached between rounds. The quality against the
source is the caller's (``quality``, from quant.quality in the app layer: runtime never
imports quant). Cancel: ``stop()`` from any thread (or ``cancel.set()``).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import Cancelled, FiresideError, describe
from models.records import FORMAT_ENGINES, HF_FORMATS, ModelRecord, now_iso
from models.work import Progress

from .backend import BackendOptions
from .bench_result import BenchResult, EngineRow, Round, recommend
from .dispatch import (
    cannot_run,
    install_hint,
    installed,
    normalize_name,
    on_request_only,
)
from .engine import Engine
from .errors import EngineCrashed
from .machine import fingerprint
from .params import GREEDY

SHORT = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper and a storm."}]
WARM_UP = [{"role": "user", "content": "Hello!"}]
_TOPICS = (
    "the harbour", "the orchard", "the railway", "the library", "the market", "the mill",
    "the school", "the bridge", "the weather", "the festival", "the forest", "the river",
)  # fmt: skip


TOKENS_PER_SECTION = 66  # measured with SmolLM2's tokenizer


def long_prompt(tokens: int = 1200) -> list[dict[str, str]]:
    """A document question of about ``tokens`` tokens (Llama-style tokenizer), our own words."""
    parts = []
    for i in range(max(1, round(tokens / TOKENS_PER_SECTION))):
        topic = _TOPICS[i % len(_TOPICS)]
        parts.append(
            f"Section {i + 1}. The council met on day {3 * i + 2} to discuss {topic}. Members "
            f"agreed that {topic} needed {i + 4} new volunteers, a budget of {150 * (i + 1)} "
            f"coins and a written plan by the end of the month; two members asked for a "
            f"second meeting to compare costs with the neighbouring town."
        )
    text = "\n".join(parts)
    return [{"role": "user", "content": f"{text}\n\nSummarise what the council decided."}]


@dataclass(frozen=True)
class Candidate:
    engine: str
    record: ModelRecord
    role: str


@dataclass(frozen=True)
class BenchSettings:
    rounds: int = 3
    tokens: int = 128  # decoded per short answer
    parallel: int = 4  # requests at once for the server figure (1: not measured)
    threads: int | None = None
    n_ctx: int = 2048
    long_tokens: int = 1200  # the long prompt's length, about
    engines: tuple[str, ...] = ()  # only these (also engines used only on request here)


def find_source(record: ModelRecord, library: list[ModelRecord]) -> ModelRecord | None:
    """The Hugging Face checkpoint ``record`` was converted from, when the library knows it
    (or its folder is still there); the record itself when it is one."""
    if record.format in HF_FORMATS:
        return record
    prov = record.provenance
    by_id = {r.id: r for r in library}
    if prov.get("source_id") in by_id and by_id[prov["source_id"]].format in HF_FORMATS:
        return by_id[prov["source_id"]]
    origin = prov.get("origin")
    if not isinstance(origin, str) or record.source != "converted":
        return None
    match = next((r for r in library if r.path == origin and r.format in HF_FORMATS), None)
    if match is None and Path(origin).is_dir():
        from models.recognize import describe as describe_path

        try:
            match = describe_path(Path(origin))
        except FiresideError:
            return None
        if match.format not in HF_FORMATS:
            return None
    return match


def family(record: ModelRecord, library: list[ModelRecord]) -> list[tuple[ModelRecord, str]]:
    """(model, role): the model, its source and the source's conversions in the library."""
    source = find_source(record, library)
    members = [(record, "this model")]
    if source is not None and source.path != record.path:
        members.append((source, "source"))
    if source is not None:
        for r in library:
            if (
                r.source == "converted"
                and r.path != record.path
                and (
                    r.provenance.get("origin") == source.path
                    or r.provenance.get("source_id") == source.id
                )
            ):
                members.append((r, "conversion"))
    return members


def candidates(
    record: ModelRecord, library: list[ModelRecord], only: tuple[str, ...] = ()
) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """What runs here, and what was left out and why."""
    wanted = tuple(normalize_name(e) for e in only)
    runs: list[Candidate] = []
    skipped: list[tuple[str, str]] = []
    for member, role in family(record, library):
        for engine in FORMAT_ENGINES.get(member.format, ()):
            what = f"{engine} · {member.id}"
            if wanted and engine not in wanted:
                continue
            if not installed(engine):
                skipped.append((what, f"not installed: {install_hint(engine)}"))
            elif (why := on_request_only(engine)) and engine not in wanted:
                skipped.append((what, f"{why} (include it with --engines {engine})"))
            elif refusal := cannot_run(engine, member):
                skipped.append((what, refusal))
            else:
                runs.append(Candidate(engine, member, role))
    return runs, skipped


def _peak_rss(pid: int | None) -> int | None:
    """The child's peak resident memory (Linux VmHWM), else its current resident memory."""
    if pid is None:
        return None
    if sys.platform.startswith("linux"):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
    try:
        import psutil

        return int(psutil.Process(pid).memory_info().rss)
    except Exception:  # the child is gone or psutil is missing: no figure
        return None


class Bench:
    """One bench run; ``stop()`` cancels it from another thread (the CLI's Ctrl-C)."""

    def __init__(self, settings: BenchSettings, cancel: Any = None) -> None:
        self.settings = settings
        self.cancel = cancel if cancel is not None else threading.Event()
        self._engine: Engine | None = None

    def stop(self) -> None:
        self.cancel.set()
        engine = self._engine
        if engine is not None:
            engine.kill()  # a load in progress cannot be stopped politely

    def _check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled("the benchmark was cancelled")

    def _answer(self, engine: Engine, messages: list[dict[str, str]], tokens: int) -> Any:
        last = None
        stream = engine.stream(messages, GREEDY.replace(max_tokens=tokens, seed=0))
        for chunk in stream:
            last = chunk
            if self.cancel.is_set():
                stream.cancel()
        self._check()
        if last is None or last.timings is None:
            raise EngineCrashed(last.error if last and last.error else "the engine gave no answer")
        return last

    def _parallel(self, engine: Engine, n: int) -> float:
        """Total tokens/s of ``n`` short answers at once."""
        done: list[int] = [0] * n
        errors: list[BaseException] = []

        def one(i: int) -> None:
            try:
                prompt = [{"role": "user", "content": f"{SHORT[0]['content']} Version {i + 1}."}]
                done[i] = self._answer(engine, prompt, self.settings.tokens // 2).completion_tokens
            except BaseException as exc:  # reported below, in the caller's thread
                errors.append(exc)

        start = time.perf_counter()
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return sum(done) / max(time.perf_counter() - start, 1e-9)

    def run_round(self, cand: Candidate) -> Round:
        s = self.settings
        options = BackendOptions(n_ctx=s.n_ctx, n_threads=s.threads, n_parallel=s.parallel)
        engine = self._engine = Engine()
        try:
            start = time.perf_counter()
            engine.load(cand.record, options, backend=cand.engine)
            load_s = time.perf_counter() - start
            self._check()
            self._answer(engine, WARM_UP, 2)
            short = self._answer(engine, SHORT, s.tokens)
            long = self._answer(engine, long_prompt(s.long_tokens), 1)
            parallel = self._parallel(engine, s.parallel) if s.parallel > 1 else 0.0
            return Round(
                load_s=round(load_s, 4),
                ttft_short_s=round(short.timings.time_to_first_token_s, 4),
                ttft_long_s=round(long.timings.time_to_first_token_s, 4),
                decode_tps=round(short.timings.generation_tokens_per_s, 2),
                parallel_tps=round(parallel, 2),
                peak_bytes=_peak_rss(engine.pid),
                long_prompt_tokens=long.prompt_tokens,
                decode_tokens=short.completion_tokens,
            )
        except EngineCrashed:
            self._check()  # killed by stop(): cancelled, not crashed
            raise
        finally:
            self._engine = None
            engine.close()

    def run(
        self,
        record: ModelRecord,
        library: list[ModelRecord],
        *,
        quality: Callable[[Candidate], tuple[float | None, float | None, str | None]] | None = None,
        progress: Progress | None = None,
        on_step: Callable[[str], None] | None = None,
    ) -> BenchResult:
        s = self.settings
        runs, skipped = candidates(record, library, s.engines)
        if not runs:
            why = "; ".join(f"{what}: {reason}" for what, reason in skipped) or "none is registered"
            raise FiresideError(f"no engine here can run {record.name} ({why})")
        rows = [
            EngineRow(c.engine, c.record.id, c.record.name, c.record.format,
                      c.record.quantization, c.role, parallel=s.parallel)
            for c in runs
        ]  # fmt: skip
        total = s.rounds * len(runs) + (len(runs) if quality else 0)
        done = 0
        for n in range(s.rounds):
            order = list(range(len(runs)))[:: 1 if n % 2 == 0 else -1]
            for i in order:
                self._check()
                if rows[i].error is None:
                    if on_step:
                        on_step(f"round {n + 1}/{s.rounds}: {rows[i].label}")
                    try:
                        rows[i].rounds.append(self.run_round(runs[i]))
                    except Cancelled:
                        raise
                    except (FiresideError, OSError, MemoryError) as exc:
                        self._check()
                        rows[i].error = describe(exc)
                done += 1
                if progress:
                    progress(done, total)
        if quality:
            for cand, row in zip(runs, rows):
                self._check()
                if on_step:
                    on_step(f"quality: {row.label}")
                row.kl, row.top1, row.quality_note = quality(cand)
                done += 1
                if progress:
                    progress(done, total)
        key, text = fingerprint()
        settings = dataclasses.asdict(s)
        return BenchResult(
            record.id, key, text, now_iso(), settings, rows, skipped, recommend(rows)
        )
