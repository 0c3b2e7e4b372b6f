"""What the node still owes Redis: freeing the concurrency slots of calls that ended, and
the ban lines it wrote, for the other nodes (the ban stream).

Concurrent calls hold a member (the call's uuid) in a Redis set per key until the call's
CHANNEL_HANGUP_COMPLETE (``release``, from the event hook), or ``call_max_duration``. Every
ban line a node writes is added to a Redis stream (``XADD``, capped at about ``STREAM_MAX``
entries) with the node's name. While Redis is down both wait here (at most ``BACKLOG`` each,
the oldest go first) and are sent when it answers again.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple

from fs_guard.runtime import state
from fs_guard.runtime.cluster.link import Link

#: Status counters (``fs_guard.status``).
BANS_PUBLISHED = "cluster_bans_published"
BACKLOG_DROPPED = "cluster_backlog_dropped"  # lines or releases dropped: BACKLOG waited for Redis already

#: Stream length kept (approximately): about a day of a busy cluster's ban lines.
STREAM_MAX = 100_000
#: Entries read, lines shared, slots released per round trip.
BATCH = 500
#: Ban lines and releases kept while Redis is down, each (the oldest go first): about 20 MB at most.
BACKLOG = 50_000


def stream(link: Link) -> str:
    """The ban stream's key."""
    return link.settings.key_prefix + "bans"


class Outbox:
    """The slots held by the calls up, and the releases and ban lines not yet done in Redis."""

    def __init__(self, link: Link, previous: Optional["Outbox"] = None) -> None:
        self._link = link
        self._stream = stream(link)
        self._lock = threading.Lock()
        self.held: Dict[str, List[str]] = {}  # call id -> its concurrency keys in Redis
        self.releases: Deque[Tuple[str, List[str]]] = deque(maxlen=BACKLOG)  # not yet done in Redis
        self.entries: Deque[Dict[str, str]] = deque(maxlen=BACKLOG)  # stream entries not yet added
        self._flushing = threading.Lock()
        self.sending = (0, 0)  # releases and entries on their way to Redis now
        if previous is not None:  # same Redis, same keys: what the calls up hold is still there
            with previous._lock:
                self.held = dict(previous.held)
            self.releases.extend(previous.releases)
            self.entries.extend(previous.entries)

    def hold(self, call_id: str, keys: List[str], most: int) -> None:
        """The call holds a slot in each of ``keys`` until it ends."""
        if not keys:
            return
        with self._lock:
            self.held[call_id] = keys
            if len(self.held) > most:  # hang-ups lost: Redis frees those slots at call_max_duration
                del self.held[next(iter(self.held))]

    def release(self, call_id: str) -> None:
        """The call has ended: free its concurrency slots in Redis (later, if Redis is down)."""
        with self._lock:
            keys = self.held.pop(call_id, None)
        if keys is None:
            return
        _append(self.releases, (call_id, keys))
        self.flush()

    def publish(self, line: str) -> None:
        """Share a ban line this node wrote (later, if Redis is down)."""
        _append(self.entries, {"node": self._link.settings.node, "line": line, "id": self._link.unique()})
        self.flush()

    def flush(self) -> None:
        """Do in Redis the releases and shares still waiting: one round trip per BATCH."""
        if not (self.releases or self.entries) or not self._flushing.acquire(blocking=False):
            return  # nothing to do, or another thread is doing it (the follower picks up stragglers)
        link = self._link
        try:
            while (self.releases or self.entries) and link.usable():
                releases = [self.releases.popleft() for _ in range(min(BATCH, len(self.releases)))]
                entries = [self.entries.popleft() for _ in range(min(BATCH, len(self.entries)))]
                self.sending = (len(releases), len(entries))
                pipe = link.client.pipeline(transaction=False)
                for call_id, keys in releases:
                    for key in keys:
                        pipe.zrem(key, call_id)
                for entry in entries:
                    add(pipe, self._stream, entry)
                try:
                    pipe.execute()
                except Exception as exc:
                    self.releases.extendleft(reversed(releases))
                    self.entries.extendleft(reversed(entries))
                    link.failed(exc)
                    return
                finally:
                    self.sending = (0, 0)
                link.health.succeeded()
                shared = sum(1 for entry in entries if "line" in entry)
                if shared:
                    state.STATS.add(BANS_PUBLISHED, shared)
        finally:
            self._flushing.release()


def add(client: Any, key: str, entry: Dict[str, str]) -> None:
    """Add an entry to the ban stream (a client or a pipeline), keeping it about STREAM_MAX long."""
    client.xadd(key, entry, maxlen=STREAM_MAX, approximate=True)


def _append(backlog: Deque[Any], item: Any) -> None:
    if len(backlog) == backlog.maxlen:
        state.STATS.add(BACKLOG_DROPPED)
    backlog.append(item)
