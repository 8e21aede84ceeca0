"""The llama.cpp backend: GGUF files through llama.cpp's own server engine (xllamacpp).

The engine runs in-process (inside Fireside's engine child) with continuous batching over
``n_parallel`` slots. Our side stays thin: the base class renders the prompt with the
sandboxed template and applies the context policy; this module tokenizes with the model's
own tokenizer, hands the prompt tokens to llama.cpp and streams its pieces back.

xllamacpp's server also listens on 127.0.0.1 at a random port. It is locked with a random
per-engine API key (HTTP without it gets 401); we use that listener only for ``/tokenize``
and ``/props``, which have no Python call.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import random
import threading
import weakref
from collections.abc import Generator
from pathlib import Path
from typing import Any

from models.fit import default_parallel, load_context
from models.gguf import read_gguf

from .backend import Backend, EngineFinished
from .errors import ContextOverflow, InvalidParameters, ModelLoadError
from .llama_engine import import_xllamacpp, make_params, offload_available
from .params import GenerationParams
from .speculative import check_draft, configure, draft_counts, mode_for
from .structured import check_schema
from .types import ModelInfo, Progress

# Tokens per prompt step. Cancellation during a prompt lands after the current step, so it
# is kept small enough to answer a cancel in well under half a second on a laptop CPU
# (measured here: 0.41-0.47 s on a 3,000-token prompt, at <10% prompt-speed cost).
PROMPT_STEP = 256
CANCEL_POLL_S = 0.02  # how often a quiet stream (a long prompt step) looks at its cancel flag
_DONE = object()
# Engines still loaded at interpreter exit are stopped first: xllamacpp's server threads must
# not be running when Python finalizes (the process would abort).
_LOADED: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _unload_all() -> None:
    for backend in list(_LOADED):
        backend.unload()


class LlamaCppBackend(Backend):
    name = "llama.cpp"
    structured_output = True

    _server: Any = None
    _http: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._workers: set[threading.Thread] = set()  # requests still inside the engine

    def load(self, progress: Progress | None = None) -> ModelInfo:
        path = Path(self.record.path)
        if progress:
            progress(0, 3)
        header = read_gguf(path)  # validate before any native code sees the file
        if progress:
            progress(1, 3)
        xl = import_xllamacpp()
        opts = self.options
        per_slot = load_context(opts.n_ctx, header.context_length)
        n_parallel = opts.n_parallel or default_parallel(header.metadata, per_slot)
        gpu = offload_available(xl)
        n_gpu = opts.n_gpu_layers if opts.n_gpu_layers is not None else (999 if gpu else 0)
        key = os.urandom(24).hex()  # (the secrets module would cost a one-shot answer 3 ms)
        params = make_params(
            xl,
            model=str(path),
            n_ctx=per_slot * n_parallel,
            n_parallel=n_parallel,
            n_batch=min(PROMPT_STEP, per_slot),
            n_threads=opts.n_threads,
            n_gpu_layers=n_gpu,
            api_key=key,
        )
        speculation = mode_for(opts.speculate, opts.draft)
        if opts.draft:
            check_draft(path, opts.draft)  # before any native code sees the draft file
        configure(xl, params, speculation, opts.draft)
        try:
            server = xl.Server(params)
        except Exception:
            if opts.draft:
                raise ModelLoadError(
                    f"llama.cpp could not load {path.name} with the draft model "
                    f"{Path(opts.draft).name}"
                ) from None
            if header.chat_template is None:
                raise ModelLoadError(f"llama.cpp could not load {path.name}") from None
            # llama.cpp refuses a model whose template it cannot parse; we render templates
            # ourselves (sandboxed), so load it with a generic one and let ours decide.
            params.chat_template = "chatml"
            try:
                server = xl.Server(params)
            except Exception:
                raise ModelLoadError(f"llama.cpp could not load {path.name}") from None
        self._server = server
        _LOADED.add(self)
        self._http = _Listener(server.listening_address, key)
        props = self._http.call("GET", "/props")
        template = header.chat_template
        add_bos = header.get("tokenizer.ggml.add_bos_token")
        if add_bos is None:
            plain = self._tokenize("a", special=False)
            add_bos = len(self._tokenize("a", special=True)) > len(plain)
        self._template_vars = {
            "chat_template": template,
            "bos_token": props.get("bos_token") or "",
            "eos_token": props.get("eos_token") or "",
            "add_bos": bool(add_bos),
        }
        slot_ctx = int(props.get("default_generation_settings", {}).get("n_ctx") or per_slot)
        self._cold_next = False
        self._info = ModelInfo(
            model_id=self.record.id,
            backend=self.name,
            context_length=slot_ctx,
            has_chat_template=template is not None,
            device="gpu" if n_gpu else "cpu",
            parallel=int(props.get("total_slots") or n_parallel),
            speculation=speculation,
        )
        if progress:
            progress(3, 3)
        return self._info

    def check_supported(self, params: GenerationParams) -> None:
        super().check_supported(params)
        if params.json_schema is not None:
            check_schema(json.loads(params.json_schema))

    def unload(self) -> None:
        # Requests that were cancelled end at the engine's next step; the engine must not
        # be torn down (or the process exit) under them.
        for worker in list(self._workers):
            worker.join(timeout=10)
        if self._http is not None:
            self._http.close()
        self._server = self._http = None  # the engine stops when the Server is collected
        self._info = None
        _LOADED.discard(self)

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        body = {"content": text, "add_special": special, "parse_special": True}
        return list(self._http.call("POST", "/tokenize", body)["tokens"])

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        return self._tokenize(text, special=add_bos)

    def reset_cache(self) -> None:
        """Evaluate the next prompt from scratch (benchmarks use this to time a cold prompt)."""
        self._cold_next = True

    def _request(self, prompt_tokens: list[int], params: GenerationParams, max_new: int) -> dict:
        cold, self._cold_next = self._cold_next, False
        request = {
            "prompt": prompt_tokens,
            "stream": True,
            "return_progress": True,  # a callback per prompt step: where a cancel can land
            "n_predict": max_new,
            "temperature": params.temperature,
            "top_k": params.top_k,
            "top_p": params.top_p,
            "min_p": params.min_p,
            "repeat_penalty": params.repeat_penalty,
            "seed": params.seed if params.seed is not None else random.getrandbits(31),
            "cache_prompt": not cold,
            "n_probs": 0,
        }
        if params.stop:
            # llama.cpp ends the answer itself and still reports its timings (the
            # speculation counts); the base class's own stop check stays the rule.
            request["stop"] = list(params.stop)
        if params.json_schema is not None:
            # Checked by runtime.structured first: llama.cpp runs a schema it cannot
            # enforce unconstrained, without a word.
            request["json_schema"] = json.loads(params.json_schema)
        elif params.grammar is not None:
            request["grammar"] = params.grammar
        return request

    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Generator[str | EngineFinished, None, None]:
        server = self._server
        pieces: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            # A callback that raises counts as "stop" in xllamacpp: never let it raise.
            try:
                pieces.put(chunk)
                return stop.is_set() or cancel.is_set()
            except BaseException:
                return True

        def run() -> None:
            try:
                server.handle_completions(self._request(prompt_tokens, params, max_new), on_chunk)
            except Exception as exc:  # bad request refused by the engine itself
                pieces.put({"error": {"message": str(exc), "type": "engine"}})
            finally:
                pieces.put(_DONE)
                self._workers.discard(threading.current_thread())

        worker = threading.Thread(target=run, name="fireside-llama-request", daemon=True)
        self._workers.add(worker)
        worker.start()
        finished = False
        try:
            while True:
                try:
                    chunk = pieces.get(timeout=CANCEL_POLL_S)
                except queue.Empty:
                    if cancel.is_set():
                        return  # the engine stops at its next step, on its own
                    continue
                if chunk is _DONE:
                    finished = True
                    return
                if not isinstance(chunk, dict):
                    continue
                if "error" in chunk:
                    _raise_engine_error(chunk["error"])
                for choice in chunk.get("choices") or ():
                    if choice.get("text"):
                        yield choice["text"]
                    if choice.get("finish_reason") and chunk.get("usage"):
                        n = int(chunk["usage"].get("completion_tokens") or 0)
                        reason = "length" if choice["finish_reason"] == "length" else "stop"
                        finished = True  # the call returns right after its last chunk
                        drafted, accepted = draft_counts(chunk.get("timings"))
                        yield EngineFinished(reason, n, drafted, accepted)
        finally:
            stop.set()
            if finished:
                worker.join()
            # else: cancelled or abandoned: the engine ends that request after its current
            # step and takes the next one; nobody needs to wait for that here.


def _raise_engine_error(error: Any) -> None:
    message = str(error.get("message") if isinstance(error, dict) else error)
    kind = error.get("type") if isinstance(error, dict) else None
    if "grammar" in message:
        raise InvalidParameters(f"llama.cpp could not use the grammar: {message}")
    if kind == "exceed_context_size_error":
        raise ContextOverflow(
            f"the prompt is {error.get('n_prompt_tokens')} tokens; the model's context "
            f"holds {error.get('n_ctx')}"
        )
    raise InvalidParameters(f"llama.cpp refused the request: {message}")


class _Listener:
    """The engine's own HTTP listener on 127.0.0.1 (locked with our key): one kept-alive
    connection, shared by the request threads (each call is a millisecond or two).

    Plain HTTP/1.1 over a socket: the peer is llama.cpp's own server on loopback, and
    http.client with the email parser and ssl it pulls in costs a one-shot answer 15 ms."""

    def __init__(self, address: str, key: str) -> None:
        from urllib.parse import urlsplit

        url = urlsplit(address)
        self._where = (url.hostname or "127.0.0.1", url.port or 80)
        self._head = (
            f"Host: {self._where[0]}:{self._where[1]}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n"
        )
        self._lock = threading.Lock()
        self._sock: Any = None
        self._reader: Any = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\n{self._head}Content-Length: {len(data)}\r\n\r\n"
        with self._lock:
            for attempt in (0, 1):
                try:
                    if self._sock is None:
                        import socket

                        self._sock = socket.create_connection(self._where, timeout=60)
                        self._reader = self._sock.makefile("rb")
                    self._sock.sendall(head.encode("latin-1") + data)
                    status, payload, keep = _read_reply(self._reader)
                    if not keep:
                        self._close()
                    break
                except (OSError, ValueError):
                    self._close()
                    if attempt:
                        raise ModelLoadError("the llama.cpp engine stopped answering") from None
        if status != 200:
            raise ModelLoadError(f"the llama.cpp engine refused {path} (HTTP {status})")
        return json.loads(payload)

    def _close(self) -> None:
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
        self._sock = self._reader = None

    def close(self) -> None:
        with self._lock:
            self._close()


def _read_reply(reader: Any) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection stays open) of one HTTP/1.1 reply."""
    status_line = reader.readline(65537)
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ValueError("not an HTTP reply")
    status = int(parts[1])
    headers = {}
    while True:
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    keep = headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = bytearray()
        while size := int(reader.readline(65537).split(b";")[0], 16):
            body += reader.read(size)
            reader.readline(65537)
        while reader.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return status, bytes(body), keep
    if "content-length" in headers:
        length = int(headers["content-length"])
        body = reader.read(length)
        if len(body) != length:
            raise ValueError("the reply ended early")
        return status, body, keep
    return status, reader.read(), False
