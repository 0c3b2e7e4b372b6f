"""The ``fs-guard`` command for operators (never imported inside FreeSWITCH).

Each subcommand is a ``register(subparsers)`` in its own module of this package; this
file only wires them. Exit codes: 0 success/accept, 1 reject or findings, 2 usage or
config error, 3 (replay) the input held no trace.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from fs_guard import __version__
from fs_guard.offline.cli import audit, check, doctor, install, replay

COMMANDS = (check, replay, install, audit, doctor)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's default exit code is 2 already
        self.print_usage(sys.stderr)
        self.exit(2, f"fs-guard: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fs-guard", description="Toll-fraud guard for FreeSWITCH.")
    parser.add_argument("--version", action="version", version=f"fs-guard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0

