"""Limits and bans shared by the FreeSWITCH nodes of a cluster, through Redis (the ``cluster`` setting).

Imported only when a configuration has a ``cluster``. One node's part, by job:

- ``link``: the connection (redis-py, imported only there) and ``health``: whether Redis
  answers, the backoff while it does not, what the console and status say;
- ``counting`` and ``script``: each screened call counted in Redis by ``count.lua``, whose
  arguments and reply ``script`` writes and reads as named records;
- ``outbox``: releases of ended calls' slots and this node's ban lines, on their way to Redis;
- ``follower``: the other nodes' ban lines (and unblocks), into this node's ban log;
- ``unblock`` and ``status``: the operator's ``fs_guard.status`` command.

This module puts them together (``Cluster``), keeps the process's one (``current``) and
holds the entry points the rest of fs-guard calls.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional, Set, Tuple

from fs_guard.runtime import errors, host, state
from fs_guard.runtime.cluster import status as status_section
from fs_guard.runtime.cluster import unblock as unblocking
from fs_guard.runtime.cluster.counting import Counter
from fs_guard.runtime.cluster.follower import Follower
from fs_guard.runtime.cluster.link import BLOCK_MS, Link
from fs_guard.runtime.cluster.outbox import Outbox
from fs_guard.runtime.config import ClusterSettings

_lock = threading.Lock()
_following = False  # the follower thread runs (the event hook started it)


class Cluster:
    """One node's link to the cluster's Redis: shared counting, releases, ban lines in and out."""

    def __init__(self, settings: ClusterSettings, previous: Optional["Cluster"] = None,
                 server_time: bool = True) -> None:
        self.settings = settings
        self.link = Link(settings)
        self.health = self.link.health
        same = previous is not None and (previous.settings.url, previous.settings.key_prefix) == (
            settings.url, settings.key_prefix)  # same Redis, same keys: what the calls up hold is still there
        self.outbox = Outbox(self.link, previous.outbox if same else None)
        self.follower = Follower(self.link, self.outbox, previous.follower.last_id if same else None)
        self.counter = Counter(self.link, self.outbox, server_time)
        # What the rest of fs-guard calls: the parts' own methods (no extra call on the call path).
        self.count = self.counter.count
        self.release = self.outbox.release
        self.publish = self.outbox.publish
        self.flush = self.outbox.flush

    def start(self) -> None:
        self.link.start()

    def connect(self) -> None:
        self.link.connect()

    def close(self) -> None:
        self.link.close()


def current(settings: ClusterSettings) -> Cluster:
    """The process's cluster for these settings: made on first use, remade when they change."""
    live = state.CLUSTER
    if live is not None and live.settings == settings:
        return live
    with _lock:
        live = state.CLUSTER
        if live is None or live.settings != settings:
            live = Cluster(settings, previous=live)
            state.CLUSTER = live
            live.start()
    return live


def follow(stop: threading.Event) -> None:
    """The ban follower's thread, started by the event hook: until ``stop`` (or shutdown), write
    the other nodes' ban lines and finish the releases and shares Redis could not take."""
    global _following
    _following = True
    try:
        while not stop.is_set() and host.running():
            try:
                settings = state.CONFIG.current().cluster
                if settings is None:
                    stop.wait(BLOCK_MS / 1000)
                    continue
                current(settings).follower.step(stop)
            except Exception as exc:  # a bug must not end the follower
                errors.report("cluster ban follower error", exc)
                stop.wait(BLOCK_MS / 1000)
    finally:
        _following = False


def status(settings: ClusterSettings, iso: Callable[[Optional[float]], Optional[str]]) -> Dict[str, Any]:
    """What ``fs_guard.status`` shows of the cluster; ``iso`` writes its times."""
    live = current(settings)
    return status_section.section(live.link, live.outbox, live.follower, _following, iso)


def unblock(settings: ClusterSettings, key: str) -> Set[Tuple[str, str]]:
    """``status unblock KEY`` with a cluster: the shared blocks too, on every node. Redis down:
    nothing is lifted there, and status shows why (its last error)."""
    live = current(settings)
    try:
        return set(unblocking.lift(live.link, key))
    except Exception as exc:
        live.link.failed(exc)
        return set()
