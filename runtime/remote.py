"""Remote engines: a library entry that points at any OpenAI-compatible server.

vLLM on a GPU cluster, llama-server, Ollama, LM Studio or another Fireside: the server
applies its own chat template and sampling; this backend sends the conversation, streams
the answer back over server-sent events, and stops at once when cancelled.

A remote record keeps ``extra = {"url", "remote_model", "api_key_env"}``. The API key
itself is never stored: only the name of the environment variable that holds it.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import httpx

from models.fit import MAX_DEFAULT_CONTEXT
from models.records import ModelRecord

from .backend import Backend
from .errors import BackendUnavailable, ModelLoadError, RemoteError
from .params import GenerationParams
from .remote_server import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    api_key_from_env,
    context_length_of,
    get_models,
    net_words,
    normalize_base_url,
    refusal,
    refuse_if_offline,
    request_headers,
)
from .template import validate_messages
from .types import CancelToken, Chunk, Message, ModelInfo, Progress, Timings

POLL_S = 0.05
_FINISH = {"stop": "stop", "length": "length"}


# -- the backend -------------------------------------------------------------------------
class RemoteBackend(Backend):
    name = "remote"
    structured_output = True  # passed through; the remote server enforces it or refuses

    _client: httpx.Client | None = None

    def __init__(self, record: ModelRecord, options: Any = None) -> None:
        super().__init__(record, options)
        extra = record.extra or {}
        self.base_url = normalize_base_url(extra.get("url") or record.path.split("#", 1)[0])
        self.remote_model: str | None = extra.get("remote_model")
        self.api_key_env: str | None = extra.get("api_key_env")
        self._api_key: str | None = None

    def load(self, progress: Progress | None = None) -> ModelInfo:
        if progress:
            progress(0, 1)
        self._api_key = api_key_from_env(self.api_key_env, self.record.name)
        client = httpx.Client(
            timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
            headers=request_headers(self._api_key),
        )
        try:
            listed = get_models(client, self.base_url, self._api_key)
        except BaseException:
            client.close()
            raise
        entry: dict[str, Any] = {}
        if listed is not None:
            ids = [m.get("id") for m in listed if isinstance(m, dict)]
            if self.remote_model is None:
                if len(ids) != 1:
                    client.close()
                    raise ModelLoadError(
                        f"the server at {self.base_url} offers {len(ids)} models "
                        f"({', '.join(map(str, ids[:10]))}); say which one with --model"
                    )
                self.remote_model = str(ids[0])
            elif self.remote_model not in ids:
                client.close()
                raise ModelLoadError(
                    f"the server at {self.base_url} does not offer {self.remote_model!r}; "
                    f"it offers: {', '.join(map(str, ids[:10])) or 'nothing'}"
                )
            entry = next(m for m in listed if m.get("id") == self.remote_model)
        elif self.remote_model is None:
            client.close()
            raise ModelLoadError(f"say which model of {self.base_url} to use (--model ID)")
        self._client = client
        n_ctx = (
            self.options.n_ctx
            or context_length_of(entry)
            or self.record.context_length
            or MAX_DEFAULT_CONTEXT
        )
        self._info = ModelInfo(
            model_id=self.record.id,
            backend=self.name,
            context_length=n_ctx,
            has_chat_template=True,
            device="remote",
        )
        if progress:
            progress(1, 1)
        return self._info

    def unload(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        self._info = None

    @property
    def template_vars(self) -> dict[str, Any]:
        return {"chat_template": "(applied by the remote server)", "add_bos": False}

    def tokenize(self, text: str, *, add_bos: bool) -> list[int]:
        raise BackendUnavailable(
            f"{self.record.name} runs on a remote server, which counts tokens itself: "
            f"the counts arrive with each answer"
        )

    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Generator[str, None, None]:  # pragma: no cover - stream/complete are overridden
        raise BackendUnavailable("a remote model answers whole requests, not token lists")

    # -- generation ----------------------------------------------------------------------
    def _body(self, params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.remote_model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if params.max_tokens is not None:
            body["max_tokens"] = params.max_tokens
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.json_schema is not None:
            schema = json.loads(params.json_schema)
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
        elif params.grammar is not None:
            body["grammar"] = params.grammar  # llama-server's and Fireside's own field
        return body

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        cancel: Any = None,
    ) -> Iterator[Chunk]:
        from .remote_tools import remote_messages, request_fields

        params = params or GenerationParams()
        body = self._body(params)
        body.update(request_fields(params))  # tools and thinking: the remote's to apply
        body["messages"] = remote_messages(validate_messages(messages))
        return self._run("chat/completions", body, cancel)

    def complete(
        self, prompt: str, params: GenerationParams | None = None, cancel: Any = None
    ) -> Iterator[Chunk]:
        params = params or GenerationParams()
        body = self._body(params)
        body["prompt"] = prompt
        return self._run("completions", body, cancel)

    def _run(self, endpoint: str, body: dict[str, Any], cancel: Any) -> Iterator[Chunk]:
        if self._client is None:
            raise ModelLoadError("no model is loaded")
        refuse_if_offline(self.base_url)  # it may have been turned on since the load
        cancel = cancel if cancel is not None else CancelToken()
        events: queue.Queue = queue.Queue()
        stop = threading.Event()
        url = f"{self.base_url}/{endpoint}"
        client = self._client
        base = self.base_url

        def read() -> None:
            """Reads the event stream on its own thread, so a cancel never waits on the net."""
            try:
                with client.stream("POST", url, json=body) as resp:
                    if resp.status_code != 200:
                        resp.read()
                        events.put(("fail", refusal(resp, base)))
                        return
                    events.put(("open", None))
                    for line in resp.iter_lines():
                        if stop.is_set():
                            return
                        if not line.startswith("data:"):
                            continue
                        data = line[5:].strip()
                        if data == "[DONE]":
                            break
                        try:
                            events.put(("data", json.loads(data)))
                        except ValueError:
                            events.put(("fail", RemoteError(f"{base} sent a malformed event")))
                            return
                events.put(("end", None))
            except httpx.HTTPError as exc:
                if not stop.is_set():
                    events.put(
                        (
                            "fail",
                            RemoteError(f"lost the connection to {base} ({net_words(exc)})"),
                        )
                    )
            except Exception as exc:  # never let the reader die silently
                events.put(("fail", RemoteError(f"reading from {base} failed: {exc}")))

        from .remote_tools import CallMarkup

        calls = CallMarkup()
        start = time.perf_counter()
        first_at: float | None = None
        n_prompt = n_gen = 0
        usage_gen: int | None = None
        finish = "stop"
        opened = False
        reader = threading.Thread(target=read, name="fireside-remote-reader", daemon=True)
        reader.start()

        def timings() -> Timings:
            end = time.perf_counter()
            ttft = (first_at or end) - start
            decode_s = end - (first_at or end)
            n = usage_gen if usage_gen is not None else n_gen
            return Timings(
                time_to_first_token_s=ttft,
                prompt_tokens_per_s=n_prompt / ttft if ttft > 0 and n_prompt else 0.0,
                generation_tokens_per_s=(n - 1) / decode_s if n > 1 and decode_s > 0 else 0.0,
                total_s=end - start,
            )

        try:
            while True:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                try:
                    kind, value = events.get(timeout=POLL_S)
                except queue.Empty:
                    continue
                if kind == "fail":
                    if not opened and first_at is None:
                        raise value
                    yield Chunk("", n_prompt, n_gen, "error", error=str(value))
                    return
                if kind == "open":
                    opened = True
                    continue
                if kind == "end":
                    break
                if not isinstance(value, dict):
                    continue
                if isinstance(value.get("error"), dict | str):
                    err = value["error"]
                    text = err.get("message") if isinstance(err, dict) else err
                    yield Chunk("", n_prompt, n_gen, "error", error=f"{base}: {text}")
                    return
                usage = value.get("usage")
                if isinstance(usage, dict):
                    n_prompt = int(usage.get("prompt_tokens") or n_prompt)
                    if usage.get("completion_tokens") is not None:
                        usage_gen = int(usage["completion_tokens"])
                for choice in value.get("choices") or ():
                    delta = choice.get("delta") if "delta" in choice else None
                    text = (delta or {}).get("content") if delta is not None else choice.get("text")
                    thought = (delta or {}).get("reasoning_content") or (delta or {}).get(
                        "reasoning"
                    )
                    text = (text or "") + calls.feed((delta or {}).get("tool_calls"))
                    if text or thought:
                        if first_at is None:
                            first_at = time.perf_counter()
                        n_gen += 1
                        yield Chunk(text, n_prompt, n_gen, reasoning=str(thought or ""))
                    reason = choice.get("finish_reason")
                    if reason:
                        finish = _FINISH.get(reason, "stop")
        finally:
            stop.set()
        yield Chunk(
            calls.close(),
            n_prompt,
            usage_gen if usage_gen is not None else n_gen,
            finish,  # type: ignore[arg-type]
            timings(),
        )
