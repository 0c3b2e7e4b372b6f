"""Counters since load, exact under concurrent calls.

A call's outcome is counted once, under its dialplan context (``add_call``): the totals
``fs_guard.status`` shows and the per-context series the metrics endpoint serves are both
derived from those counts when they are read, so the call path pays for one increment.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Dict, Optional, Tuple

CALLS_ACCEPTED = "calls_accepted"
CALLS_REJECTED = "calls_rejected"
MONITOR_WOULD_REJECT = "monitor_would_reject"
BAN_LINES = "ban_lines_written"
BAN_LOG_ERRORS = "ban_log_errors"
NOT_BANNED_TRUSTED = "not_banned_trusted"
NOT_BANNED_BAD_ADDRESS = "not_banned_bad_address"
ERRORS = "errors"
REGISTER_FAILURES = "register_failures"
SCANNER_REGISTRATIONS = "scanner_registrations"
EVENTS_MALFORMED = "events_malformed"
EVENTS_DROPPED = "events_dropped"
REJECTED_PREFIX = "rejected."
#: ``add_call``'s name for a call monitor mode let through: ``monitor.<reason>``.
MONITOR_PREFIX = "monitor."
LIMIT_BLOCKED_CALLS = "limit_blocked_calls"
#: Calls to an emergency number of the home region, let through whatever the rules and limits say.
EMERGENCY_CALLS = "calls_emergency"
#: Rejected calls by destination country: ``rejected_country.GB`` (classified numbers only).
REJECTED_COUNTRY_PREFIX = "rejected_country."
#: Kept by ConfigStore (calls decided with the built-in defaults because the first load was slow).
CONFIG_WAIT_TIMEOUTS = "config_wait_timeouts"
#: Kept by ConfigStore too: files loaded, and files (or their absence) that did not take effect.
CONFIG_LOADS = "config_loads"
CONFIG_LOAD_ERRORS = "config_load_errors"
#: Contexts whose calls are counted apart; calls in any further context count under
#: ``OTHER_CONTEXT``, so memory stays bounded even with a dialplan that lets callers pick one.
MAX_CONTEXTS = 100
OTHER_CONTEXT = "(other)"

CallKey = Tuple[str, str]


def rejected_country(destination: Any) -> Optional[str]:
    """The counter of a rejected call's destination country, or None when it was not classified
    (at most one per country libphonenumber knows: bounded)."""
    region = getattr(destination, "region", "")
    return REJECTED_COUNTRY_PREFIX + region if region else None


def rejected_countries(counters: Dict[str, int]) -> Dict[str, int]:
    """The rejected calls by destination country among ``counters``: ``rejected_country.GB`` -> ``GB``."""
    size = len(REJECTED_COUNTRY_PREFIX)
    return {name[size:]: count for name, count in counters.items() if name.startswith(REJECTED_COUNTRY_PREFIX)}


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter = Counter()
        self._calls: Dict[str, Dict[str, int]] = {}  # context -> outcome -> calls screened
        self.started = time.time()

    def add_call(self, outcome: str, context: str) -> None:
        """Count one screened call: ``outcome`` is CALLS_ACCEPTED, ``REJECTED_PREFIX + reason`` or
        ``MONITOR_PREFIX + reason``. Plain dicts keyed by the two strings: cheaper than the one
        increment it replaced (benchmarks/bench_screen.py)."""
        with self._lock:
            counts = self._calls.get(context)
            if counts is None:
                counts = self._new_context(context)
            counts[outcome] = counts.get(outcome, 0) + 1

    def _new_context(self, context: str) -> Dict[str, int]:
        if len(self._calls) >= MAX_CONTEXTS:
            context = OTHER_CONTEXT
        return self._calls.setdefault(context, {})

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def add_each(self, *names: str) -> None:
        """Count one for each named counter, under one lock (the reject path counts two)."""
        with self._lock:
            for name in names:
                self._values[name] += 1

    def calls(self) -> Dict[CallKey, int]:
        """Screened calls by (outcome, context)."""
        with self._lock:
            return {(outcome, context): count
                    for context, counts in self._calls.items() for outcome, count in counts.items()}

    def snapshot(self) -> Dict[str, int]:
        """Every counter by name, with the call totals: calls_screened, calls_accepted, calls_rejected
        and ``rejected.<reason>``, monitor_would_reject."""
        with self._lock:
            values = Counter(self._values)
        for (outcome, _), count in self.calls().items():
            if outcome.startswith(REJECTED_PREFIX):
                values[outcome] += count
                values[CALLS_REJECTED] += count
            elif outcome.startswith(MONITOR_PREFIX):
                values[MONITOR_WOULD_REJECT] += count
            else:
                values[outcome] += count
        values["calls_screened"] = values[CALLS_ACCEPTED] + values[CALLS_REJECTED] + values[MONITOR_WOULD_REJECT]
        return dict(values)
