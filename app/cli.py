"""The ``fireside`` command. Each sub-command lives in ``app/commands/`` and is imported lazily."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__, build_type

# Each module has ``register(subparsers)``; handlers import what they need when they run.
COMMAND_MODULES = (
    "app.commands.chat",
    "app.commands.models",
    "app.commands.hub",
    "app.commands.serve",
    "app.commands.doctor",
    "app.commands.convert",
    "app.commands.bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fireside",
        description="Run language models on your own machine, offline. "
        "With no command, opens the Fireside window.",
    )
    parser.add_argument(
        "--version", action="version", version=f"fireside {__version__} ({build_type()})"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def open_gui() -> int:
    try:
        gui = importlib.import_module("app.gui.main")
    except ModuleNotFoundError as exc:
        if exc.name and not exc.name.startswith("app.gui"):
            raise
        build_parser().print_help()
        return 0
    return gui.main()


def main(argv: Sequence[str] | None = None) -> int:
    from models.errors import FiresideError

    parser = build_parser()
    args = parser.parse_args(argv)
    # `offline` reports the setting, not this process's switch; the window applies it itself
    # once it is shown (app.gui.main), so that start-up stays quick.
    if args.command not in (None, "offline"):
        from models.hub import apply_offline_mode

        apply_offline_mode()
    if args.command is None:
        return open_gui()
    try:
        return int(args.handler(args) or 0)
    except (FiresideError, OSError, MemoryError) as exc:  # what a person can act on, in words
        from models.errors import describe

        print(f"fireside: {describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nfireside: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
