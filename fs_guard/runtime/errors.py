"""Internal errors: counted always, logged at most once a second with where they happened."""

from __future__ import annotations

import traceback

from fs_guard.runtime import host, state, stats
from fs_guard.runtime.banlog import escape


def report(what: str, exc: BaseException) -> None:
    """``what`` says what became of the work (e.g. "internal error, call rejected")."""
    state.STATS.add(stats.ERRORS)
    held = state.ERROR_REPORTS.allow()
    if held is None:
        return
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    at = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    more = f" ({held} more since the last report)" if held else ""
    host.console("err", f"fs-guard: {what}: {type(exc).__name__}: {escape(str(exc))}{at}{more}")
