"""The cluster's section of ``fs_guard.status``: read from the node's link when asked."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from fs_guard.runtime.cluster.follower import Follower
from fs_guard.runtime.cluster.link import Link
from fs_guard.runtime.cluster.outbox import Outbox


def section(link: Link, outbox: Outbox, follower: Follower, following: bool,
            iso: Callable[[Optional[float]], Optional[str]]) -> Dict[str, Any]:
    """What ``fs_guard.status`` shows; ``following``: the follower thread runs; ``iso`` writes times."""
    settings, health = link.settings, link.health
    retry = health.retry_in()
    return {
        "node": settings.node,
        "url": settings.shown_url,
        "key_prefix": settings.key_prefix,
        "timeout_ms": round(settings.timeout * 1000),
        "state": health.state,
        "since": iso(health.since),
        "retry_in": None if retry is None else round(retry, 1),
        "last_error": health.last_error,
        "error_at": iso(health.error_at),
        "ban_follower": {"running": following, "reading_since": iso(follower.reading_since)},
        "calls_up_shared": len(outbox.held),
        "waiting": {"releases": len(outbox.releases) + outbox.sending[0],
                    "ban_lines": len(outbox.entries) + outbox.sending[1]},
    }
