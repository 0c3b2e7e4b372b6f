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
from typing import Any, Tuple

from fs_guard.runtime.cluster.health import UP, Health, describe
from fs_guard.runtime.cluster.script import LUA
from fs_guard.runtime.config import ClusterSettings

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

    def start(self) -> None:
        """Connect in the background: importing redis-py and the first answer hold no call."""
        threading.Thread(target=self.connect, name="fs-guard cluster connect", daemon=True).start()

    def connect(self) -> None:
        try:
            if self.script is None:
                self.client, self.reader, self.script = clients(self.settings)
            self.client.script_load(LUA)
        except Exception as exc:
            self.health.failed(exc)
            return
        self.health.succeeded()

    def usable(self) -> bool:
        """Whether to send this request to Redis (or decide without it)."""
        if not self.health.usable():
            return False
        if self.script is None:  # the first connection failed before a client existed: try again now
            self.connect()
            return self.health.state == UP
        return True

    def failed(self, exc: BaseException) -> None:
        self.health.failed(exc)
        client = self.client
        if client is not None:  # a restarted Redis leaves every pooled connection dead: drop them all
            try:
                client.connection_pool.disconnect(inuse_connections=False)
            except Exception:
                pass

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
    except ImportError as exc:
        raise ImportError(f"redis-py is not installed (pip install redis): {exc}") from None

    def client(read_timeout: float) -> Any:
        return redis.Redis.from_url(settings.url, socket_timeout=read_timeout,
                                    socket_connect_timeout=settings.timeout, retry=Retry(NoBackoff(), 0),
                                    retry_on_timeout=False, health_check_interval=0)

    calls = client(settings.timeout)
    return calls, client(settings.timeout + BLOCK_MS / 1000), calls.register_script(LUA)


def ping(settings: ClusterSettings) -> Tuple[bool, str]:
    """For ``fs-guard check-config``: does the Redis answer a PING within the timeout? (ok, what)"""
    try:
        client = clients(settings)[0]
    except Exception as exc:
        return False, describe(exc)
    began = time.perf_counter()
    try:
        client.ping()
    except Exception as exc:
        return False, describe(exc)
    finally:
        client.connection_pool.disconnect()
    return True, f"PING answered in {(time.perf_counter() - began) * 1000:.1f} ms"
