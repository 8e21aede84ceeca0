"""The one backend abstraction every engine implements.

A backend supplies four primitives: ``load``, ``unload``, ``tokenize`` and ``_generate``
(prompt tokens in, text pieces out, one per sampled token). Everything users rely on
being the same across engines lives here once: message checks, the sandboxed chat
template, the context policy, stop strings, cancellation and timings.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from models.records import ModelRecord

from .errors import ContextOverflow, InvalidParameters, ModelLoadError
from .params import GenerationParams
from .template import render_chat, render_plain, usable_template, validate_messages
from .types import CancelToken, Chunk, Message, ModelInfo, Progress, Timings

BASE_MODEL_NOTICE = (
    "this is a base model with no chat template: it continues your text rather than answering it"
)


@dataclass(frozen=True)
class BackendOptions:
    """Engine settings; each backend reads the ones it understands."""

    n_ctx: int | None = None  # None: models.fit.load_context (the model's own, capped)
    n_threads: int | None = None  # None: the machine's physical cores
    n_gpu_layers: int | None = None  # None: all layers when the engine can offload, else 0
    n_parallel: int | None = None  # llama.cpp: requests served at once (None: 1)
    device: str | None = None  # torch: "cuda", "mps", "cpu"
    dtype: str | None = None  # torch: "float32", "bfloat16", "float16"
    # llama.cpp: speculative decoding ("off", "ngram"; None: runtime.speculative.DEFAULT)
    # and a draft model (a GGUF path with the same vocabulary; implies draft speculation).
    speculate: str | None = None
    draft: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, least, what in (
            ("n_ctx", MIN_CTX, "the context length (--ctx)"),
            ("n_threads", 1, "the number of threads (--threads)"),
            ("n_parallel", 1, "the number of requests at once (--parallel)"),
            ("n_gpu_layers", 0, "the number of GPU layers"),
        ):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < least):
                raise InvalidParameters(f"{what} must be at least {least}, got {value}")
        from .speculative import check_mode

        check_mode(self.speculate)


ENGINE_WORDS = {"mlx": "MLX", "torch": "PyTorch"}
MIN_CTX = 64  # tokens: below this not even a short question and its answer fit


@dataclass(frozen=True)
class EngineFinished:
    """What ``_generate`` may yield last, when the engine itself knows how the answer ended
    (tokens that came without text of their own still count)."""

    reason: str  # "stop" or "length"
    completion_tokens: int
    draft_tokens: int = 0  # speculative decoding: tokens proposed, and of them accepted
    accepted_tokens: int = 0


class Backend(ABC):
    name: ClassVar[str]
    # Whether the engine can hold an answer to a JSON schema or grammar (llama.cpp can).
    structured_output: ClassVar[bool] = False

    def __init__(self, record: ModelRecord, options: BackendOptions | None = None) -> None:
        self.record = record
        self.options = options or BackendOptions()

    # -- what each engine supplies -------------------------------------------------------
    @abstractmethod
    def load(self, progress: Progress | None = None) -> ModelInfo: ...

    @abstractmethod
    def unload(self) -> None: ...

    @abstractmethod
    def tokenize(self, text: str, *, add_bos: bool) -> list[int]: ...

    @abstractmethod
    def _generate(
        self, prompt_tokens: list[int], params: GenerationParams, max_new: int, cancel: Any
    ) -> Generator[str | EngineFinished, None, None]:
        """Yield the text of each sampled token (may be "" for partial UTF-8) until end of turn
        (optionally closing with :class:`EngineFinished`)."""

    # Set by ``load`` (and cleared by ``unload``) in every backend.
    _info: ModelInfo | None = None
    _template_vars: dict[str, Any] | None = None

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise ModelLoadError("no model is loaded")
        return self._info

    @property
    def template_vars(self) -> dict[str, Any]:
        """``chat_template``, ``bos_token``, ``eos_token``, ``add_bos`` from the model's metadata."""
        return self._template_vars or {}

    # -- shared ------------------------------------------------------------------------
    def check_supported(self, params: GenerationParams) -> None:
        """Refuse, naming the engine, what it cannot do (rather than a wrong answer)."""
        if (params.json_schema or params.grammar) and not self.structured_output:
            engine = ENGINE_WORDS.get(self.name, self.name)
            raise InvalidParameters(
                f"the {engine} engine cannot hold an answer to a JSON schema or a grammar "
                f"(structured output needs a GGUF model, run by llama.cpp)"
            )

    def render(
        self,
        messages: Sequence[Message],
        tools: list[dict[str, Any]] | None = None,
        prefill: str = "",
        thinking: bool | None = None,
    ) -> tuple[str, bool]:
        """The prompt text and whether the tokenizer should prepend BOS (never twice);
        ``tools`` are shown by the template, ``prefill`` begins the answer, ``thinking``
        (not None) is the template's ``enable_thinking`` where it reads one."""
        from .reasoning import switch_off_kwarg

        tv = self.template_vars
        template = tv.get("chat_template")
        bos = tv.get("bos_token") or ""
        if template:
            template = usable_template(template)[0]  # a broken one: the generic template
            text = render_chat(
                template,
                messages,
                bos_token=bos,
                eos_token=tv.get("eos_token") or "",
                tools=tools,
                extra={"enable_thinking": thinking}
                if thinking is not None and switch_off_kwarg(template)
                else None,
            )
        else:
            text = render_plain(messages)
        text += prefill
        add_bos = bool(tv.get("add_bos")) and not (bos and text.startswith(bos))
        return text, add_bos

    def prompt_tokens(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        tools: list[dict[str, Any]] | None = None,
        prefill: str = "",
    ) -> tuple[list[int], int, int]:
        """Tokens of the prompt that fits, the token budget left, and how many turns were dropped."""
        msgs = validate_messages(messages)
        n_ctx = self.info.context_length
        reserve = min(params.max_tokens or 1, n_ctx // 2) if params.max_tokens else 1
        dropped = 0
        while True:
            text, add_bos = self.render(msgs, tools, prefill, params.thinking)
            tokens = self.tokenize(text, add_bos=add_bos)
            if len(tokens) + reserve <= n_ctx:
                break
            # Oldest turn that is not the system prompt, and never the last (current) message.
            first = 1 if msgs[0]["role"] == "system" else 0
            if params.context_overflow == "error" or len(msgs) - first <= 1:
                raise ContextOverflow(
                    f"the conversation needs {len(tokens)} tokens plus {reserve} for the answer, "
                    f"but the model's context holds {n_ctx}; start a new conversation, shorten "
                    f"the message, or load the model with a longer context"
                )
            # Drop a whole exchange (user + assistant) where there is one.
            del msgs[first]
            dropped += 1
            if len(msgs) - first > 1 and msgs[first]["role"] == "assistant":
                del msgs[first]
                dropped += 1
        budget = n_ctx - len(tokens)
        if params.max_tokens is not None:
            budget = min(budget, params.max_tokens)
        return tokens, budget, dropped

    def stream(
        self,
        messages: Sequence[Message],
        params: GenerationParams | None = None,
        cancel: Any = None,
    ) -> Iterator[Chunk]:
        """Generate an answer to ``messages``; the last chunk carries the finish reason."""
        from . import reasoning

        params = params or GenerationParams()
        cancel = cancel if cancel is not None else CancelToken()
        tools, (call_prefill, call_close), params = self.prepare_tools(messages, params)
        self.check_supported(params)
        template = self.template_vars.get("chat_template")
        if params.json_schema is not None and reasoning.thinks(template):
            # JSON held to a schema (a forced call too) is the whole answer: no thought first
            params = params.replace(thinking=False)
        thinks = reasoning.thinks(template) and params.thinking is not False
        prefill = call_prefill
        off = params.thinking is False and reasoning.thinks(template)
        if off and not reasoning.switch_off_kwarg(template):
            prefill = reasoning.EMPTY_THOUGHT + prefill  # how such models skip thinking
        tokens, budget, dropped = self.prompt_tokens(messages, params, tools, prefill)
        opened = thinks and reasoning.opens_thought(
            self.render(validate_messages(messages), tools, prefill, params.thinking)[0]
        )
        notices = []
        if not template:
            notices.append(BASE_MODEL_NOTICE)
        elif note := usable_template(template)[1]:
            notices.append(note)
        if dropped:
            notices.append(
                f"the {dropped} oldest message(s) did not fit the context and were left out"
            )
        chunks = self._stream_tokens(tokens, budget, params, cancel, "; ".join(notices) or None)
        if call_prefill or call_close:
            chunks = with_forced_call(chunks, call_prefill, call_close)
        yield from reasoning.split_thoughts(chunks, opened) if thinks else chunks

    def prepare_tools(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> tuple[list[dict[str, Any]] | None, tuple[str, str], GenerationParams]:
        """The tools the template shows, the text that opens and closes a forced call, and
        the params (a forced call is held to its schema): see runtime.tools."""
        history = any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)
        if params.tools is None and not history:
            return None, ("", ""), params
        from . import tools as tool_calls

        fmt = tool_calls.require_support(self.template_vars.get("chat_template"))
        if params.tools is None or params.tool_choice == "none":
            return None, ("", ""), params
        tools = json.loads(params.tools)
        if params.tool_choice == "auto":
            return tools, ("", ""), params
        if not self.structured_output:
            engine = ENGINE_WORDS.get(self.name, self.name)
            raise InvalidParameters(
                f"the {engine} engine cannot force a tool call (tool_choice "
                f"{params.tool_choice!r}); use tool_choice 'auto'"
            )
        opener, schema, close = tool_calls.forced_call(
            params.tools, params.tool_choice, fmt, params.parallel_tool_calls
        )
        forced = params.replace(json_schema=json.dumps(schema), grammar=None)
        return tools, (opener, close), forced

    def complete(
        self, prompt: str, params: GenerationParams | None = None, cancel: Any = None
    ) -> Iterator[Chunk]:
        """Plain text continuation of ``prompt`` (no template)."""
        params = params or GenerationParams()
        cancel = cancel if cancel is not None else CancelToken()
        self.check_supported(params)
        tokens = self.tokenize(prompt, add_bos=bool(self.template_vars.get("add_bos")))
        n_ctx = self.info.context_length
        if len(tokens) >= n_ctx:
            raise ContextOverflow(
                f"the prompt is {len(tokens)} tokens; the model's context holds {n_ctx}"
            )
        budget = n_ctx - len(tokens)
        if params.max_tokens is not None:
            budget = min(budget, params.max_tokens)
        yield from self._stream_tokens(tokens, budget, params, cancel, None)

    def _stream_tokens(
        self,
        tokens: list[int],
        budget: int,
        params: GenerationParams,
        cancel: Any,
        notice: str | None,
    ) -> Iterator[Chunk]:
        n_prompt = len(tokens)
        start = time.perf_counter()
        first_at: float | None = None
        n_gen = 0
        pending = ""  # text held back because it may be the start of a stop string
        finish = "length"
        hold = max((len(s) for s in params.stop), default=0)
        drafted = accepted = 0

        def timings() -> Timings:
            end = time.perf_counter()
            ttft = (first_at or end) - start
            decode_s = end - (first_at or end)
            return Timings(
                time_to_first_token_s=ttft,
                prompt_tokens_per_s=n_prompt / ttft if ttft > 0 else 0.0,
                generation_tokens_per_s=(n_gen - 1) / decode_s
                if n_gen > 1 and decode_s > 0
                else 0.0,
                total_s=end - start,
                draft_tokens=drafted,
                accepted_tokens=accepted,
            )

        if notice:
            yield Chunk("", n_prompt, 0, notice=notice)
        if cancel.is_set():
            yield Chunk("", n_prompt, 0, "cancelled", timings())
            return
        gen = self._generate(tokens, params, budget, cancel)
        try:
            for piece in gen:
                if isinstance(piece, EngineFinished):
                    n_gen = max(n_gen, piece.completion_tokens)
                    drafted, accepted = piece.draft_tokens, piece.accepted_tokens
                    finish = "cancelled" if cancel.is_set() else piece.reason
                    break
                if first_at is None:
                    first_at = time.perf_counter()
                n_gen += 1
                if hold:
                    pending += piece
                    cut = min((i for s in params.stop if (i := pending.find(s)) >= 0), default=-1)
                    if cut >= 0:
                        yield Chunk(pending[:cut], n_prompt, n_gen)
                        pending, finish = "", "stop"
                        break
                    keep = _partial_stop_suffix(pending, params.stop, hold)
                    emit, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
                else:
                    emit = piece
                if emit:
                    yield Chunk(emit, n_prompt, n_gen)
                if cancel.is_set():
                    finish = "cancelled"
                    break
            else:
                finish = "length" if n_gen >= budget else "stop"
                if cancel.is_set():
                    finish = "cancelled"
        finally:
            gen.close()
        if pending:  # text held back for a stop string that never came
            yield Chunk(pending, n_prompt, n_gen)
        yield Chunk("", n_prompt, n_gen, finish, timings())  # type: ignore[arg-type]


def with_forced_call(chunks: Iterator[Chunk], prefill: str, close: str) -> Iterator[Chunk]:
    """The answer's chunks with the call's opening marker (in the prompt) put back in front,
    and ``close`` after a call that ended by itself (a cut-off one stays open)."""
    import dataclasses

    opened = False
    for chunk in chunks:
        if not opened and (chunk.text or chunk.finish_reason is not None):
            chunk, opened = dataclasses.replace(chunk, text=prefill + chunk.text), True
        if chunk.finish_reason == "stop" and close:
            chunk = dataclasses.replace(chunk, text=chunk.text + close)
        yield chunk


def _partial_stop_suffix(text: str, stops: tuple[str, ...], hold: int) -> int:
    """Length of the longest end of ``text`` that could begin a stop string."""
    for k in range(min(hold - 1, len(text)), 0, -1):
        tail = text[-k:]
        if any(s.startswith(tail) for s in stops):
            return k
    return 0
