"""The MLX backend: MLX model folders through mlx-lm (Apple Silicon; CPU MLX on Linux on request).

Tokens come from mlx-lm's ``generate_step`` (the same step ``mlx_lm.stream_generate`` uses),
wrapped so the prompt is cancellable between prefill chunks and the answer between tokens,
and the KV cache is kept between turns for the prompt prefix they share. The chat template
comes from the tokenizer config and is rendered by the shared sandbox, like every backend.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from pathlib import Path
from typing import Any

from models.errors import FiresideError
from models.fit import load_context
from models.hf import read_hf_folder

from . import hf_tokens
from .backend import Backend
from .errors import BackendUnavailable, ModelLoadError
from .params import GenerationParams
from .types import ModelInfo, Progress

PREFILL_CHUNK = 512  # prompt tokens per step between cancellation checks
REPEAT_LAST_N = 64  # the repeat penalty looks this far back (as llama.cpp does)


class _PromptCancelled(Exception):
    pass


def mlx_device() -> str:
    """ "gpu" where MLX has Metal, else "cpu"."""
    import mlx.core as mx

    try:
        return "gpu" if mx.metal.is_available() else "cpu"
    except AttributeError:
        return "cpu"


def rope_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """Config entries mlx-lm reads but a transformers-5 config keeps under ``rope_parameters``.

    Without them mlx-lm silently uses its default RoPE base: a wrong model that still talks.
    """
    params = config.get("rope_parameters")
    if not isinstance(params, dict) or "rope_theta" not in params:
        return {}
    extra: dict[str, Any] = {}
    if "rope_theta" not in config:
        extra["rope_theta"] = params["rope_theta"]
    rope_type = params.get("rope_type") or params.get("type") or "default"
    if rope_type != "default" and not config.get("rope_scaling"):
        extra["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    return extra


class MLXBackend(Backend):
    name = "mlx"

    _model: Any = None
    _tokenizer: Any = None

    def load(self, progress: Progress | None = None) -> ModelInfo:
        path = Path(self.record.path)
        if progress:
            progress(0, 3)
        ckpt = read_hf_folder(path)  # validates config and weight headers first
        if ckpt.weight_format != "safetensors":
            raise ModelLoadError(f"{path.name} has no safetensors weights; MLX needs them")
        if not ckpt.has_tokenizer:
            raise ModelLoadError(f"{path.name} has no tokenizer files; the folder is incomplete")
        try:
            import mlx.core as mx
            from mlx.utils import tree_map
            from mlx_lm.utils import load
        except ImportError as exc:
            raise BackendUnavailable(
                f"the MLX backend cannot start ({exc.name or exc}): pip install 'fireside[mlx]'"
            ) from None
        if progress:
            progress(1, 3)
        try:
            model, tokenizer, config = load(
                str(path),
                model_config=rope_overrides(ckpt.config) or None,
                return_config=True,
                trust_remote_code=False,
                tokenizer_config={"trust_remote_code": False},
            )
        except FiresideError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, ImportError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelLoadError(f"MLX could not load {path.name}: {first}") from None
        if self.options.dtype:
            dtype = getattr(mx, self.options.dtype, None)
            if not isinstance(dtype, mx.Dtype):
                raise ModelLoadError(f"unknown dtype {self.options.dtype!r} for MLX")

            def cast(v: Any) -> Any:
                return v.astype(dtype) if mx.issubdtype(v.dtype, mx.floating) else v

            model.update(tree_map(cast, model.parameters()))
            mx.eval(model.parameters())
        self._model, self._tokenizer = model, tokenizer
        hf_tok = tokenizer._tokenizer
        self._template_vars = hf_tokens.template_vars(hf_tok)
        self._end_ids = hf_tokens.end_ids(
            list(tokenizer.eos_token_ids), config.get("eos_token_id"), hf_tok.eos_token_id
        )
        self._cache: Any = None
        self._cached: list[int] = []
        max_pos = config.get("max_position_embeddings")
        if not isinstance(max_pos, int):
            max_pos = (config.get("text_config") or {}).get("max_position_embeddings")
        self._info = ModelInfo(
            model_id=self.record.id,
            backend=self.name,
            context_length=load_context(self.options.n_ctx, max_pos),
            has_chat_template=self._template_vars["chat_template"] is not None,
            device=mlx_device(),
        )
        if progress:
            progress(3, 3)
        return self._info

    def unload(self) -> None:
        self._model = self._tokenizer = self._cache = None
        self._cached = []
        self._info = None

    @property
    def model(self) -> Any:
        return self._model

    @property
    def tokenizer(self) -> Any:
        """mlx-lm's TokenizerWrapper (benchmarks compare against mlx-lm with it)."""
        return self._tokenizer

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return hf_tokens.encode(self._tokenizer._tokenizer, text, add_bos=add_bos)

    def reset_cache(self) -> None:
        self._cache, self._cached = None, []

    def _reuse_cache(self, tokens: list[int]) -> int:
        from mlx_lm.models.cache import can_trim_prompt_cache, trim_prompt_cache

        cache, cached = self._cache, self._cached
        if cache is None or not cached or not can_trim_prompt_cache(cache):
            return 0
        prefix = 0
        for a, b in zip(cached, tokens[:-1]):  # the last prompt token is always evaluated
            if a != b:
                break
            prefix += 1
        if prefix == 0:
            return 0
        if prefix < len(cached):
            trim_prompt_cache(cache, len(cached) - prefix)
        return prefix

    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Generator[str, None, None]:
        import mlx.core as mx
        from mlx_lm.generate import generate_step, generation_stream, wired_limit
        from mlx_lm.models.cache import make_prompt_cache
        from mlx_lm.sample_utils import make_repetition_penalty, make_sampler

        model = self._model
        prefix = self._reuse_cache(prompt_tokens)
        if prefix == 0:
            self._cache = make_prompt_cache(model)
        fed = list(prompt_tokens)  # what the cache will hold, in order
        self._cached = []  # unknown until the end of this turn

        greedy = params.temperature <= 0 or params.top_k == 1
        sampler = make_sampler(
            temp=0.0 if greedy else params.temperature,
            top_p=params.top_p if params.top_p < 1.0 else 0.0,
            min_p=params.min_p,
            top_k=params.top_k,
        )
        processors = (
            [make_repetition_penalty(params.repeat_penalty, REPEAT_LAST_N)]
            if params.repeat_penalty != 1.0
            else None
        )
        mx.random.seed(params.seed if params.seed is not None else random.getrandbits(31))

        def on_prompt(done: int, total: int) -> None:
            if cancel.is_set() and done < total:
                raise _PromptCancelled

        detok = hf_tokens.IncrementalDetokenizer(self._tokenizer._tokenizer, prompt_tokens)
        steps = generate_step(
            mx.array(prompt_tokens[prefix:]),
            model,
            max_tokens=max_new,
            sampler=sampler,
            logits_processors=processors,
            prompt_cache=self._cache,
            prefill_step_size=PREFILL_CHUNK,
            prompt_progress_callback=on_prompt,
        )
        try:
            with wired_limit(model, [generation_stream]):
                for n, (token, _) in enumerate(steps, 1):
                    fed.append(token)
                    if token in self._end_ids:
                        break
                    yield detok.add(token)
                    if n >= max_new or cancel.is_set():
                        break
        except _PromptCancelled:
            return
        finally:
            steps.close()
            held = self._cache[0].offset if self._cache else 0
            self._cached = fed[:held] if len(fed) >= held else []
        tail = detok.flush()
        if tail:
            yield tail
