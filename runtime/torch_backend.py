"""The PyTorch backend: Hugging Face folders through transformers, on CUDA, MPS or the CPU.

Generation is our own loop over the model's forward pass with a KV cache, so it is
cancellable between any two tokens and samples exactly as the other backends do
(repeat penalty, top-k, top-p, min-p, temperature, seed). The cache is kept between turns
and reused for the prompt prefix they share. Weights load with ``weights_only`` and never
with remote code. Attention is PyTorch's SDPA where the model has it. A static KV cache and
``torch.compile`` are opt-in speed options (runtime/torch_fast.py says why they are off).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from models.errors import FiresideError
from models.fit import load_context
from models.hf import read_hf_folder

from . import hf_tokens
from .backend import Backend
from .errors import BackendUnavailable, ModelLoadError
from .params import GenerationParams
from .torch_fast import FastPath, speed_from
from .types import Chunk, ModelInfo, Progress

PROMPT_CHUNK = 256  # prompt tokens per forward pass between cancellation checks
REPEAT_LAST_N = 64  # the repeat penalty looks this far back (as llama.cpp does)
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cuda", "mps", "cpu")


def available_devices() -> list[str]:
    """The torch devices this machine offers, best first (always ends with "cpu")."""
    import torch

    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def default_dtype(device: str) -> str:
    """bf16 on CUDA (fp16 where the card lacks bf16), fp16 on MPS, fp32 on the CPU."""
    if device.startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "float32"


def pick_device(wanted: str | None) -> str:
    devices = available_devices()
    if wanted is None:
        return devices[0]
    kind = wanted.split(":", 1)[0]
    if kind not in DEVICES:
        raise BackendUnavailable(f"unknown device {wanted!r}; use one of {', '.join(DEVICES)}")
    if kind not in devices:
        raise BackendUnavailable(
            f"PyTorch cannot use {kind.upper()} on this machine (it has: {', '.join(devices)})"
        )
    return wanted


def sample_token(
    logits: Any, params: GenerationParams, recent: list[int], generator: Any = None
) -> int:
    """One token id from a 1-D logits tensor, with llama.cpp's order of samplers."""
    import torch

    logits = logits.float()
    if params.repeat_penalty != 1.0 and recent:
        ids = torch.tensor(sorted(set(recent)), device=logits.device)
        picked = logits[ids]
        logits[ids] = torch.where(
            picked > 0, picked / params.repeat_penalty, picked * params.repeat_penalty
        )
    if params.temperature <= 0 or params.top_k == 1:
        return int(torch.argmax(logits))
    if 0 < params.top_k < logits.shape[-1]:
        logits, order = torch.topk(logits, params.top_k)
    else:
        logits, order = torch.sort(logits, descending=True)
    probs = torch.softmax(logits, dim=-1)  # sorted, highest first
    keep = torch.ones_like(probs, dtype=torch.bool)
    if params.top_p < 1.0:
        before = torch.cumsum(probs, dim=-1) - probs
        keep &= before < params.top_p
    if params.min_p > 0.0:
        keep &= probs >= params.min_p * probs[0]
    keep[0] = True
    logits = torch.where(keep, logits / params.temperature, logits.new_tensor(float("-inf")))
    probs = torch.softmax(logits, dim=-1)
    choice = torch.multinomial(probs, 1, generator=generator)
    return int(order[choice])


def _load_model(transformers: Any, path: str, dtype: Any, ckpt: Any) -> Any:
    """The model with PyTorch's SDPA attention, or transformers' own choice where the
    architecture has no SDPA path."""
    kwargs = dict(
        dtype=dtype,
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=ckpt.weight_format == "safetensors",
        weights_only=True,
    )
    try:
        return transformers.AutoModelForCausalLM.from_pretrained(
            path, attn_implementation="sdpa", **kwargs
        )
    except ValueError as exc:
        if "sdpa" not in str(exc).lower():
            raise
        return transformers.AutoModelForCausalLM.from_pretrained(path, **kwargs)


class TorchBackend(Backend):
    name = "torch"

    _model: Any = None
    _tokenizer: Any = None
    _fast: Any = None  # FastPath: the static cache and compiled step, set by load

    def load(self, progress: Progress | None = None) -> ModelInfo:
        path = Path(self.record.path)
        if progress:
            progress(0, 3)
        ckpt = read_hf_folder(path)  # validates config and weight headers before torch sees them
        if not ckpt.has_tokenizer:
            raise ModelLoadError(f"{path.name} has no tokenizer files; the folder is incomplete")
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendUnavailable(
                f"the PyTorch backend cannot start ({exc.name or exc}): pip install 'fireside[torch]'"
            ) from None
        opts = self.options
        speed = speed_from(opts.extra)
        device = pick_device(opts.device)
        dtype_name = opts.dtype or default_dtype(device)
        if dtype_name not in DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype_name!r}; use one of {', '.join(DTYPES)}")
        if device == "cpu" and opts.n_threads:
            torch.set_num_threads(opts.n_threads)
        if progress:
            progress(1, 3)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                str(path), local_files_only=True, trust_remote_code=False
            )
            model = _load_model(transformers, str(path), getattr(torch, dtype_name), ckpt)
        except FiresideError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError, ImportError) as exc:
            raise ModelLoadError(
                f"PyTorch could not load {path.name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from None
        model = model.to(device).eval()
        self._model, self._tokenizer = model, tokenizer
        self._attention = getattr(model.config, "_attn_implementation", None) or "eager"
        self._device = device
        self._template_vars = hf_tokens.template_vars(tokenizer)
        gen_config = getattr(model, "generation_config", None)
        self._end_ids = hf_tokens.end_ids(
            getattr(model.config, "eos_token_id", None),
            getattr(gen_config, "eos_token_id", None),
            tokenizer.eos_token_id,
        )
        self._cache: Any = None
        self._cached: list[int] = []
        # transformers 5.x renames ``past_key_values`` to ``cache``; use whichever it takes.
        forward_args = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        text_config = model.config.get_text_config()
        n_ctx = load_context(opts.n_ctx, getattr(text_config, "max_position_embeddings", None))
        self._fast = FastPath(model, speed, device, n_ctx, self._cache_arg)
        if progress:
            progress(2, 3)
        if self._fast.report()["compile"]:  # compile now: the first answer should not wait
            first = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else 0
            self._fast.warm_up(first)
            self._cache = self._fast.warm_cache
        self._info = ModelInfo(
            model_id=self.record.id,
            backend=self.name,
            context_length=n_ctx,
            has_chat_template=self._template_vars["chat_template"] is not None,
            device=device,
        )
        self.dtype = dtype_name
        if progress:
            progress(3, 3)
        return self._info

    def unload(self) -> None:
        self._model = self._tokenizer = self._cache = self._fast = None
        self._cached = []
        self._info = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    @property
    def model(self) -> Any:
        """The loaded transformers model (benchmarks and checks compare against it)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return hf_tokens.encode(self._tokenizer, text, add_bos=add_bos)

    def reset_cache(self) -> None:
        """Forget the cached prompt (benchmarks use this to time a cold prompt); a static
        cache is emptied, not dropped, so its compiled shapes stay."""
        if self._cache is not None and self._fast.static:
            self._cache = self._fast.fresh(self._cache)
        else:
            self._cache = None
        self._cached = []

    @property
    def speed(self) -> dict[str, Any]:
        """The speed options in effect (static cache, compile) and the compile time spent."""
        if self._fast is None:
            raise ModelLoadError("no model is loaded")
        size = self._cache.layers[0].max_cache_len if self._fast.static and self._cache else None
        return {**self._fast.report(), "attention": self._attention, "cache_size": size}

    # -- generation ----------------------------------------------------------------------
    def _fresh_cache(self) -> Any:
        return self._fast.fresh(self._cache)

    def _reusable_prefix(self, tokens: list[int]) -> int:
        """How many leading prompt tokens the kept cache already holds (after cropping)."""
        cache, cached = self._cache, self._cached
        if cache is None or not cached:
            return 0
        layers = getattr(cache, "layers", None) or []
        if not all(
            getattr(layer, "is_croppable", False) and not getattr(layer, "is_sliding", False)
            for layer in layers
        ):
            return 0
        prefix = 0
        for a, b in zip(cached, tokens[:-1]):  # the last prompt token is always evaluated
            if a != b:
                break
            prefix += 1
        if prefix == 0:
            return 0
        if prefix < len(cached):
            cache.crop(prefix - len(cached))
            self._cached = cached[:prefix]
        return prefix

    def _forward(self, ids: list[int]) -> Any:
        import torch

        input_ids = torch.tensor([ids], dtype=torch.long, device=self._device)
        self._cache = self._fast.fit(self._cache, len(self._cached) + len(ids))
        logits = self._fast.forward(input_ids, self._cache)
        self._cached.extend(ids)
        return logits

    def _stream_tokens(
        self,
        tokens: list[int],
        budget: int,
        params: GenerationParams,
        cancel: Any,
        notice: str | None,
    ) -> Iterator[Chunk]:
        """The shared stream, plus what the speed options have to tell: the compile cost at
        load on the first answer, a compile for a bigger cache or a fallback on the last chunk."""
        early = self._fast.take_notices()
        notice = "; ".join(n for n in (notice, early) if n) or None
        for chunk in super()._stream_tokens(tokens, budget, params, cancel, notice):
            if chunk.finish_reason is not None and (late := self._fast.take_notices()):
                chunk = dataclasses.replace(
                    chunk, notice="; ".join(n for n in (chunk.notice, late) if n)
                )
            yield chunk

    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Generator[str, None, None]:
        import torch

        generator = None
        if params.seed is not None:
            generator = torch.Generator(device="cpu" if self._device == "mps" else self._device)
            generator.manual_seed(params.seed)
        with torch.inference_mode():
            prefix = self._reusable_prefix(prompt_tokens)
            if prefix == 0:
                self._cache, self._cached = self._fresh_cache(), []
            todo = prompt_tokens[prefix:]
            logits = None
            for start in range(0, len(todo), PROMPT_CHUNK):
                if cancel.is_set():
                    return
                logits = self._forward(todo[start : start + PROMPT_CHUNK])
            detok = hf_tokens.IncrementalDetokenizer(self._tokenizer, prompt_tokens)
            history = list(prompt_tokens[-REPEAT_LAST_N:])
            n = 0
            while True:
                assert logits is not None  # the prompt is never empty
                if generator is not None and generator.device.type != logits.device.type:
                    logits = logits.to(generator.device)
                token = sample_token(logits, params, history, generator)
                if token in self._end_ids:
                    break
                history.append(token)
                del history[:-REPEAT_LAST_N]
                yield detok.add(token)
                n += 1
                if n >= max_new or cancel.is_set():
                    break
                logits = self._forward([token])
            tail = detok.flush()
            if tail:
                yield tail
