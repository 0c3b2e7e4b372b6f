"""Process-wide state that must outlive mod_python3's reload of ``fs_guard.screen``.

The screen, the event hook and the status command all use these same objects: one
configuration cache, one ban-log writer, one set of counters.
"""

from __future__ import annotations

from fs_guard.runtime.banlog import BanLog
from fs_guard.runtime.config import ConfigStore
from fs_guard.runtime.ratelimit import RateLimiter
from fs_guard.runtime.stats import Counters
from fs_guard.runtime.tally import Tally

CONFIG = ConfigStore()
BANLOG = BanLog()
STATS = Counters()
#: Counts of the fraud limits (windows, concurrent calls, blocks).
TALLY = Tally()
#: Internal errors are reported at most once a second, however many calls hit them.
ERROR_REPORTS = RateLimiter(1.0)
