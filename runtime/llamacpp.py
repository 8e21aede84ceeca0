"""The llama.cpp backend: GGUF files through llama-cpp-python."""

from __future__ import annotations

import codecs
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.gguf import read_gguf

from .backend import DEFAULT_MAX_CTX, Backend
from .errors import ModelLoadError
from .params import GenerationParams
from .types import ModelInfo, Progress


def physical_cores() -> int:
    try:
        import psutil

        return max(1, psutil.cpu_count(logical=False) or os.cpu_count() or 1)
    except Exception:
        return max(1, os.cpu_count() or 1)


def _piece_reader(vocab: Any) -> Any:
    """token id -> its bytes (llama_token_to_piece with a reused buffer that grows on demand)."""
    import ctypes

    import llama_cpp

    buf = ctypes.create_string_buffer(256)

    def piece(token: int, special: bool = False) -> bytes:
        nonlocal buf
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(vocab, token, buf, len(buf), 0, special)
        return buf.raw[: max(n, 0)]

    return piece


def gpu_offload_available() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


class LlamaCppBackend(Backend):
    name = "llama.cpp"

    _llm: Any = None

    def load(self, progress: Progress | None = None) -> ModelInfo:
        path = Path(self.record.path)
        if progress:
            progress(0, 3)
        # Validate before any native code sees the file.
        header = read_gguf(path)
        if progress:
            progress(1, 3)
        import llama_cpp

        opts = self.options
        n_ctx = opts.n_ctx or min(header.context_length or 2048, DEFAULT_MAX_CTX)
        n_gpu = opts.n_gpu_layers
        if n_gpu is None:
            n_gpu = -1 if gpu_offload_available() else 0
        threads = opts.n_threads or physical_cores()
        try:
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_gpu_layers=n_gpu,
                n_batch=min(512, n_ctx),
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelLoadError(f"llama.cpp could not load {path.name}: {exc}") from None
        self._llm = llm
        model = llm._model
        template = header.chat_template
        self._piece = _piece_reader(model.vocab)
        self._cancel: Any = None
        self._abort_callback = llama_cpp.ggml_abort_callback(
            lambda _data: self._cancel is not None and self._cancel.is_set()
        )

        def token_text(token_id: int) -> str:
            if token_id < 0:
                return ""
            return self._piece(token_id, True).decode("utf-8", errors="replace")

        self._template_vars = {
            "chat_template": template,
            "bos_token": token_text(model.token_bos()),
            "eos_token": token_text(model.token_eos()),
            "add_bos": bool(model.add_bos_token()),
        }
        self._info = ModelInfo(
            model_id=self.record.id,
            backend=self.name,
            context_length=llm.n_ctx(),
            has_chat_template=template is not None,
            device="gpu" if n_gpu else "cpu",
        )
        if progress:
            progress(3, 3)
        return self._info

    def unload(self) -> None:
        if self._llm is not None:
            self._llm.close()
        self._llm = None
        self._info = None

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def reset_cache(self) -> None:
        """Forget the cached prompt (benchmarks use this to time a cold prompt)."""
        self._llm.reset()

    def _abort_when(self, cancel: Any) -> None:
        """Let ``cancel`` abort llama.cpp's compute mid-batch (None: no callback, no cost).

        Installed only while the prompt is evaluated: a long prompt is one big batch, and
        this is how a cancel lands within milliseconds instead of after the whole batch.
        """
        import llama_cpp

        self._cancel = cancel
        callback = self._abort_callback if cancel is not None else llama_cpp.ggml_abort_callback()
        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx, callback, None)

    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Iterator[str]:
        import llama_cpp

        llm = self._llm
        llm.set_seed(params.seed if params.seed is not None else random.getrandbits(31))
        vocab = llm._model.vocab
        piece = self._piece
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        n = 0
        tokens = llm.generate(
            prompt_tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
            reset=True,
        )
        self._abort_when(cancel)
        try:
            for token in tokens:
                if n == 0:
                    self._abort_when(None)  # the prompt is done
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    break
                yield decoder.decode(piece(token))
                n += 1
                if n >= max_new or cancel.is_set():
                    break
        except RuntimeError:
            if cancel.is_set():  # llama_decode was aborted by the cancel
                return
            raise
        finally:
            self._abort_when(None)
            tokens.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            yield tail
