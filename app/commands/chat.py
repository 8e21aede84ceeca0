"""``fireside chat``: one answer, or an interactive multi-turn conversation, in the terminal."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from . import speculation, torch_speed

HELP = "Chat with a model in the terminal (the bundled model unless --model is given)."
INTERACTIVE_HELP = "Type a message and press Enter. Ctrl-C stops an answer; /exit or Ctrl-D leaves; /clear starts over."


def register(sub: Any) -> None:
    p = sub.add_parser("chat", help=HELP, description=HELP)
    p.add_argument("prompt", nargs="?", help="answer this and exit (omit for an interactive chat)")
    p.add_argument("--model", "-m", metavar="ID|PATH", help="a library id or a model file/folder")
    p.add_argument("--system", metavar="TEXT", help="a system prompt")
    # Sampling: unset means runtime.GenerationParams' own default (the one owner of them).
    p.add_argument("--temperature", type=float, help="default 0.7")
    p.add_argument("--top-p", type=float, help="default 0.95")
    p.add_argument("--top-k", type=int, help="default 40")
    p.add_argument("--min-p", type=float, help="default 0.05")
    p.add_argument("--repeat-penalty", type=float, help="default 1.1")
    p.add_argument("--max-tokens", type=int, help="default 512")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--stop", action="append", default=[], metavar="TEXT", help="stop string (repeatable)"
    )
    p.add_argument("--ctx", type=int, metavar="N", help="context length to load the model with")
    p.add_argument(
        "--backend", metavar="NAME", help="force an engine (llama.cpp, mlx, torch, onnx, openvino)"
    )
    p.add_argument(
        "--stats",
        action="store_true",
        help="print tokens/s (and speculative decoding's acceptance) after each answer",
    )
    speculation.add_arguments(p)
    torch_speed.add_arguments(p)
    p.add_argument(
        "--show-thinking",
        action="store_true",
        help="show a reasoning model's thinking, dimmed, on stderr (hidden otherwise)",
    )
    p.add_argument(
        "--no-think",
        action="store_true",
        help="ask a reasoning model to answer without thinking (where its template can)",
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="answer with one JSON object")
    shape.add_argument(
        "--json-schema", metavar="FILE", help="answer with JSON that follows this JSON schema"
    )
    p.set_defaults(handler=run)


def _structured(args: argparse.Namespace) -> dict[str, Any]:
    """``json_schema`` for GenerationParams from --json / --json-schema (checked here)."""
    import json
    from pathlib import Path

    from runtime import InvalidParameters
    from runtime.structured import JSON_OBJECT, schema_text

    if args.json:
        return {"json_schema": schema_text(JSON_OBJECT)}
    if not args.json_schema:
        return {}
    try:
        schema = json.loads(Path(args.json_schema).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidParameters(f"cannot read {args.json_schema}: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidParameters(f"{args.json_schema} is not valid JSON: {exc}") from None
    return {"json_schema": schema_text(schema)}


def dim(text: str) -> str:
    """Text dimmed when stderr is a terminal (ANSI faint), as it is otherwise."""
    return f"\x1b[2m{text}\x1b[0m" if sys.stderr.isatty() else text


def _answer(
    engine: Any,
    history: list[dict[str, str]],
    params: Any,
    show_stats: bool,
    show_thinking: bool = False,
) -> str | None:
    """Stream one answer to stdout; Ctrl-C cancels it. Returns the text, or None on a crash.
    A reasoning model's thinking goes to stderr, dimmed on a terminal, with --show-thinking;
    otherwise one line says how long it thought."""
    previous = signal.signal(signal.SIGINT, lambda *_: engine.cancel())
    parts: list[str] = []
    last = None
    thought, noted = 0, False
    try:
        for chunk in engine.stream(history, params):
            if chunk.notice:
                print(f"[{chunk.notice}]", file=sys.stderr, flush=True)
            thought += len(chunk.reasoning)
            if chunk.reasoning and show_thinking:
                sys.stderr.write(dim(chunk.reasoning))
                sys.stderr.flush()
            elif thought and not chunk.reasoning and not noted:
                noted = True
                if show_thinking:
                    sys.stderr.write("\n")
                else:
                    print(f"[thought {thought} characters; --show-thinking shows them]",
                          file=sys.stderr, flush=True)  # fmt: skip
            if chunk.text:
                parts.append(chunk.text)
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
            last = chunk
    finally:
        signal.signal(signal.SIGINT, previous)
    sys.stdout.write("\n")
    sys.stdout.flush()
    if last is not None and last.finish_reason == "error":
        print(f"fireside: {last.error}", file=sys.stderr)
        return None
    if last is not None and last.finish_reason == "cancelled":
        print("[stopped]", file=sys.stderr)
    if last is not None and last.finish_reason == "length" and params.json_schema:
        print("[cut off at --max-tokens: the JSON is not complete]", file=sys.stderr)
    if show_stats and last is not None and last.timings:
        t = last.timings
        accepted = (
            f", {t.accepted_tokens} of {t.draft_tokens} proposed tokens accepted "
            f"({t.acceptance:.0%})"
            if t.acceptance is not None
            else ""
        )
        print(
            f"[{last.completion_tokens} tokens, {t.generation_tokens_per_s:.1f} tokens/s, "
            f"first token after {t.time_to_first_token_s * 1000:.0f} ms{accepted}]",
            file=sys.stderr,
        )
    return "".join(parts)


def run(args: argparse.Namespace) -> int:
    from models import Catalog, resolve
    from runtime import BackendOptions, Engine, GenerationParams

    sampling = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens")
    params = GenerationParams(
        **{name: getattr(args, name) for name in sampling if getattr(args, name) is not None},
        seed=args.seed,
        stop=tuple(args.stop),
        **_structured(args),
        thinking=False if args.no_think else None,
    )
    catalog = Catalog()
    record = resolve(catalog, args.model)
    options = BackendOptions(
        n_ctx=args.ctx,
        n_parallel=1,
        extra=torch_speed.backend_extra(args),
        **speculation.backend_options(args, catalog),
    )
    interactive = args.prompt is None
    # A one-shot answer forks its engine (still a child: a native crash ends it, not us);
    # no thread runs here yet, and a fresh interpreter would cost a third of a second.
    one_shot_fork = not interactive and sys.platform == "linux"

    with Engine("fork" if one_shot_fork else "spawn") as engine:

        def load() -> None:
            if interactive:
                print(f"Loading {record.name}…", file=sys.stderr, flush=True)
            engine.load(record, options, backend=args.backend)
            if not engine.info.has_chat_template:
                print(
                    f"[{record.name} is a base model with no chat template: it will continue "
                    f"your text rather than answer it]",
                    file=sys.stderr,
                )
            if speculation.unused(options, engine.info):
                print(f"[{speculation.UNUSED}]", file=sys.stderr)

        load()
        history: list[dict[str, str]] = []
        if args.system:
            history.append({"role": "system", "content": args.system})
        if not interactive:
            history.append({"role": "user", "content": args.prompt})
            return (
                0
                if _answer(engine, history, params, args.stats, args.show_thinking) is not None
                else 1
            )

        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        print(INTERACTIVE_HELP, file=sys.stderr)
        while True:
            try:
                line = input(">>> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            except KeyboardInterrupt:
                print(file=sys.stderr)
                continue
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit", "/bye"):
                return 0
            if text == "/clear":
                history = history[:1] if args.system else []
                print("[conversation cleared]", file=sys.stderr)
                continue
            if engine.info is None:  # the engine crashed on the last turn
                load()
            history.append({"role": "user", "content": line})
            answer = _answer(engine, history, params, args.stats, args.show_thinking)
            if answer is None:
                history.pop()
                continue
            history.append({"role": "assistant", "content": answer})
