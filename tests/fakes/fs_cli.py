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


def main(argv: List[str]) -> int:
    answers = os.environ["FAKE_FS_CLI_ANSWERS"]
    mode = (_read(answers, "MODE") or "").strip()
    if mode == "notrunning":
        sys.stderr.write(_read(answers, "notrunning.out") or "")
        return 255
    if mode == "hang":
        time.sleep(3600)
    command = argv[argv.index("-x") + 1]
    answer = _read(answers, re.sub(r"[ ./]", "_", command) + ".out")
    if answer is None and command.startswith("global_getvar "):
        answer = _read(answers, "global_getvar_nosuchvar.out")
    if answer is None:
        answer = f"-ERR {command.split(' ')[0]} Command not found!\n\n"
    sys.stdout.write(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
