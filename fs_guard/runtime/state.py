"""Process-wide state that must outlive mod_python3's reload of ``fs_guard.screen``.

The screen, the event hook and the status command all use these same objects: one
configuration cache, one ban-log writer, one set of counters.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from fs_guard.runtime import stats
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
#: The link to the cluster's Redis (``fs_guard.runtime.cluster.Cluster``), made by that module when a
#: configuration first names a cluster; None otherwise, and then that module is never imported.
CLUSTER: Optional[Any] = None
#: Internal errors are reported at most once a second, however many calls hit them.
ERROR_REPORTS = RateLimiter(1.0)


def counters() -> Dict[str, int]:
    """Every counter, as ``fs_guard.status`` and the metrics show them: STATS's, and the
    configuration store's own."""
    values = STATS.snapshot()
    values[stats.CONFIG_WAIT_TIMEOUTS] = CONFIG.first_load_timeouts
    values[stats.CONFIG_LOADS] = CONFIG.loads
    values[stats.CONFIG_LOAD_ERRORS] = CONFIG.load_errors
    return values
