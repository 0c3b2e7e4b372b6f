"""Test-side controls of the fake ``freeswitch`` module (kept out of its public API)."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import freeswitch


def reset(global_vars: Optional[Dict[str, str]] = None) -> None:
    with freeswitch._lock:
        freeswitch._globals.clear()
        freeswitch._globals.update(global_vars or {})
        freeswitch._log.clear()
        freeswitch._consumers.clear()
    freeswitch._running.set()


def log() -> List[Tuple[str, str]]:
    with freeswitch._lock:
        return list(freeswitch._log)


def log_lines(level: Optional[str] = None) -> List[str]:
    return [msg for lvl, msg in log() if level is None or lvl == level]


def stop_running() -> None:
    freeswitch._running.clear()


def call_session(**variables: Optional[str]) -> "freeswitch.Session":
    """A Session with the channel variables a sofia INVITE has at dialplan time."""
    session = freeswitch.Session()
    for name, value in variables.items():
        if value is not None:
            session.setVariable(name, value)
    return session
