"""Whether the cluster's Redis answers; when it does not, when to try it again and what to say.

When Redis fails (down, slow, restarted, unreachable) it is left alone for a backoff (0.5 s,
doubling to 30 s) before one call tries it again; the fault is logged once (then at most
once a minute) and shown by ``fs_guard.status``. A configuration mistake found only when
connecting (redis-py not installed, a database this Redis does not have) is told apart:
it is the operator's to fix, not Redis's, and console and status say what to change
(the node keeps trying, so the fix takes effect without a restart).
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from fs_guard.runtime import banlog, host, state
from fs_guard.runtime.config import ClusterSettings
from fs_guard.runtime.ratelimit import RateLimiter

#: Status counter (``fs_guard.status``): Redis requests that failed or timed out.
ERRORS = "cluster_errors"

UP = "up"
DOWN = "down"
CONNECTING = "connecting"
MISCONFIGURED = "misconfigured"

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
#: While Redis stays down, at most one console line per this many seconds.
LOG_INTERVAL = 60.0


class Misconfigured(Exception):
    """The cluster setting, or the install, is wrong: the operator must change it, and the text (fs-guard's
    own words, the setting's text in them escaped) says what."""


def describe(exc: BaseException) -> str:
    """What went wrong, as status keeps it (escaped where it is printed)."""
    if isinstance(exc, Misconfigured):
        return f"configuration error: {exc}"[:512]
    return f"{type(exc).__name__}: {exc}"[:512]


class Health:
    """The state of one node's link to Redis: up, down (and its backoff) or still connecting."""

    def __init__(self, settings: ClusterSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self.state = CONNECTING
        self.since = time.time()
        self.last_error: Optional[str] = None
        self.error_at: Optional[float] = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._trying = False  # a caller is trying Redis again after a backoff
        self._log = RateLimiter(LOG_INTERVAL)

    def usable(self) -> bool:
        """Up; or down with its backoff over, and this caller is the one to try again."""
        if self.state == UP:
            return True
        if self.state == CONNECTING:
            return False
        with self._lock:
            now = time.monotonic()
            if self.state == UP or now >= self._retry_at:
                self._retry_at = now + self._backoff  # the others stay local meanwhile
                self._trying = True
                return True
            return False

    def failed(self, exc: BaseException) -> None:
        text = describe(exc)
        now_state = MISCONFIGURED if isinstance(exc, Misconfigured) else DOWN
        with self._lock:
            first = self.state not in (DOWN, MISCONFIGURED)
            if first or self._trying:  # not every request that was under way when it went down
                self._backoff = FIRST_BACKOFF if first else min(self._backoff * 2, MAX_BACKOFF)
                self._retry_at = time.monotonic() + self._backoff
                self._trying = False
            if self.state != now_state:
                self.state, self.since = now_state, time.time()
            self.last_error, self.error_at = text, time.time()
        state.STATS.add(ERRORS)
        held = self._log.allow()  # one line a minute, however Redis fails or flaps
        if held is None:
            return
        more = f" ({held} more failures since the last line)" if held else ""
        if now_state == MISCONFIGURED:  # our own words, the setting's text in them escaped already
            host.console("err", f"fs-guard: cluster: {text}{more}; limits are decided with this node's own "
                                "counts until it is fixed")
            return
        where = banlog.escape(self._settings.shown_url, limit=1024)
        text = banlog.escape(text, limit=512)
        if first:
            host.console("err", f"fs-guard: cluster: Redis at {where} failed ({text}){more}; limits are decided "
                                f"with this node's own counts until it answers again (retrying from "
                                f"{FIRST_BACKOFF:g} s to every {MAX_BACKOFF:g} s)")
        else:
            host.console("err", f"fs-guard: cluster: Redis at {where} still fails ({text}){more}")

    def succeeded(self) -> None:
        if self.state == UP:
            return
        with self._lock:
            if self.state == UP:
                return
            self.state, self.since, self._backoff, self._trying = UP, time.time(), 0.0, False
        host.console("notice", f"fs-guard: cluster: Redis at {banlog.escape(self._settings.shown_url, limit=1024)} "
                               f"answers; node {self._settings.node} shares its limits and bans")

    def retry_in(self) -> Optional[float]:
        if self.state not in (DOWN, MISCONFIGURED):
            return None
        return max(0.0, self._retry_at - time.monotonic())
