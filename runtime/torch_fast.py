"""The PyTorch engine's speed options: a static KV cache and ``torch.compile``, both opt-in.

- **Static cache**: transformers' ``StaticCache``, allocated in steps (256 tokens, doubled as
  the conversation grows, the old entries copied over) so attention never spans a context's
  worth of empty slots, and kept between answers (cropped, not rebuilt) so a compiled step
  keeps its shapes.
- **Compile**: the one-token decode step goes through ``torch.compile`` (inductor; CUDA graphs
  on CUDA); the prompt is read eagerly. The first step at each cache size compiles (at load
  for the first size): that cost is timed and told to the user in a notice, never hidden.
  Any compile failure falls back to eager, logged and told in words, never a crash.

Both stay off by default, from measurement (tests/perf/test_torch_fast_bench.py, SmolLM2-135M, a
2-core CPU): compiling costs 80-130 s the first time and ~14 s on each later load (inductor's
on-disk cache) for a decode about 1.07x eager's, repaid only after ~4,000 tokens; the static
cache alone decodes no faster. On CUDA (tests/gpu_check.py) they are expected to pay; turn
them on there. Options come in ``BackendOptions.extra``:
``torch_compile`` (implies the static cache), ``torch_static_cache``, ``torch_compile_backend``
(a ``torch.compile`` backend name) and ``torch_compile_mode``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from .errors import InvalidParameters

log = logging.getLogger(__name__)

FIRST_CACHE = 256  # tokens: the static cache starts here and doubles as needed
FLAGS = ("torch_compile", "torch_static_cache")
NAMES = ("torch_compile_backend", "torch_compile_mode")
COMPILE_FAILED = (
    "PyTorch could not compile this model on this machine, so it answers without compiling "
    "(the usual speed); the details are in the log"
)


@dataclass(frozen=True)
class Speed:
    """Which speed options a PyTorch model was loaded with."""

    static_cache: bool = False
    compile: bool = False
    compile_backend: str = "inductor"
    compile_mode: str | None = None  # None: CUDA graphs on CUDA, inductor's default elsewhere


def speed_from(extra: dict[str, Any] | None) -> Speed:
    """The speed options in ``BackendOptions.extra``, checked (plain words when wrong)."""
    extra = extra or {}
    for key in FLAGS:
        if key in extra and not isinstance(extra[key], bool):
            raise InvalidParameters(f"the PyTorch option {key} must be true or false")
    for key in NAMES:
        if extra.get(key) is not None and not isinstance(extra[key], str):
            raise InvalidParameters(f"the PyTorch option {key} must be a name")
    compile_ = bool(extra.get("torch_compile", False))
    return Speed(
        static_cache=compile_ or bool(extra.get("torch_static_cache", False)),
        compile=compile_,
        compile_backend=extra.get("torch_compile_backend") or "inductor",
        compile_mode=extra.get("torch_compile_mode"),
    )


def cache_size(needed: int, n_ctx: int) -> int:
    """The static cache size that holds ``needed`` tokens: 256 doubled, at most the context."""
    size = FIRST_CACHE
    while size < needed:
        size *= 2
    return max(min(size, n_ctx), min(needed, n_ctx))


def _plain_static(cache: Any) -> bool:
    from transformers.cache_utils import StaticLayer

    return all(type(layer) is StaticLayer for layer in cache.layers)


def _capacity(cache: Any) -> int:
    return int(cache.layers[0].max_cache_len)


class FastPath:
    """The static cache and the compiled decode step of one loaded model."""

    def __init__(self, model: Any, speed: Speed, device: str, n_ctx: int, cache_arg: str):
        self.model, self.speed, self.device = model, speed, device
        self.n_ctx, self.cache_arg = n_ctx, cache_arg
        self.static = speed.static_cache
        self.compile_s = 0.0  # seconds spent compiling so far (all cache sizes)
        self.compiled_sizes: dict[int, float] = {}  # cache size -> seconds its compile took
        self.failure: str | None = None  # why compiling was given up, in words
        self._notices: list[str] = []
        self._step: Any = None
        if self.static:
            probe = self._new_cache(FIRST_CACHE)
            if not _plain_static(probe):  # sliding-window or hybrid layers
                self.static = False
                self._notices.append(
                    "this model's attention layers do not suit a static cache, so PyTorch "
                    "uses its usual cache (and does not compile)"
                )
        if self.static and speed.compile:
            import torch

            mode = speed.compile_mode
            if mode is None and device.startswith("cuda"):
                mode = "reduce-overhead"  # CUDA graphs: the launch overhead is the cost there
            try:
                self._step = torch.compile(
                    model.forward, backend=speed.compile_backend, mode=mode, dynamic=False
                )
            except Exception:  # an unknown backend or mode is refused here, at once
                self._give_up()

    # -- what the backend asks -------------------------------------------------------------
    def take_notices(self) -> str | None:
        """What the user should be told since the last answer (compile cost, fallback)."""
        notes, self._notices = self._notices, []
        return "; ".join(notes) or None

    def report(self) -> dict[str, Any]:
        """The speed options in effect and what they cost (benchmarks and doctor read it)."""
        return {
            "static_cache": self.static,
            "compile": self._step is not None,
            "compile_s": round(self.compile_s, 2),
            "compiled_sizes": dict(self.compiled_sizes),
            "compile_failure": self.failure,
        }

    def fresh(self, cache: Any) -> Any:
        """An empty cache: a kept static one is emptied in place (its shapes stay compiled)."""
        if self.static and cache is not None:
            import torch

            with torch.inference_mode():  # its tensors were made there
                cache.crop(-int(cache.get_seq_length()))
            return cache
        if self.static:
            return self._new_cache(cache_size(0, self.n_ctx))
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def fit(self, cache: Any, needed: int) -> Any:
        """``cache`` able to hold ``needed`` tokens (a bigger static one, contents copied)."""
        if not self.static or cache is None or needed <= _capacity(cache):
            return cache
        bigger = self._new_cache(cache_size(needed, self.n_ctx))
        n = int(cache.get_seq_length())
        for old, new in zip(cache.layers, bigger.layers):
            if not old.is_initialized:
                continue
            new.lazy_initialization(old.keys[:, :, :0], old.values[:, :, :0])
            new.keys[:, :, :n].copy_(old.keys[:, :, :n])
            new.values[:, :, :n].copy_(old.values[:, :, :n])
            new.cumulative_length.fill_(n)
        return bigger

    def forward(self, input_ids: Any, cache: Any) -> Any:
        """Logits of the last position: the compiled step for one token, eager otherwise."""
        if self._step is None or input_ids.shape[-1] != 1:
            return self._eager(input_ids, cache)
        size = _capacity(cache)
        before = int(cache.get_seq_length())
        first = size not in self.compiled_sizes
        start = time.perf_counter()
        try:
            out = self._step(input_ids=input_ids, use_cache=True, **{self.cache_arg: cache})
            logits = out.logits[0, -1].clone()  # CUDA graphs reuse their output memory
        except Exception:
            self._give_up()
            now = int(cache.get_seq_length())
            if now > before:  # the failed call had already stored this token
                cache.crop(before - now)
            return self._eager(input_ids, cache)
        if first:
            took = time.perf_counter() - start
            self.compiled_sizes[size] = round(took, 2)
            self.compile_s += took
            log.info("torch.compile: %d-token cache compiled in %.1f s", size, took)
            self._notices.append(
                f"PyTorch compiled the model for a {size}-token cache in {took:.1f} s "
                f"(once per cache size; later tokens reuse it)"
            )
        return logits

    def warm_up(self, first_token: int) -> None:
        """Compile the first cache size now (at load), so the first answer is not the one
        that waits; a failure here falls back to eager like any other."""
        if self._step is None:
            return
        import torch

        cache = self.fresh(None)
        with torch.inference_mode():
            ids = torch.tensor([[first_token]], dtype=torch.long, device=self.device)
            self._eager(ids, cache)
            self.forward(ids, cache)
            self.forward(ids, cache)  # a second call: a recompile on it would show here
        self.warm_cache = self.fresh(cache)

    warm_cache: Any = None  # the warmed-up (empty) static cache, for the first answer

    # -- inside ----------------------------------------------------------------------------
    def _new_cache(self, size: int) -> Any:
        from transformers import StaticCache

        return StaticCache(config=self.model.config, max_cache_len=size)

    def _eager(self, input_ids: Any, cache: Any) -> Any:
        out = self.model(input_ids=input_ids, use_cache=True, **{self.cache_arg: cache})
        return out.logits[0, -1]

    def _give_up(self) -> None:
        log.warning("torch.compile failed; answering eagerly", exc_info=True)
        self._step = None
        self.failure = COMPILE_FAILED
        self._notices.append(COMPILE_FAILED)
