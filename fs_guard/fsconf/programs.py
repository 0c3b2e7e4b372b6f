"""The programs that speak for the live system (``fs_cli``, ``fail2ban-client``), run bounded.

``install`` and ``doctor`` ask a running FreeSWITCH and fail2ban what they do; neither may
stall on a server that does not answer. A program is run in its own process group and,
past its timeout, the whole group is killed: a wrapper script's children (which would
keep the output pipes open and make a plain ``subprocess.run`` wait on) die with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Optional, Sequence

#: The program asked for a running FreeSWITCH's answers (looked up on PATH).
FS_CLI = "fs_cli"
#: Seconds to wait for fs_cli: a FreeSWITCH that is not running must not stall anything.
FS_CLI_TIMEOUT = 3.0
FAIL2BAN_CLIENT = "fail2ban-client"


@dataclass(frozen=True)
class Reply:
    """What a program printed and its exit status; ``failure`` says why there is no answer
    at all (not found, could not start, timed out), "" when it ran to its end."""

    code: int
    out: str
    err: str = ""
    failure: str = ""

    @property
    def ok(self) -> bool:
        return not self.failure and self.code == 0

    @property
    def text(self) -> str:
        """Everything it said, stdout then stderr, as an operator sees it in a terminal."""
        return (self.out + self.err).strip()

    @property
    def first_line(self) -> str:
        return self.failure or next((line.strip() for line in self.text.splitlines() if line.strip()), "")


def run(argv: Sequence[str], timeout: float) -> Reply:
    """Run ``argv`` with no input; never longer than ``timeout`` seconds (and a moment to reap)."""
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return Reply(-1, "", "", f"cannot run {argv[0]}: {exc.strerror or exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return Reply(-1, "", "", f"{os.path.basename(argv[0])} did not answer within {timeout:g} s")
    return Reply(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _kill_group(proc: "subprocess.Popen[bytes]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:  # already gone
        pass
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()  # a grandchild that left the group may still hold them: do not read on


def locate(name: str, program: Optional[str]) -> Optional[str]:
    """``program`` when given, else ``name`` on PATH (None: not found)."""
    return program or shutil.which(name)


class FsCli:
    """``fs_cli -x COMMAND`` against the running FreeSWITCH, bounded by ``timeout``."""

    def __init__(self, program: Optional[str] = None, timeout: float = FS_CLI_TIMEOUT) -> None:
        self.program = program
        self.timeout = timeout

    def ask(self, command: str) -> Reply:
        program = locate(FS_CLI, self.program)
        if program is None:
            return Reply(-1, "", "", f"no {FS_CLI} on PATH")
        return run([program, "-x", command], self.timeout)

    def global_path(self, name: str) -> Optional[str]:
        """A global variable holding an absolute path (``conf_dir``...); None unanswered.

        No fs_cli, no FreeSWITCH to connect to, an error, an empty answer or a timeout all
        mean: FreeSWITCH did not answer.
        """
        reply = self.ask(f"global_getvar {name}")
        answer = reply.out.strip()
        if not reply.ok or "\n" in answer or not os.path.isabs(answer):
            return None  # "-ERR ...", "Error: ...", "" and any noise are not a path
        return answer


class Fail2banClient:
    """``fail2ban-client [-s SOCKET] ARGS`` against the running fail2ban, bounded by ``timeout``."""

    def __init__(self, program: Optional[str] = None, socket: Optional[str] = None, timeout: float = 5.0) -> None:
        self.program = program
        self.socket = socket
        self.timeout = timeout

    def ask(self, *args: str) -> Reply:
        program = locate(FAIL2BAN_CLIENT, self.program)
        if program is None:
            return Reply(-1, "", "", f"no {FAIL2BAN_CLIENT} on PATH")
        return run([program, *(("-s", self.socket) if self.socket else ()), *args], self.timeout)
