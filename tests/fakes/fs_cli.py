"""A fake ``fs_cli`` executable that answers ``-x COMMAND`` from recorded answers.

Run as ``python tests/fakes/fs_cli.py [-H h -P p -p pw] -x COMMAND`` (tests put a small
wrapper named ``fs_cli`` on PATH). ``FAKE_FS_CLI_ANSWERS`` names a directory of answers,
one file a command as in tests/data/fs_cli/ (the command with spaces, dots and slashes
as ``_``, then ``.out``); a file ``MODE`` there makes it a FreeSWITCH that is not running
(``notrunning``: notrunning.out on stderr, exit status 255, as the real one) or one that
never answers (``hang``). A command without a file answers as FreeSWITCH does: an
unknown global variable ``-ERR no reply``, an unknown command ``-ERR ... Command not found!``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import List, Optional


def _read(directory: str, name: str) -> Optional[str]:
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def mode(answers: str) -> str:
    return (_read(answers, "MODE") or "").strip()


def answer(answers: str, command: str) -> str:
    """What fs_cli prints for ``command``: FreeSWITCH's answer and a newline."""
    found = _read(answers, re.sub(r"[ ./]", "_", command) + ".out")
    if found is None and command.startswith("global_getvar "):
        found = _read(answers, "global_getvar_nosuchvar.out")
    if found is None:
        found = f"-ERR {command.split(' ')[0]} Command not found!\n\n"
    return found


def main(argv: List[str]) -> int:
    answers = os.environ["FAKE_FS_CLI_ANSWERS"]
    if mode(answers) == "notrunning":
        sys.stderr.write(_read(answers, "notrunning.out") or "")
        return 255
    if mode(answers) == "hang":
        time.sleep(3600)
    sys.stdout.write(answer(answers, argv[argv.index("-x") + 1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
