"""What a limit hit tells the operator: a FreeSWITCH event, a console line, counters.

Every warning and critical hit fires the CUSTOM event ``fs_guard::alert`` so that ESL
consumers and monitoring can act (``fs_cli``: ``/event plain CUSTOM fs_guard::alert``);
its headers are the ``HEADERS`` below. The console gets at most one line per second per
(limit, key, level), with how many were held back; counters count every hit.
"""

from __future__ import annotations

import threading
import time
from typing import Dict, Optional, Sequence, Tuple

from fs_guard.runtime import banlog, host, state
from fs_guard.runtime.destinations import NUMBER, SHORT, Destination
from fs_guard.runtime.limits import CRITICAL, Hit, Limit, REJECT

SUBCLASS = "fs_guard::alert"
#: Header names of the alert event, in order.
HEADERS = ("limit", "key", "by", "metric", "count", "threshold", "window", "level", "action",
           "destination-number", "context", "network-ip", "call-uuid", "blocked-until",
           "destination-country", "destination-type")
#: What a hit did, the event's ``action`` header.
ALERTED = "alert"  # a warning, a limit in alert mode, monitor mode: the hit only alerted
REJECTED = "reject"
BLOCKED = "block"  # rejected, and the key is blocked until blocked-until

CONSOLE_INTERVAL = 1.0
_GATE_MAX = 10_000


def counter(limit: Limit, level: str) -> str:
    """The status counter of one limit's hits at one level: ``limit.NAME.warning``."""
    return f"limit.{limit.name}.{level}"


class _ConsoleGate:
    """At most one console line per interval per (limit, key, level); memory bounded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: Dict[Tuple[str, str, str], Tuple[float, int]] = {}

    def allow(self, what: Tuple[str, str, str], now: float) -> Optional[int]:
        with self._lock:
            due, held = self._next.get(what, (0.0, 0))
            if now < due:
                self._next[what] = (due, held + 1)
                return None
            if len(self._next) >= _GATE_MAX:
                self._next.clear()
            self._next[what] = (now + CONSOLE_INTERVAL, 0)
            return held


_gate = _ConsoleGate()


def action_of(hit: Hit, rejected_by: Optional[Limit], blocked_until: Optional[float]) -> str:
    """What this hit did: a critical hit of a rejecting limit on a call that was rejected
    rejects (and blocks, if its limit started the block); anything else only alerts."""
    if rejected_by is None or hit.level != CRITICAL or hit.limit.action != REJECT:
        return ALERTED
    return BLOCKED if hit.limit is rejected_by and blocked_until is not None else REJECTED


def raise_hits(hits: Sequence[Hit], rejected_by: Optional[Limit], blocked_until: Optional[float],
               number: Optional[str], context: str, source_ip: str, call_uuid: str,
               destination: Optional[Destination] = None) -> None:
    """Alert each hit: event, rate-limited console line, counter. A classified destination adds
    its country and type to the event (headers left out when empty)."""
    state.STATS.add_each(*(counter(hit.limit, hit.level) for hit in hits))
    now = time.monotonic()
    country = destination.region if destination is not None else ""
    kind = destination.type if destination is not None and destination.kind in (NUMBER, SHORT) else ""
    for hit in hits:
        action = action_of(hit, rejected_by, blocked_until)
        limit = hit.limit
        values = (limit.name, hit.key, limit.by, hit.metric, str(hit.count), str(hit.threshold),
                  f"{limit.window:g}" if hit.metric != "concurrent" else "", hit.level, action,
                  number or "", context, source_ip, call_uuid,
                  f"{blocked_until:.3f}" if action == BLOCKED else "", country, kind)
        host.fire_custom(SUBCLASS, [(name, value) for name, value in zip(HEADERS, values) if value])
        held = _gate.allow((limit.name, hit.key, hit.level), now)
        if held is not None:
            more = f" ({held} more since the last line)" if held else ""
            host.console("warning" if hit.level == CRITICAL else "notice",
                         f"fs-guard: limit {limit.name} {hit.level}: {banlog.escape(hit.key)} {hit.metric} "
                         f"{hit.count} > {hit.threshold} ({action}) context={banlog.token(context)} "
                         f"dest={banlog.quoted(number)} ip={source_ip or '-'}{more}")
