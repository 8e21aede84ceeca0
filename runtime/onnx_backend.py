"""The ONNX Runtime GenAI backend: model folders made by onnxruntime-genai's model builder.

The folder is validated (graph, every weight byte, tokenizer) and, when the library recorded
its file hashes at import or conversion, verified against them before ONNX Runtime sees it:
the runtime itself loads random bytes in the weights silently. The chat template is the
folder's own (``chat_template.jinja``), rendered once by the shared sandbox like every
backend; the library only tokenizes that text (its ``apply_chat_template`` is never called,
and a BOS the template already wrote is not added again). The context limit is ours: the
generator is made for ``n_ctx`` tokens and the prompt plus the answer never exceed it.

Generation is our own loop over ``Generator.append_tokens`` / ``get_logits``, so it is
cancellable between tokens (and between prompt chunks), samples as the other backends do
(llama.cpp's order: repeat penalty, top-k, top-p, min-p, temperature) and keeps the KV cache
between turns for the prompt prefix they share (``rewind_to``).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from models.file_hashes import verify_recorded
from models.fit import load_context
from models.onnx_folder import read_onnx_folder

from . import hf_tokens
from .backend import Backend
from .errors import BackendUnavailable, ModelLoadError
from .params import GenerationParams
from .types import ModelInfo, Progress

PROMPT_CHUNK = 256  # prompt tokens per forward pass between cancellation checks
REPEAT_LAST_N = 64  # the repeat penalty looks this far back (as llama.cpp does)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def sample_token(
    logits: np.ndarray, params: GenerationParams, recent: list[int], rng: np.random.Generator
) -> int:
    """One token id from a 1-D logits array, with llama.cpp's order of samplers."""
    logits = np.array(logits, dtype=np.float32)
    if params.repeat_penalty != 1.0 and recent:
        ids = np.unique(np.asarray(recent, dtype=np.int64))
        picked = logits[ids]
        logits[ids] = np.where(
            picked > 0, picked / params.repeat_penalty, picked * params.repeat_penalty
        )
    if params.temperature <= 0 or params.top_k == 1:
        return int(np.argmax(logits))
    if 0 < params.top_k < logits.shape[-1]:
        top = np.argpartition(-logits, params.top_k - 1)[: params.top_k]
        order = top[np.argsort(-logits[top], kind="stable")]
    else:
        order = np.argsort(-logits, kind="stable")
    ranked = logits[order]
    probs = _softmax(ranked)  # sorted, highest first
    keep = np.ones(probs.shape, dtype=bool)
    if params.top_p < 1.0:
        keep &= (np.cumsum(probs) - probs) < params.top_p
    if params.min_p > 0.0:
        keep &= probs >= params.min_p * probs[0]
    keep[0] = True
    probs = _softmax(np.where(keep, ranked / params.temperature, -np.inf))
    return int(order[rng.choice(len(probs), p=probs)])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no reason given"


def _tokenizer_tokens(folder: Path) -> tuple[str, str]:
    """The BOS and EOS token text from tokenizer_config.json (for templates that use them)."""
    try:
        data = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "", ""

    def text(value: Any) -> str:
        if isinstance(value, dict):  # {"content": "<s>", ...}
            value = value.get("content")
        return value if isinstance(value, str) else ""

    return text(data.get("bos_token")), text(data.get("eos_token"))


class OnnxBackend(Backend):
    name = "onnx"

    _model: Any = None
    _tokenizer: Any = None
    _generator: Any = None

    def load(self, progress: Progress | None = None) -> ModelInfo:
        path = Path(self.record.path)
        if progress:
            progress(0, 3)
        folder = read_onnx_folder(path)  # structure and weight sizes, before ONNX Runtime
        verify_recorded(path, self.record.provenance)  # the bytes the library recorded
        try:
            import onnxruntime_genai as og
        except ImportError as exc:
            raise BackendUnavailable(
                f"the ONNX Runtime GenAI backend cannot start ({exc.name or exc}): "
                "pip install 'fireside[onnx]'"
            ) from None
        if progress:
            progress(1, 3)
        from .llama_engine import thread_counts

        threads = thread_counts(self.options.n_threads)[0]
        try:
            config = og.Config(str(path))
            config.overlay(
                json.dumps(
                    {"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}
                )
            )
            model = og.Model(config)
            tokenizer = og.Tokenizer(model)
        except Exception as exc:  # the library raises only generic errors
            raise ModelLoadError(
                f"ONNX Runtime could not load {path.name} ({_first_line(exc)}); the folder "
                "may be damaged or made by a newer model builder"
            ) from None
        self._model, self._tokenizer, self._og = model, tokenizer, og
        bos_text, eos_text = _tokenizer_tokens(path)
        self._bos_id = int(tokenizer.bos_token_id) if tokenizer.bos_token_id >= 0 else None
        probe = [int(t) for t in tokenizer.encode("a")]
        self._auto_bos = bool(probe) and self._bos_id is not None and probe[0] == self._bos_id
        self._template_vars = {
            "chat_template": folder.chat_template,
            "bos_token": bos_text,
            "eos_token": eos_text,
            "add_bos": self._auto_bos,
        }
        self._end_ids = hf_tokens.end_ids(
            folder.model.get("eos_token_id"), [int(t) for t in tokenizer.eos_token_ids]
        )
        n_ctx = load_context(self.options.n_ctx, folder.context_length)
        self._n_ctx = n_ctx
        self._generator = None
        self._cached: list[int] = []
        self._info = ModelInfo(
            model_id=self.record.id,
            backend=self.name,
            context_length=n_ctx,
            has_chat_template=folder.chat_template is not None,
            device="cpu",
        )
        self.threads = threads
        if progress:
            progress(3, 3)
        return self._info

    def unload(self) -> None:
        self._generator = self._tokenizer = self._model = None
        self._cached = []
        self._info = None

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        """Token ids of ``text`` (special-token text becomes its id); BOS only when asked."""
        ids = [int(t) for t in self._tokenizer.encode(text)]
        if self._auto_bos and not add_bos and ids and ids[0] == self._bos_id:
            ids = ids[1:]
        elif add_bos and self._bos_id is not None and (not ids or ids[0] != self._bos_id):
            ids.insert(0, self._bos_id)
        return ids

    def detokenize(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(np.asarray(ids, dtype=np.int32)))

    def reset_cache(self) -> None:
        """Forget the cached prompt (benchmarks use this to time a cold prompt)."""
        self._generator, self._cached = None, []

    # -- generation ----------------------------------------------------------------------
    def _new_generator(self) -> Any:
        og = self._og
        params = og.GeneratorParams(self._model)
        params.set_search_options(max_length=self._n_ctx, do_sample=False)
        return og.Generator(self._model, params)

    def _prepare(self, tokens: list[int]) -> int:
        """A generator holding the longest reusable prefix of ``tokens``; returns its length."""
        prefix = 0
        if self._generator is not None and self._cached:
            for a, b in zip(self._cached, tokens[:-1]):  # the last token is always evaluated
                if a != b:
                    break
                prefix += 1
        if prefix and prefix < len(self._cached):
            try:
                self._generator.rewind_to(prefix)
                self._cached = self._cached[:prefix]
            except Exception:  # a model that cannot rewind: start over
                prefix = 0
        if prefix == 0:
            self._generator, self._cached = None, []
            self._generator = self._new_generator()
        return prefix

    def _append(self, ids: list[int]) -> np.ndarray:
        self._generator.append_tokens(np.asarray(ids, dtype=np.int32))
        self._cached.extend(ids)
        return self._generator.get_logits()[0, -1]

    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Generator[str, None, None]:
        prefix = self._prepare(prompt_tokens)
        todo = prompt_tokens[prefix:]
        logits = None
        try:
            for start in range(0, len(todo), PROMPT_CHUNK):
                if cancel.is_set():
                    self.reset_cache()  # a half-read prompt: not worth keeping
                    return
                logits = self._append(todo[start : start + PROMPT_CHUNK])
        except Exception as exc:
            self.reset_cache()
            raise ModelLoadError(
                f"ONNX Runtime failed on the prompt ({_first_line(exc)})"
            ) from None
        rng = np.random.default_rng(params.seed)
        stream = self._tokenizer.create_stream()
        history = list(prompt_tokens[-REPEAT_LAST_N:])
        n = 0
        while True:
            assert logits is not None  # the prompt is never empty
            token = sample_token(logits, params, history, rng)
            if token in self._end_ids:
                break
            history.append(token)
            del history[:-REPEAT_LAST_N]
            yield stream.decode(token)
            n += 1
            if n >= max_new or cancel.is_set():
                break
            logits = self._append([token])
