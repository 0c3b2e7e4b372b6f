"""At most one report per interval, counting what was held back."""

from __future__ import annotations

import threading
import time
from typing import Optional


class RateLimiter:
    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._next = 0.0
        self._held = 0

    def allow(self) -> Optional[int]:
        """None when held back; otherwise how many were held back since the last report."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held += 1
                return None
            held, self._held = self._held, 0
            self._next = now + self._interval
            return held
