"""Running the real fail2ban from tests: the shipped files, fail2ban-regex, a private server.

Used by tests/test_fail2ban.py. Nothing here touches the host's fail2ban service, its
configuration or its firewall: a private server gets its own configuration directory
(a copy of the stock one, with fs-guard's jail and filter linked in), its own socket,
pidfile and in-memory database, and an action that only appends to a file.

fail2ban missing: the tests skip, unless FS_GUARD_REQUIRE_FAIL2BAN is set (CI sets it),
and then they fail (``need_fail2ban``).
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "fail2ban"
FILTER = SHIPPED / "filter.d" / "fs-guard.conf"
JAIL = SHIPPED / "jail.d" / "fs-guard.conf"
SAMPLE_LOG = SHIPPED / "tests" / "fs-guard.log"
LOGROTATE = SHIPPED / "logrotate.d" / "fs-guard"
JAIL_NAME = "fs-guard"

REQUIRE_ENV = "FS_GUARD_REQUIRE_FAIL2BAN"
TOOLS = ("fail2ban-regex", "fail2ban-server", "fail2ban-client")
STOCK_CONF = Path("/etc/fail2ban")


def fail2ban_required() -> bool:
    """True when a missing fail2ban must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "no", "false")


def missing(reason: str) -> None:
    """Skip, or fail when FS_GUARD_REQUIRE_FAIL2BAN is set (CI)."""
    if fail2ban_required():
        pytest.fail(f"{reason} (and {REQUIRE_ENV} is set, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to make this a failure")


def need_fail2ban(*tools: str) -> Dict[str, str]:
    """The paths of fail2ban's commands; skips or fails (see ``missing``) when any is absent."""
    found = {tool: shutil.which(tool) for tool in (tools or TOOLS)}
    absent = sorted(tool for tool, path in found.items() if path is None)
    if absent:
        missing(f"fail2ban is not installed ({', '.join(absent)} not found on PATH)")
    return {tool: str(path) for tool, path in found.items()}


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # fail2ban's scripts run on the system python3
    env.setdefault("LANG", "C.UTF-8")
    return env


def run(argv: List[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=_env())


# --- the sample log and fail2ban-regex -------------------------------------------------


@dataclass(frozen=True)
class Annotated:
    lineno: int
    expect: dict  # the failJSON object
    line: str


_FAILJSON = re.compile(r"^#+ ?failJSON:(.+)$")


def read_annotated(path: Path) -> List[Annotated]:
    """Every log line of a sample file with the failJSON comment before it.

    A log line without a failJSON comment is an error: every line must say what it expects.
    """
    result: List[Annotated] = []
    pending: Optional[dict] = None
    with open(path, encoding="utf-8", newline="\n") as handle:
        for lineno, raw in enumerate(handle, 1):
            line = raw.rstrip("\n")
            found = _FAILJSON.match(line)
            if found:
                assert pending is None, f"{path}:{lineno}: two failJSON comments in a row"
                pending = json.loads(found.group(1))
                continue
            if line.startswith("#") or not line.strip():
                assert pending is None, f"{path}:{lineno}: failJSON not followed by a log line"
                continue
            assert pending is not None, f"{path}:{lineno}: log line without a failJSON comment: {line!r}"
            result.append(Annotated(lineno, pending, line))
            pending = None
    assert pending is None, f"{path}: failJSON at the end of the file"
    return result


def read_samples(path: Path) -> List[List[Annotated]]:
    """``read_annotated``, in samples: a blank line ends one."""
    blank = {n for n, text in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if not text.strip()}
    samples: List[List[Annotated]] = []
    previous = 0
    for annotated in read_annotated(path):
        if not samples or any(previous < n < annotated.lineno for n in blank):
            samples.append([])
        samples[-1].append(annotated)
        previous = annotated.lineno
    return samples


@dataclass(frozen=True)
class Match:
    time: float
    ip: str
    line: str


def regex_matches(regex_tool: str, log: Path, filter_path: Path = FILTER) -> List[Match]:
    """What the real fail2ban-regex matches in ``log``: (time, address, original line) per hit."""
    proc = run([regex_tool, "-e", "utf-8", "-o", "<time> <ip> <msg>", str(log), str(filter_path)])
    assert proc.returncode == 0, f"fail2ban-regex failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    matches = []
    for row in proc.stdout.splitlines():
        if not row:
            continue
        stamp, ip, line = row.split(" ", 2)
        matches.append(Match(float(stamp), ip, line))
    return matches


_SUMMARY = re.compile(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", re.M)


def regex_summary(regex_tool: str, log: Path, filter_path: Path = FILTER) -> Tuple[int, int, int, int]:
    """fail2ban-regex's own count: (lines, ignored, matched, missed)."""
    proc = run([regex_tool, "-e", "utf-8", str(log), str(filter_path)])
    assert proc.returncode == 0, f"fail2ban-regex failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    found = _SUMMARY.search(proc.stdout)
    assert found, f"no summary in fail2ban-regex output:\n{proc.stdout}"
    return tuple(int(n) for n in found.groups())  # type: ignore[return-value]


def shipped_option(path: Path, section: str, option: str) -> str:
    """An option of a shipped fail2ban file, as written (no interpolation)."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(path, encoding="utf-8")
    return parser.get(section, option)


# --- a private fail2ban server --------------------------------------------------------


def private_conf(conf: Path, stock: Path = STOCK_CONF) -> Path:
    """A fail2ban configuration directory with the repository's filter and jail as its only jail.

    A copy of ``stock`` (Debian's /etc/fail2ban, so the shipped jail inherits the real
    defaults) without its ``*.local`` files, its jails and anything named fs-guard: a host
    where ``fs-guard install`` ran has its own (maybe older) filter and jail there, and the
    tests must run the repository's. Without a stock jail.conf, a minimal one with what the
    shipped jail uses. filter.d/fs-guard.conf and jail.d/fs-guard.conf link to the
    repository's files. Returns ``conf``.
    """
    if (stock / "jail.conf").is_file():
        shutil.copytree(stock, conf, symlinks=True, ignore=shutil.ignore_patterns("*.local", "fs-guard*"))
        for old in (conf / "jail.d").glob("*"):
            old.unlink()
    else:  # fail2ban installed elsewhere
        conf.mkdir(parents=True)
        (conf / "fail2ban.conf").write_text("[Definition]\n")
        (conf / "jail.conf").write_text(
            "[DEFAULT]\nbanaction = iptables-multiport\nbanaction_allports = iptables-allports\n"
        )
    for sub in ("jail.d", "filter.d", "action.d"):
        (conf / sub).mkdir(exist_ok=True)
    (conf / "filter.d" / "fs-guard.conf").symlink_to(FILTER)
    (conf / "jail.d" / "fs-guard.conf").symlink_to(JAIL)
    return conf


RECORD_ACTION = """\
# Test action: records bans and unbans in a file. Never touches a firewall.
[Definition]
actionstart = touch <record>
actionstop =
actioncheck =
actionban = echo "ban <ip>" >> <record>
actionunban = echo "unban <ip>" >> <record>

[Init]
record = /dev/null
"""


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.01, what: str = "") -> object:
    """Poll ``condition`` until it returns something true; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


class Fail2banServer:
    """One private fail2ban-server, watching ``logpath`` with the shipped filter and jail.

    The configuration directory comes from ``private_conf`` (the stock one, the repository's
    filter and jail); jail.d/fs-guard.local changes only what a test must change (logpath, the polling
    backend, and the recording action instead of the firewall); fail2ban.local gives the
    socket, pidfile, log file and an in-memory database.
    """

    def __init__(self, root: Path, logpath: Path, tools: Dict[str, str], stock: Path = STOCK_CONF) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.logpath = logpath
        self.tools = tools
        self.conf = root / "conf"
        self.record_path = root / "bans.txt"
        self.log_file = root / "fail2ban.log"
        # a unix socket path must stay short (108 bytes): keep it out of pytest's long tmp path
        self._rundir = Path(tempfile.mkdtemp(prefix="fsg-f2b-"))
        self.socket = self._rundir / "f2b.sock"
        self.pidfile = self._rundir / "f2b.pid"
        self.proc: Optional[subprocess.Popen] = None
        self._out = None
        try:
            self._write_config(stock)
        except BaseException:
            shutil.rmtree(self._rundir, ignore_errors=True)
            raise

    def _write_config(self, stock: Path) -> None:
        private_conf(self.conf, stock)
        (self.conf / "action.d" / "fs-guard-test-record.conf").write_text(RECORD_ACTION)
        (self.conf / "jail.d" / "fs-guard.local").write_text(
            "# test overrides of the shipped jail: never the host's firewall, never its log dir\n"
            "[fs-guard]\n"
            f"logpath = {self.logpath}\n"
            "backend = polling\n"
            f'action = fs-guard-test-record[record="{self.record_path}"]\n'
        )
        (self.conf / "fail2ban.local").write_text(
            "[Definition]\n"
            "loglevel = INFO\n"
            f"logtarget = {self.log_file}\n"
            f"socket = {self.socket}\n"
            f"pidfile = {self.pidfile}\n"
            "dbfile = :memory:\n"
            "allowipv6 = auto\n"
        )

    # lifecycle

    def start(self, timeout: float = 30) -> "Fail2banServer":
        self._out = open(self.root / "server.out", "w")
        self.proc = subprocess.Popen(
            [self.tools["fail2ban-server"], "-c", str(self.conf), "-s", str(self.socket),
             "-p", str(self.pidfile), "-x", "-f"],
            stdout=self._out, stderr=subprocess.STDOUT,
            env=_env(), start_new_session=True,
        )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"fail2ban-server exited with {self.proc.returncode}:\n{self.diagnostics()}")
            return self.client_ok("status", JAIL_NAME)

        wait_for(ready, timeout, interval=0.05, what="fail2ban-server to start the fs-guard jail")
        return self

    def stop(self) -> None:
        """Stops the server if it runs; removes the socket's directory in any case."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.client_ok("stop")
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=5)
        finally:
            self.proc = None
            if self._out is not None:
                self._out.close()
                self._out = None
            shutil.rmtree(self._rundir, ignore_errors=True)

    # talking to it

    def client(self, *args: str, timeout: float = 30) -> str:
        proc = run([self.tools["fail2ban-client"], "-c", str(self.conf), "-s", str(self.socket), *args], timeout)
        if proc.returncode != 0:
            raise AssertionError(f"fail2ban-client {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}{proc.stderr}\n{self.diagnostics()}")
        return proc.stdout

    def client_ok(self, *args: str) -> bool:
        proc = run([self.tools["fail2ban-client"], "-c", str(self.conf), "-s", str(self.socket), *args], 30)
        return proc.returncode == 0

    def status(self) -> Dict[str, object]:
        """``fail2ban-client status fs-guard`` as a dict; "Banned IP list" is a list."""
        text = self.client("status", JAIL_NAME)
        result: Dict[str, object] = {}
        for line in text.splitlines():
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip(" |`-")
            value = value.strip()
            if key == "Banned IP list":
                result[key] = value.split()
            elif value.isdigit():
                result[key] = int(value)
            else:
                result[key] = value
        return result

    def banned(self) -> List[str]:
        return list(self.status()["Banned IP list"])  # type: ignore[arg-type]

    def total_failed(self) -> int:
        return int(self.status()["Total failed"])  # type: ignore[arg-type]

    def record(self) -> List[str]:
        """What the recording action saw: "ban ADDR" / "unban ADDR", in order."""
        try:
            return self.record_path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def diagnostics(self) -> str:
        parts = []
        for path in (self.root / "server.out", self.log_file):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-6000:]}")
        return "\n".join(parts)


def dump_config(client_tool: str, conf: Path) -> List[list]:
    """``fail2ban-client -c CONF -d``: the command stream the configuration turns into."""
    proc = run([client_tool, "-c", str(conf), "-d"])
    assert proc.returncode == 0, f"fail2ban-client -d failed:\n{proc.stdout}\n{proc.stderr}"
    stream = []
    for line in proc.stdout.splitlines():
        if line.startswith("["):
            stream.append(ast.literal_eval(line))
    return stream


def jail_commands(stream: List[list], jail: str = JAIL_NAME) -> Iterator[list]:
    return (cmd for cmd in stream if len(cmd) > 1 and cmd[1] == jail)
