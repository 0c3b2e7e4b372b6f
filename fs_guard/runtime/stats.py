"""Counters since load, exact under concurrent calls."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Dict

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
LIMIT_BLOCKED_CALLS = "limit_blocked_calls"
#: Kept by ConfigStore (calls decided with the built-in defaults because the first load was slow).
CONFIG_WAIT_TIMEOUTS = "config_wait_timeouts"


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter = Counter()
        self.started = time.time()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def add_each(self, *names: str) -> None:
        """Count one for each named counter, under one lock (the reject path counts two)."""
        with self._lock:
            for name in names:
                self._values[name] += 1

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            values = dict(self._values)
        values["calls_screened"] = (
            values.get(CALLS_ACCEPTED, 0) + values.get(CALLS_REJECTED, 0) + values.get(MONITOR_WOULD_REJECT, 0)
        )
        return values
