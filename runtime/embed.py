"""Embeddings: text to vectors with a GGUF model, for every face (the HTTP server's
``/v1/embeddings``, scripts through ``runtime``).

    embedder = Embedder(options)
    result = embedder.embed(record, ["cat", "feline"])   # the OpenAI shape: data, usage
    embedder.close()

llama.cpp embeds only with an engine loaded in embedding mode, and refuses a model whose
pooling is "none" (a chat model's) as not OpenAI-compatible; so a model gets its own
embedding engine with mean pooling (one vector a text: the average of its tokens' last
hidden states), loaded on its first request in this process (about 0.4 s for the bundled
model) and kept until another model is asked for, ``idle_unload_s`` pass, or ``close()``.
One request at a time per engine. A remote model's request is forwarded to its server's
``/embeddings``. MLX, PyTorch and ONNX models cannot embed here: a plain
:class:`InvalidParameters` says so.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from models.records import ModelRecord

from .backend import BackendOptions
from .errors import InvalidParameters, ModelLoadError

EMBED_CTX = 2048  # the longest text embedded at once, in tokens
ENCODINGS = ("float", "base64")
ENGINE_NAMES = {
    "mlx": "MLX",
    "hf-safetensors": "PyTorch",
    "hf-pytorch": "PyTorch",
    "onnx": "ONNX Runtime",
    "openvino": "OpenVINO",
}


class ModelCannotEmbed(InvalidParameters):
    """The model's engine makes no embeddings; ``param`` names the field the server blames."""

    param = "model"


class Embedder:
    """Loads one embedding engine at a time and answers embedding requests. Thread-safe."""

    def __init__(
        self, options: BackendOptions | None = None, *, idle_unload_s: float | None = 300.0
    ) -> None:
        self.options = options or BackendOptions()
        self.idle_unload_s = idle_unload_s if idle_unload_s and idle_unload_s > 0 else None
        self._lock = threading.Lock()
        self._server: Any = None
        self._path: str | None = None
        self._last_used = time.monotonic()
        self._closed = False
        if self.idle_unload_s is not None:  # it holds only a weak reference: see _reap
            threading.Thread(
                target=_reap, args=(weakref.ref(self),), name="fireside-embed-reaper", daemon=True
            ).start()

    def embed(
        self, record: ModelRecord, texts: str | Sequence[str], encoding_format: str = "float"
    ) -> dict[str, Any]:
        """``{"data": [{"index", "embedding"}...], "usage": {...}}`` for ``texts``; base64
        is the little-endian float32 bytes of each vector."""
        items = [texts] if isinstance(texts, str) else list(texts)
        if not items or not all(isinstance(t, str) for t in items):
            raise InvalidParameters("input must be a string or a non-empty list of strings")
        if any(not t for t in items):
            raise InvalidParameters("input holds an empty string; there is nothing to embed")
        if encoding_format not in ENCODINGS:
            raise InvalidParameters("encoding_format must be 'float' or 'base64'")
        if record.format == "remote":
            return embed_remote(record, items, encoding_format)
        if record.format not in ("gguf", "gguf-split"):
            engine = ENGINE_NAMES.get(record.format, record.format)
            raise ModelCannotEmbed(
                f"{record.name} runs on {engine}, which cannot make embeddings here; "
                "embeddings need a GGUF model (llama.cpp), such as the bundled one"
            )
        with self._lock:
            if self._closed:
                raise ModelLoadError("the embedding engine has been shut down")
            server = self._load(record)
            answer = server.handle_embeddings({"input": items, "encoding_format": encoding_format})
            self._last_used = time.monotonic()
        if not isinstance(answer, dict) or "error" in answer:
            error = answer.get("error") if isinstance(answer, dict) else None
            message = error.get("message") if isinstance(error, dict) else str(error or answer)
            if "too large" in str(message):
                size = re.search(r"\((\d+) tokens\)", str(message))
                raise InvalidParameters(
                    f"a text is {size.group(1) + ' tokens' if size else 'too long'}; embeddings "
                    f"take at most {EMBED_CTX} tokens a text: split it into smaller pieces"
                )
            raise InvalidParameters(f"the model could not embed this input: {message}")
        data = sorted(answer.get("data") or [], key=lambda d: d.get("index", 0))
        usage = answer.get("usage") or {}
        return {
            "data": [{"index": i, "embedding": d["embedding"]} for i, d in enumerate(data)],
            "usage": {
                "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", usage.get("prompt_tokens", 0))),
            },
        }

    def _load(self, record: ModelRecord) -> Any:
        if self._server is not None and self._path == record.path:
            return self._server
        self._unload()
        from .llama_engine import import_xllamacpp, make_params

        xl = import_xllamacpp()
        params = make_params(
            xl,
            model=record.path,
            n_ctx=EMBED_CTX,
            n_parallel=1,
            n_batch=EMBED_CTX,  # a text is embedded in one batch
            n_threads=self.options.n_threads,
            n_gpu_layers=self.options.n_gpu_layers or 0,
            api_key=secrets.token_hex(16),
        )
        params.embedding = True
        params.pooling_type = xl.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
        try:
            self._server = xl.Server(params)
        except Exception as exc:
            raise ModelLoadError(
                f"llama.cpp could not load {record.name} to embed: {exc}"
            ) from None
        self._path = record.path
        return self._server

    def _unload(self) -> None:
        server, self._server, self._path = self._server, None, None
        del server  # the engine's memory goes back when its last reference does

    def reap_if_idle(self) -> None:
        with self._lock:
            assert self.idle_unload_s is not None
            idle = time.monotonic() - self._last_used >= self.idle_unload_s
            if self._server is not None and idle:
                self._unload()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._unload()


def _reap(ref: weakref.ref) -> None:
    """Unloads an idle engine; ends once its Embedder is closed or gone (an app that was
    dropped, e.g. the window's server switched off, takes its engine with it)."""
    while True:
        embedder = ref()
        if embedder is None or embedder._closed:
            return
        period = min(1.0, (embedder.idle_unload_s or 4) / 4)
        embedder.reap_if_idle()
        del embedder
        time.sleep(period)


def embed_remote(record: ModelRecord, items: list[str], encoding_format: str) -> dict[str, Any]:
    """A remote model's embeddings: the request forwarded to its server's /embeddings."""
    import httpx

    from .errors import RemoteError
    from .remote_server import (
        CONNECT_TIMEOUT_S,
        api_key_from_env,
        net_words,
        normalize_base_url,
        refusal,
        refuse_if_offline,
        request_headers,
    )

    extra = record.extra or {}
    base = normalize_base_url(extra.get("url") or record.path.split("#", 1)[0])
    refuse_if_offline(base)
    key = api_key_from_env(extra.get("api_key_env"), record.name)
    body = {"model": extra.get("remote_model"), "input": items, "encoding_format": encoding_format}
    try:
        with httpx.Client(timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=120.0)) as client:
            resp = client.post(f"{base}/embeddings", json=body, headers=request_headers(key))
    except httpx.HTTPError as exc:
        raise RemoteError(f"could not reach the server at {base} ({net_words(exc)})") from None
    if resp.status_code == 404:
        raise ModelCannotEmbed(f"the server at {base} makes no embeddings (it has no /embeddings)")
    if resp.status_code != 200:
        raise refusal(resp, base)
    try:
        answer = resp.json()
        data = sorted(answer["data"], key=lambda d: d.get("index", 0))
        vectors = [{"index": i, "embedding": d["embedding"]} for i, d in enumerate(data)]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise RemoteError(f"the server at {base} sent embeddings Fireside cannot read") from None
    usage = answer.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    return {
        "data": vectors,
        "usage": {
            "prompt_tokens": prompt,
            "total_tokens": int(usage.get("total_tokens") or prompt),
        },
    }
