"""Running a real Redis from tests: Debian's ``redis-server`` on 127.0.0.1, a free port, a private directory.

Used by tests/test_cluster.py and benchmarks/bench_cluster.py. Nothing here touches a Redis
the machine may already run: each server gets its own port, its own directory, no
persistence (``--save ''``, ``--appendonly no``), and is stopped by whoever started it.

redis-server or redis-py missing: the tests skip, unless FS_GUARD_REQUIRE_REDIS is set (CI
sets it), and then they fail (``need_redis``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional

REQUIRE_ENV = "FS_GUARD_REQUIRE_REDIS"


def redis_required() -> bool:
    """True when a missing Redis must fail the tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "no", "false")


def need_redis() -> str:
    """The path of redis-server, with redis-py importable; skips or fails when either is missing."""
    import pytest  # here: benchmarks/bench_cluster.py uses this module without pytest

    reason = None
    server = shutil.which("redis-server")
    if server is None:
        reason = "redis-server is not installed (Debian: apt-get install redis-server)"
    else:
        try:
            import redis  # noqa: F401
        except ImportError:
            reason = "redis-py is not installed (pip install -e '.[cluster]')"
    if reason is not None:
        if redis_required():
            pytest.fail(f"{reason} (and {REQUIRE_ENV} is set, so this is a failure, not a skip)", pytrace=False)
        pytest.skip(f"{reason}; set {REQUIRE_ENV}=1 to make this a failure")
    return str(server)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One private redis-server; ``stop()`` kills it (as a crash would), ``start()`` brings it back
    on the same port, empty (nothing is persisted)."""

    def __init__(self, server: str, directory: Path, port: Optional[int] = None) -> None:
        self.server = server
        self.directory = directory
        self.port = port or free_port()
        self.process: Optional[subprocess.Popen] = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.process = subprocess.Popen(
            [self.server, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log")
                raise AssertionError(f"redis-server did not start on port {self.port}: "
                                     f"{log.read_text()[-2000:] if log.exists() else ''}")
            time.sleep(0.02)
        return self

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Kill it at once (SIGKILL: no goodbye to the clients, as a crash or a lost host)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers: a hung Redis."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self.port = self._socket.getsockname()[1]
        self._accepted: List[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self._accepted.append(conn)

    def close(self) -> None:
        self._socket.close()
        for conn in self._accepted:
            conn.close()
