"""Test-side controls of the fake ``freeswitch`` module (kept out of its public API)."""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Mapping, Optional, Tuple

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


def start_running() -> None:
    freeswitch._running.set()


def call_session(**variables: Optional[str]) -> "freeswitch.Session":
    """A Session with the channel variables a sofia INVITE has at dialplan time."""
    session = freeswitch.Session()
    for name, value in variables.items():
        if value is not None:
            session.setVariable(name, value)
    return session


def fire(subclass: str, headers: Mapping[str, Optional[str]]) -> None:
    """Fire a CUSTOM event as mod_sofia does; a None value leaves its header out."""
    event = freeswitch.Event("CUSTOM", subclass)
    for name, value in headers.items():
        if value is not None:
            event.addHeader(name, value)
    event.fire()


def hang_up(session: "freeswitch.Session", cause: str = "NORMAL_CLEARING") -> None:
    """End a call however it ends: the channel is hung up and, as FreeSWITCH does for every
    channel in its reporting state, CHANNEL_HANGUP_COMPLETE is fired with its uuid."""
    session.hangup(cause)
    event = freeswitch.Event("CHANNEL_HANGUP_COMPLETE")
    for name, value in (("Unique-ID", session.uuid), ("Hangup-Cause", cause),
                        ("variable_fs_guard_limits", session.getVariable("fs_guard_limits"))):
        if value is not None:
            event.addHeader(name, value)
    event.fire()


def consumers() -> List["freeswitch.EventConsumer"]:
    """The EventConsumers bound and not yet cleaned up."""
    with freeswitch._lock:
        return list(freeswitch._consumers)


def queued() -> int:
    """Events waiting in every live consumer's queue."""
    return sum(len(consumer._queue) for consumer in consumers())


def dropped() -> int:
    """Events the live consumers dropped because their queue was full."""
    return sum(consumer._dropped for consumer in consumers())


def idle() -> bool:
    """Every live consumer's queue is empty and a thread waits in its pop(): all popped events are handled."""
    with freeswitch._lock:
        live = list(freeswitch._consumers)
    for consumer in live:
        with consumer._cond:
            if consumer._queue or not consumer._waiting:
                return False
    return bool(live)


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for a background thread to reach a state; the timeout only guards against a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {condition}")
        time.sleep(0.001)
