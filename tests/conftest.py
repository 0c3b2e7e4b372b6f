"""Shared fixtures. The fake ``freeswitch`` module is put first on sys.path so that
fs_guard imports it exactly as it would import the real one inside FreeSWITCH."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import NamedTuple, Tuple

import pytest

FAKES = Path(__file__).parent / "fakes"
sys.path.insert(0, str(FAKES))

import fsctl  # noqa: E402

from fs_guard.runtime import limiter, state  # noqa: E402
from fs_guard.runtime.banlog import BanLog  # noqa: E402
from fs_guard.runtime.config import ConfigStore  # noqa: E402
from fs_guard.runtime.ratelimit import RateLimiter  # noqa: E402
from fs_guard.runtime.stats import Counters  # noqa: E402
from fs_guard.runtime.tally import Tally  # noqa: E402


@pytest.fixture
def fs_dirs(tmp_path):
    """FreeSWITCH's conf_dir and log_dir for one test."""
    conf = tmp_path / "conf"
    logs = tmp_path / "log"
    conf.mkdir()
    logs.mkdir()
    return conf, logs


@pytest.fixture(autouse=True)
def fresh_freeswitch(tmp_path, monkeypatch, fs_dirs):
    """Every test starts with an empty FreeSWITCH: no config file, fresh state."""
    conf, logs = fs_dirs
    monkeypatch.delenv("FS_GUARD_CONFIG", raising=False)
    fsctl.reset({"conf_dir": str(conf), "log_dir": str(logs), "base_dir": str(tmp_path)})
    monkeypatch.setattr(state, "CONFIG", ConfigStore())
    monkeypatch.setattr(state, "BANLOG", BanLog())
    monkeypatch.setattr(state, "STATS", Counters())
    monkeypatch.setattr(state, "ERROR_REPORTS", RateLimiter(1.0))
    monkeypatch.setattr(state, "TALLY", Tally())
    monkeypatch.setattr(state, "CLUSTER", None)
    monkeypatch.setattr(limiter, "_warned_no_hook", False)
    yield
    state.BANLOG.close()
    if state.CLUSTER is not None:
        state.CLUSTER.close()


@pytest.fixture
def write_config(fs_dirs):
    """Write ``<conf_dir>/fs_guard.json`` with the given fail2ban object (or raw text)."""
    conf, _ = fs_dirs
    path = conf / "fs_guard.json"

    def write(section=None, text=None, extra=None):
        if text is None:
            document = {"fail2ban": section or {}}
            document.update(extra or {})
            text = json.dumps(document)
        path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
        return path

    return write


@pytest.fixture
def ban_log(fs_dirs):
    """The default ban log path and a reader of its lines."""
    _, logs = fs_dirs
    path = logs / "fs-guard-ban.log"

    class Reader:
        def __init__(self):
            self.path = path

        def lines(self):
            return path.read_text(encoding="ascii").splitlines() if path.exists() else []

    return Reader()


class Ran(NamedTuple):
    """What one ``fs-guard`` command did: its exit status and what it printed."""

    code: int
    out: str
    err: str

    def merged(self) -> Tuple[int, str]:
        """The exit status and everything printed, stdout then stderr, as a terminal shows it."""
        return self.code, self.out + self.err


@pytest.fixture
def run_cli(capsys):
    """Run ``fs-guard ARGS...`` in this process: ``run_cli("replay", path)`` -> Ran."""
    from fs_guard.offline.cli import main

    def run(*argv: str) -> Ran:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture
def call():
    """Place a call through the real ``fs_guard.screen`` as mod_python3 does."""
    from modpython import run_app

    def place(number, *, context="public", ip="203.0.113.7", ua=None, args="", **variables):
        session = fsctl.call_session(
            destination_number=number, context=context, sip_network_ip=ip, sip_user_agent=ua, **variables
        )
        run_app("fs_guard.screen" + (f" {args}" if args else ""), session)
        return session

    return place


@pytest.fixture
def hook():
    """The event hook running, as the startup-script runs it: it sees calls end, so
    concurrent calls are counted and released."""
    from modpython import run_startup, unload

    started = run_startup("fs_guard.events")
    fsctl.wait_until(fsctl.idle)
    yield started
    fsctl.stop_running()
    unload()


@pytest.fixture(scope="session")
def managed_python(tmp_path_factory):
    """An externally managed Python (PEP 668) of this version, and the mod_python3.so linked to it."""
    import python_support

    prefix = tmp_path_factory.mktemp("managed-python")
    python = python_support.managed_python(prefix)
    return python, prefix


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    """fs-guard's wheel and its dependencies', built once: installs in the tests use no index."""
    import python_support

    return python_support.wheelhouse(tmp_path_factory.mktemp("wheels"))


@pytest.fixture
def utc(monkeypatch):
    """FreeSWITCH's log has local times; read them as UTC for exact expectations."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def alerts():
    """The fs_guard::alert events fired, as an ESL client subscribed to them sees them."""
    import freeswitch

    consumer = freeswitch.EventConsumer("CUSTOM", "fs_guard::alert")

    def popped():
        events = []
        while (event := consumer.pop()) is not None:
            headers = {name: event.getHeader(name) for name in (
                "Event-Subclass", "limit", "key", "by", "metric", "count", "threshold", "window", "level",
                "action", "destination-number", "context", "network-ip", "call-uuid", "blocked-until")}
            # A classified destination adds these two; without one they are absent, not empty.
            headers.update({name: event.getHeader(name) for name in ("destination-country", "destination-type")
                            if event.getHeader(name) is not None})
            events.append(headers)
        return events

    yield popped
    consumer.cleanup()
