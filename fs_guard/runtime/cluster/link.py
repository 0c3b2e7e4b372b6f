"""One node's connection to the cluster's Redis: redis-py's clients and the counting script.

redis-py (``pip install 'fs-guard[cluster]'``) is imported here only, when the node first
connects, in a thread of its own (``Link.start``). No retries: a request waits at most
``timeout_ms`` for its answer (and as long again if it must open a connection first:
redis-py's socket timeouts); then the request has failed, and ``Health`` decides when
Redis is tried again.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any, Optional, Tuple

from fs_guard.runtime import banlog
from fs_guard.runtime.cluster.health import CONNECTING, UP, Health, Misconfigured, describe
from fs_guard.runtime.cluster.script import LUA
from fs_guard.runtime.config import FIRST_LOAD_WAIT, ClusterSettings

#: Where fs-guard runs (the command line's environment), and for FreeSWITCH (its script directory).
NOT_INSTALLED = ("redis-py is not installed: pip install 'fs-guard[cluster]' (for FreeSWITCH, from the source "
                 "directory: fs-guard install --package '.[cluster]')")
#: Longest wait of a call for the node's first connection (importing redis-py, connecting, the
#: first answer: at most ``timeout_ms`` each once imported), as calls wait for the first configuration load.
FIRST_CONNECT_WAIT = FIRST_LOAD_WAIT
#: Longest wait for new lines in one read of the ban stream (ms): bounds how late the follower sees a shutdown.
BLOCK_MS = 250


class Link:
    """The node's clients (calls, and the follower's), their health, and ids unique to this run."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.health = Health(settings)
        self.client: Any = None  # calls: waits at most the timeout
        self.reader: Any = None  # the follower: also waits BLOCK_MS for new lines
        self.script: Any = None
        self._members = itertools.count()
        self._tag = f"{settings.node}:{os.urandom(4).hex()}:"
        self._attempted = threading.Event()  # the first connection has answered, or failed

    def start(self) -> None:
        """Connect in a thread of its own (the event hook starts it when FreeSWITCH starts)."""
        threading.Thread(target=self.connect, name="fs-guard cluster connect", daemon=True).start()

    def connect(self) -> None:
        try:
            if self.script is None:
                self.client, self.reader, self.script = clients(self.settings)
            self.client.script_load(LUA)
        except Exception as exc:
            self.failed(exc)
        else:
            self.health.succeeded()
        finally:
            self._attempted.set()

    def usable(self, wait: bool = False) -> bool:
        """Whether to send this request to Redis (or decide without it). ``wait``: a call that
        arrives before the first connection has answered waits for it (FIRST_CONNECT_WAIT at most),
        so that no call is decided alone only because the node has just started."""
        if wait and self.health.state == CONNECTING:
            self._attempted.wait(FIRST_CONNECT_WAIT)
        if not self.health.usable():
            return False
        if self.script is None:  # the first connection failed before a client existed: try again now
            self.connect()
            return self.health.state == UP
        return True

    def failed(self, exc: BaseException) -> None:
        self.health.failed(_configuration_error(exc, self.settings))
        client = self.client
        if client is not None:  # a restarted Redis leaves every pooled connection dead: drop them all
            try:
                client.connection_pool.disconnect(inuse_connections=False)
            except Exception:
                pass

    def round_trip(self) -> Optional[float]:
        """Seconds one PING takes now (the metrics endpoint asks at each scrape); None when it fails."""
        if self.client is None:
            return None
        began = time.perf_counter()
        try:
            self.client.ping()
        except Exception as exc:
            self.failed(exc)
            return None
        return time.perf_counter() - began

    def close(self) -> None:
        for client in (self.client, self.reader):
            if client is not None:
                try:
                    client.connection_pool.disconnect()
                except Exception:
                    pass

    def unique(self) -> str:
        """An id no other node and no earlier run of this one uses."""
        return f"{self._tag}{next(self._members)}"


def clients(settings: ClusterSettings) -> Tuple[Any, Any, Any]:
    """redis-py clients for calls and for the follower, and the registered script.

    No retries: a call waits at most the timeout, once. ``redis`` is imported here only.
    """
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError:
        raise Misconfigured(NOT_INSTALLED) from None

    def client(read_timeout: float) -> Any:
        try:
            return redis.Redis.from_url(settings.url, socket_timeout=read_timeout,
                                        socket_connect_timeout=settings.timeout, retry=Retry(NoBackoff(), 0),
                                        retry_on_timeout=False, health_check_interval=0)
        except ValueError as exc:  # what config.py's own check of the URL let through (a query option)
            raise Misconfigured(f"fail2ban.cluster.url: {_shown(settings)}: {exc}") from None

    calls = client(settings.timeout)
    return calls, client(settings.timeout + BLOCK_MS / 1000), calls.register_script(LUA)


def _shown(settings: ClusterSettings) -> str:
    return repr(banlog.escape(settings.shown_url, limit=1024))


def _configuration_error(exc: BaseException, settings: ClusterSettings) -> BaseException:
    """``exc`` as the configuration mistake it shows, or ``exc`` itself."""
    if "DB index" in str(exc):  # SELECT refused: "DB index is out of range" (or "invalid DB index")
        return Misconfigured(f"fail2ban.cluster.url: {_shown(settings)}: this Redis has no such database "
                             "(it has 0 to 15 unless its 'databases' setting says more): name one it has")
    return exc


def ping(settings: ClusterSettings) -> Tuple[bool, str]:
    """For ``fs-guard check-config``: does the Redis answer a PING within the timeout? (ok, what)

    Raises Misconfigured for a mistake the operator must fix (not Redis's fault).
    """
    client = None
    try:
        client = clients(settings)[0]
        began = time.perf_counter()
        client.ping()
        return True, f"PING answered in {(time.perf_counter() - began) * 1000:.1f} ms"
    except Exception as exc:
        problem = _configuration_error(exc, settings)
        if isinstance(problem, Misconfigured):
            raise problem from None
        return False, describe(exc)
    finally:
        if client is not None:
            client.connection_pool.disconnect()
