"""Asking the live system: ``fs_cli``, FreeSWITCH's event socket, ``fail2ban-client``; bounded.

``install`` and ``doctor`` ask a running FreeSWITCH and fail2ban what they do; neither may
stall on a server that does not answer. A program is run in its own process group and,
past its timeout, the whole group is killed: a wrapper script's children (which would
keep the output pipes open and make a plain ``subprocess.run`` wait on) die with it. The
event socket is spoken to directly (when fs_cli cannot log in), against one deadline.
"""

from __future__ import annotations

import abc
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

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


class FreeSwitchApi(abc.ABC):
    """An API command to the running FreeSWITCH and its answer, as fs_cli prints it."""

    @abc.abstractmethod
    def ask(self, command: str) -> Reply: ...

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


class FsCli(FreeSwitchApi):
    """``fs_cli -x COMMAND`` against the running FreeSWITCH, bounded by ``timeout``."""

    def __init__(self, program: Optional[str] = None, timeout: float = FS_CLI_TIMEOUT) -> None:
        self.program = program
        self.timeout = timeout

    def ask(self, command: str) -> Reply:
        program = locate(FS_CLI, self.program)
        if program is None:
            return Reply(-1, "", "", f"no {FS_CLI} on PATH")
        return run([program, "-x", command], self.timeout)


class EslError(Exception):
    """The event socket did not answer as mod_event_socket does."""


class EventSocket(FreeSwitchApi):
    """``api COMMAND`` on FreeSWITCH's event socket (mod_event_socket), as fs_cli sends it:
    one connection per command, the whole exchange within ``timeout``. The password stays
    in this process (fs_cli would need it on its command line)."""

    def __init__(self, host: str, port: int, password: str, timeout: float = FS_CLI_TIMEOUT) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.timeout = timeout

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def ask(self, command: str) -> Reply:
        if "\n" in command or "\r" in command:
            return Reply(-1, "", "", "a command is one line")
        deadline = time.monotonic() + self.timeout
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as conn:
                frames = _Frames(conn, deadline)
                frames.expect("auth/request")
                conn.sendall(f"auth {self.password}\n\n".encode("utf-8"))
                reply = frames.expect("command/reply")[0].get("Reply-Text", "")
                if not reply.startswith("+OK"):
                    return Reply(-1, "", "", f"the event socket at {self.address} refused the password ({reply})")
                conn.sendall(f"api {command}\n\n".encode("utf-8"))
                body = frames.expect("api/response")[1]
        except socket.timeout:
            return Reply(-1, "", "", f"the event socket at {self.address} did not answer within {self.timeout:g} s")
        except OSError as exc:
            return Reply(-1, "", "", f"cannot connect to the event socket at {self.address}: {exc.strerror or exc}")
        except EslError as exc:
            return Reply(-1, "", "", f"the event socket at {self.address}: {exc}")
        return Reply(0, body.decode("utf-8", "replace") + "\n")  # fs_cli prints the body and a newline


class _Frames:
    """Reads mod_event_socket's frames (headers, a blank line, Content-Length bytes of body)."""

    MAX = 16 << 20

    def __init__(self, conn: socket.socket, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.buffer = b""

    def _more(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        self.conn.settimeout(left)
        chunk = self.conn.recv(65536)
        if not chunk:
            raise EslError("it closed the connection")
        self.buffer += chunk
        if len(self.buffer) > self.MAX:
            raise EslError("an answer too long")

    def next(self) -> Tuple[Dict[str, str], bytes]:
        while b"\n\n" not in self.buffer:
            self._more()
        head, self.buffer = self.buffer.split(b"\n\n", 1)
        headers = dict(line.split(": ", 1) for line in head.decode("utf-8", "replace").splitlines() if ": " in line)
        length = headers.get("Content-Length", "0")
        if not length.isdigit():
            raise EslError(f"a Content-Length that is not a number: {length!r}")
        length = int(length)
        while len(self.buffer) < length:
            self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return headers, body

    def expect(self, content_type: str) -> Tuple[Dict[str, str], bytes]:
        """The next frame of ``content_type``, skipping others (log lines, notices)."""
        while True:
            headers, body = self.next()
            kind = headers.get("Content-Type", "")
            if kind == content_type:
                return headers, body
            if kind == "text/rude-rejection":
                raise EslError("it turned this address away (apply-inbound-acl in event_socket.conf.xml)")
            if kind == "text/disconnect-notice":
                raise EslError("it hung up")


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
