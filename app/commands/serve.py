"""``fireside serve``: the library over an OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import speculation, torch_speed

HELP = "Serve the library over an OpenAI-compatible HTTP API (loopback only by default)."
KEY_ENV = "FIRESIDE_API_KEY"


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help=HELP, description=HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0: any free)")
    p.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"require this key on every request (or set {KEY_ENV}); "
        "needed to bind a non-loopback address",
    )
    p.add_argument(
        "--idle-unload",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="unload a model after this long without requests (default: 300; 0: never)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow browser pages from this origin, e.g. http://localhost:3000 (repeatable)",
    )
    p.add_argument("--ctx", type=int, metavar="N", help="context length to load models with")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads per model")
    p.add_argument(
        "--parallel",
        type=int,
        metavar="N",
        help="requests a GGUF model answers at once, batched together; each gets the full "
        "context (default: up to 4, as memory allows)",
    )
    p.add_argument(
        "--client-timeout",
        type=float,
        metavar="S",
        help="seconds a client may take to send its request, or to take the next piece of a "
        "streamed answer, before it is stopped (default: a minute)",
    )
    speculation.add_arguments(p)
    torch_speed.add_arguments(p)
    p.add_argument("--verbose", "-v", action="store_true", help="log every request")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.server import LocalServer, ServerConfig
    from runtime import BackendOptions, ModelHost

    if args.idle_unload < 0:
        print("fireside: --idle-unload must be 0 or more seconds", file=sys.stderr)
        return 2
    if args.parallel is not None and not 1 <= args.parallel <= 64:
        print("fireside: --parallel must be between 1 and 64", file=sys.stderr)
        return 2
    config = ServerConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key or os.environ.get(KEY_ENV) or None,
        cors_origins=tuple(args.cors_origin),
        idle_unload_s=args.idle_unload or None,
        access_log=args.verbose,
        **({} if args.client_timeout is None else {"client_timeout_s": args.client_timeout}),
    )
    host = ModelHost(
        idle_unload_s=config.idle_unload_s,
        options=BackendOptions(
            n_ctx=args.ctx,
            n_threads=args.threads,
            n_parallel=args.parallel,
            extra=torch_speed.backend_extra(args),
            **speculation.backend_options(args),
        ),
    )
    server = LocalServer(config, host=host)

    def ready(srv: LocalServer) -> None:
        print(f"Fireside is serving at {srv.base_url}  (Ctrl-C stops)", flush=True)
        if not config.loopback:
            print("Other machines can reach it; every request needs the API key.", flush=True)
        print("\nTry it:\n" + srv.snippet(reveal_key=False), flush=True)

    try:
        server.serve_forever(ready)
    finally:
        host.close()
    print("Fireside stopped serving.", file=sys.stderr)
    return 0
