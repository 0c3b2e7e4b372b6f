"""The ``fs-guard`` command for operators (never imported inside FreeSWITCH).

Each subcommand is a ``register(subparsers)`` in its own module of this package; this
file only wires them. Exit codes: 0 success/accept, 1 reject or findings, 2 usage or
config error, 3 (replay) the input held no trace, 130 interrupted (Ctrl-C), 141 the
reader of stdout went away (``| head``).
"""

from __future__ import annotations

import argparse
import os
import signal
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


#: The status a shell shows for a command killed by SIGPIPE, as ``yes | head -1`` is.
READER_GONE = 128 + signal.SIGPIPE


def main(argv: Optional[List[str]] = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
            return int(args.run(args))
        finally:
            sys.stdout.flush()  # a reader that went away shows here, not in Python's flush at exit
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """Stop quietly, as a command that SIGPIPE kills does (``fs-guard audit | head -1``).

    Python ignores SIGPIPE (a socket's peer going away must not kill it), so a write to a
    closed pipe raises instead; stdout is pointed at /dev/null so that nothing left in its
    buffer fails again at exit (the recipe of Python's ``signal`` documentation).
    """
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (replaced in tests)
        pass
    return READER_GONE

