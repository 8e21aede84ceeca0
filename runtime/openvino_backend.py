"""The OpenVINO GenAI backend: OpenVINO IR folders, and GGUF files OpenVINO reads itself.

Before OpenVINO sees a model, it is checked: an IR folder's graph, every weight byte and its
tokenizer (models.openvino_folder), and the file hashes the library recorded at import
(OpenVINO loads random bytes in the weights silently); a GGUF file's tensor types (OpenVINO
GenAI refuses K-quants and BF16, and reads Q4_1 wrongly), so those are refused in words
that name what works.

The chat template is the model's own (the GGUF's metadata, or the one the IR tokenizer
keeps), rendered once by the shared sandbox like every backend; OpenVINO only tokenizes that
text without adding special tokens, and generates from token ids (so its own template is
never applied). The context limit is ours: OpenVINO silently accepts a prompt longer than the
model's context, so the shared face sizes every prompt and answer to ``n_ctx``.

Generation runs ``LLMPipeline.generate`` on a worker thread; its streamer hands each token to
this generator through a queue and answers CANCEL once the user cancels, STOP once the
consumer stops (a stop string, a closed stream). OpenVINO calls the streamer only once the
prompt has been read, so a cancel during a long prompt takes effect at the first token.
"""

from __future__ import annotations

import queue
import random
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from models.errors import UnsupportedModel
from models.file_hashes import verify_recorded
from models.fit import load_context
from models.openvino_folder import openvino_gguf_refusal, read_openvino_folder

from . import hf_tokens
from .backend import Backend, EngineFinished
from .errors import BackendUnavailable, ModelLoadError
from .params import GenerationParams
from .types import ModelInfo, Progress

DEVICE = "CPU"
_DONE = object()


def _first_line(exc: BaseException) -> str:
    """The reason OpenVINO gives, without its source-file banner ("Check ... failed at ...")."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Check ", "Exception from"))]
    text = (useful or lines or ["no reason given"])[0]
    return text[:300]


def _import_genai() -> Any:
    try:
        import openvino_genai
    except ImportError as exc:
        raise BackendUnavailable(
            f"the OpenVINO GenAI backend cannot start ({exc.name or exc}): "
            "pip install 'fireside[openvino]'"
        ) from None
    return openvino_genai


class OpenVinoBackend(Backend):
    name = "openvino"

    _pipe: Any = None
    _tokenizer: Any = None

    def _read_model(self, path: Path) -> tuple[str | None, int | None, Any]:
        """The chat template, the context length and the GGUF add-BOS flag (None: ask the
        tokenizer), after the checks that come before OpenVINO."""
        if path.is_dir():
            folder = read_openvino_folder(path)  # structure and weight sizes
            verify_recorded(path, self.record.provenance)  # the bytes the library recorded
            return folder.chat_template, folder.context_length, None
        refusal = openvino_gguf_refusal(path)
        if refusal:
            raise UnsupportedModel(refusal)
        from models.gguf import read_gguf

        info = read_gguf(path)
        return info.chat_template, info.context_length, info.get("tokenizer.ggml.add_bos_token")

    def load(self, progress: Progress | None = None) -> ModelInfo:
        path = Path(self.record.path)
        if progress:
            progress(0, 3)
        template, context_length, gguf_add_bos = self._read_model(path)
        og = _import_genai()
        if progress:
            progress(1, 3)
        from .llama_engine import thread_counts

        threads = thread_counts(self.options.n_threads)[0]
        try:
            pipe = og.LLMPipeline(str(path), DEVICE, INFERENCE_NUM_THREADS=threads)
            tokenizer = pipe.get_tokenizer()
        except Exception as exc:  # the library raises only generic errors
            raise ModelLoadError(
                f"OpenVINO could not load {path.name} ({_first_line(exc)}); the model may be "
                "damaged, of an architecture OpenVINO GenAI does not know, or made by a newer "
                "OpenVINO"
            ) from None
        self._pipe, self._tokenizer, self._og = pipe, tokenizer, og
        bos_id = int(tokenizer.get_bos_token_id())
        self._bos_id = bos_id if bos_id >= 0 else None
        if gguf_add_bos is None:
            plain = self._encode("a", special=False)
            gguf_add_bos = len(self._encode("a", special=True)) > len(plain)
        self._template_vars = {
            "chat_template": template,
            "bos_token": tokenizer.get_bos_token() or "",
            "eos_token": tokenizer.get_eos_token() or "",
            "add_bos": bool(gguf_add_bos),
        }
        eos = int(tokenizer.get_eos_token_id())
        stops = [int(t) for t in pipe.get_generation_config().stop_token_ids]
        self._end_ids = hf_tokens.end_ids(eos if eos >= 0 else None, stops)
        n_ctx = load_context(self.options.n_ctx, context_length)
        self._info = ModelInfo(
            model_id=self.record.id,
            backend=self.name,
            context_length=n_ctx,
            has_chat_template=template is not None,
            device="cpu",
        )
        self.threads = threads
        if progress:
            progress(3, 3)
        return self._info

    def unload(self) -> None:
        self._pipe = self._tokenizer = None
        self._info = None

    def _encode(self, text: str, *, special: bool) -> list[int]:
        ids = self._tokenizer.encode(text, add_special_tokens=special).input_ids
        return [int(t) for t in ids.data[0]]

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        """Token ids of ``text`` (special-token text becomes its id); BOS only when asked."""
        ids = self._encode(text, special=False)
        if add_bos and self._bos_id is not None and (not ids or ids[0] != self._bos_id):
            ids.insert(0, self._bos_id)
        return ids

    def detokenize(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))

    # -- generation ----------------------------------------------------------------------
    def _config(self, params: GenerationParams, max_new: int) -> Any:
        config = self._og.GenerationConfig()
        config.apply_chat_template = False  # the prompt is already our render's tokens
        config.max_new_tokens = max(1, max_new)
        config.stop_token_ids = set(self._end_ids)
        if params.temperature <= 0 or params.top_k == 1:
            config.do_sample = False
        else:
            config.do_sample = True
            config.temperature = params.temperature
            config.top_p = params.top_p
            config.min_p = params.min_p
            if params.top_k > 0:
                config.top_k = params.top_k
            seed = params.seed if params.seed is not None else random.getrandbits(32)
            config.rng_seed = seed
        config.repetition_penalty = params.repeat_penalty
        return config

    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Generator[str | EngineFinished, None, None]:
        import numpy as np
        import openvino as ov

        og = self._og
        tokens: queue.Queue[Any] = queue.Queue()
        stopped = threading.Event()  # the consumer went away (stop string, closed stream)

        class Streamer(og.StreamerBase):  # type: ignore[misc, name-defined]
            def write(self, token: Any) -> Any:
                tokens.put([token] if isinstance(token, int) else [int(t) for t in token])
                if cancel.is_set():  # the user's cancel
                    return og.StreamingStatus.CANCEL
                if stopped.is_set():  # a stop string, or the stream was closed: a normal end
                    return og.StreamingStatus.STOP
                return og.StreamingStatus.RUNNING

            def end(self) -> None:
                pass

        streamer = Streamer()
        config = self._config(params, max_new)
        ids = ov.Tensor(np.asarray([prompt_tokens], dtype=np.int64))
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self._pipe.generate(ids, config, streamer)
            except Exception as exc:
                failure.append(exc)
            finally:
                tokens.put(_DONE)

        worker = threading.Thread(target=run, name="openvino-generate", daemon=True)
        worker.start()
        pieces = hf_tokens.IncrementalDetokenizer(self._tokenizer, prompt_tokens)
        n = 0
        try:
            while (item := tokens.get()) is not _DONE:
                for token in item:
                    if token in self._end_ids or n >= max_new:
                        stopped.set()
                        break
                    n += 1
                    yield pieces.add(token)
                    if cancel.is_set():
                        stopped.set()
                        return
        finally:
            stopped.set()
            worker.join()
        if failure:
            raise ModelLoadError(f"OpenVINO failed while generating ({_first_line(failure[0])})")
        if tail := pieces.flush():  # a character cut off at the end: shown, not counted
            yield tail
        yield EngineFinished("length" if n >= max_new else "stop", n)
