"""Entry point: `edgebert <command> ...`.

Bad input raises EdgebertError, printed as one line with exit code 1 (argparse
usage errors exit 2); a traceback only with EDGEBERT_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys

from edgebert.cli import common

DESCRIPTION = """\
edgebert: find the most accurate compact BERT that runs within a latency budget
on a device, distil it from a teacher, export it to ONNX, and compare it with
BERT-base on the same device.

examples:
  edgebert zoo
  edgebert export tinybert-4 --out export/tinybert-4 --int8
  edgebert bench tinybert-4 efficientbert --baseline bert-base
"""


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="edgebert", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"edgebert {common.version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for group in common.command_groups():
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    debug = os.environ.get("EDGEBERT_DEBUG") == "1"
    try:
        return common.run_command(args) or 0
    except BrokenPipeError:  # stdout closed early (`| head`): not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("edgebert: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become exit codes
        from edgebert.errors import EdgebertError

        if debug:
            raise
        if isinstance(exc, EdgebertError):
            print(f"edgebert: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
            return 1
        print(f"edgebert: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              " (set EDGEBERT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
