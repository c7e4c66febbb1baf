"""Shared plumbing of the command groups: registration, --json output, progress lines."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable


def version() -> str:
    try:
        from importlib.metadata import version as v

        return v("edgebert")
    except Exception:  # noqa: BLE001 - running from a checkout that is not installed
        return "0+unknown"


def command_groups():
    from edgebert.cli import latency_commands, model_commands, search_commands, train_commands

    return [model_commands, latency_commands, train_commands, search_commands]


def add_command(
    sub: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], Any], *, help: str, examples: str
) -> argparse.ArgumentParser:
    """A sub-command with an examples epilog and the common --json switch."""
    p = sub.add_parser(
        name, help=help, description=help, epilog="examples:\n" + examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    p.set_defaults(handler=handler)
    return p


def run_command(args: argparse.Namespace) -> int:
    return args.handler(args) or 0


def emit(args: argparse.Namespace, result: Any, human: Callable[[Any], str]) -> None:
    """JSON with --json, else the human rendering."""
    if getattr(args, "json", False):
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(human(result))
        if not human(result).endswith("\n"):
            sys.stdout.write("\n")


def progress(args: argparse.Namespace) -> Callable[[str], None]:
    """Status lines on stderr (never on stdout, which --json owns)."""

    def say(message: str) -> None:
        print(f"edgebert: {message}", file=sys.stderr, flush=True)

    return say
