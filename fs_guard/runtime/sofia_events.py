"""The register-failure hook: sofia's authentication events become ban lines.

It runs in the thread mod_python3 gives the ``fs_guard.events`` startup script, and
lives here, not there, because mod_python3 re-executes ``fs_guard.events`` each time
it starts it (``pyrun`` included): the lock that keeps a second ``runtime()`` from
doubling every line must be the same object for all of them.

Offences, each reported through ``fs_guard.runtime.penalty`` exactly like the screen's:

- ``sofia::register_failure`` (wrong password or unknown user, on REGISTER or
  INVITE): reason ``register_failure``;
- ``sofia::pre_register`` (REGISTER or INVITE without credentials) whose
  ``user-agent`` contains a ``deny_user_agent`` entry: reason ``scanner_user_agent``.

Ban-line fields: ``profile`` (profile-name, bare when a plain token), then quoted
``user`` (to-user), ``host`` (to-host), ``ua`` (user-agent) and, on register
failures, ``type`` (registration-type). An event has no dialplan context, so the
top-level rules apply (``monitor``, ``ban``, ``deny_user_agent``; not ``contexts``).
The address is only ever the ``network-ip`` header, the socket's.

It also consumes ``CHANNEL_HANGUP_COMPLETE``, which FreeSWITCH fires once for every
channel however it ends, to free the ended call's concurrent-call slots of the fraud
limits (``fs_guard.runtime.limiter``), in Redis too when the node is part of a cluster.

With a ``metrics`` setting it also serves Prometheus' text format over HTTP
(``fs_guard.runtime.metrics_endpoint``), started and stopped with the hook.

With a ``cluster`` configured it also runs the cluster's ban follower
(``fs_guard.runtime.cluster.follow``: other nodes' ban lines into this node's ban log) in a
thread of its own, started once a configuration names a cluster and joined before
``runtime()`` returns: mod_python3 stops only the startup-script thread itself. When it
starts (FreeSWITCH starting) it loads the configuration, so the node connects to the
cluster's Redis then, not when the first call comes.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from fs_guard.runtime import errors, host, offence, penalty, state, stats
from fs_guard.runtime.metrics_endpoint import Endpoint
from fs_guard.runtime.rules import REGISTER_FAILURE, SCANNER_USER_AGENT, scanner_user_agent

REGISTER_FAILURE_EVENT = "sofia::register_failure"
PRE_REGISTER_EVENT = "sofia::pre_register"
#: Fired once per channel however it ends: frees the call's concurrency slots (fraud limits).
HANGUP_EVENT = "CHANNEL_HANGUP_COMPLETE"
BINDINGS = (("CUSTOM", REGISTER_FAILURE_EVENT), ("CUSTOM", PRE_REGISTER_EVENT), (HANGUP_EVENT, ""))
#: Events held while the hook is busy (2.5 s of a 20,000/s flood); a full queue drops new ones.
QUEUE_LEN = 50_000
#: Longest single wait in ``pop`` (ms): bounds how late a shutdown or SystemExit is seen.
SLICE_MS = 500
#: Longest wait for the cluster's ban follower at shutdown (s): the hook returns within 2 s.
FOLLOWER_JOIN = 1.4

_owner = threading.Lock()
_started_at: Optional[float] = None


def started_at() -> Optional[float]:
    """When the running hook started, or None when none runs."""
    return _started_at


def serve() -> None:
    """Consume events until FreeSWITCH shuts down; returns at once if a hook already runs."""
    global _started_at
    if not _owner.acquire(blocking=False):
        host.console("warning", "fs-guard: register-failure hook already running; this runtime() returns")
        return
    try:
        consumer = host.event_consumer(BINDINGS, QUEUE_LEN)
        _started_at = time.time()
        host.console("notice", "fs-guard: register-failure hook started")
        follower = _Follower()
        endpoint = Endpoint(started_at)
        try:
            state.CONFIG.preload()  # before calls come: the first ones need not read it, nor connect
            _consume(consumer, follower, endpoint)
        finally:
            _started_at = None
            endpoint.stop()
            follower.stop()
            _close(consumer)
    finally:
        _owner.release()


class _Follower:
    """The cluster's ban follower thread: started once a configuration names a cluster."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._next_look = 0.0

    def look(self) -> None:
        """At most once per slice: start the follower if the configuration in force has a cluster
        (and connect to its Redis now, if no call has yet).

        Only looks at what calls, events, the status command and ``preload`` have loaded:
        loading the file from here would make a first load with no file yet this thread's, and
        calls that arrive during the load of the file once it is there are not held for it.
        """
        now = time.monotonic()
        if self._thread is not None or now < self._next_look:
            return
        self._next_look = now + SLICE_MS / 1000
        settings = state.CONFIG.state.config.cluster
        if settings is None:
            return
        from fs_guard.runtime import cluster  # imported only when a cluster is configured

        cluster.current(settings)
        self._thread = threading.Thread(target=cluster.follow, args=(self._stop,), name="fs-guard cluster follower",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(FOLLOWER_JOIN)


def _consume(consumer: Any, follower: _Follower, endpoint: Endpoint) -> None:
    while host.running():
        event = None
        try:
            follower.look()
            endpoint.look()
            event = consumer.pop(1, SLICE_MS)
            if event is not None:
                handle(event)
        except Exception as exc:  # one bad event or bug must not end the hook
            errors.report("register-failure hook error", exc)
            if event is not None:
                state.STATS.add(stats.EVENTS_DROPPED)
            else:
                time.sleep(SLICE_MS / 1000)  # pop itself failed: do not spin


def handle(event: Any) -> None:
    """Turn one event into at most one offence, or free an ended call's concurrency slots."""
    get = event.getHeader
    if get("Event-Name") == HANGUP_EVENT:
        call_uuid = get("Unique-ID")
        if call_uuid:
            state.TALLY.release(call_uuid)
            shared = state.CLUSTER
            if shared is not None:
                shared.release(call_uuid)
        return
    kind = get("Event-Subclass")
    user_agent = get("user-agent")
    config = state.CONFIG.current()
    rules = config.base
    if kind == REGISTER_FAILURE_EVENT:
        state.STATS.add(stats.REGISTER_FAILURES)
        reason, registration_type = REGISTER_FAILURE, get("registration-type") or ""
    elif kind == PRE_REGISTER_EVENT:
        if not scanner_user_agent(rules, user_agent):
            return
        state.STATS.add(stats.SCANNER_REGISTRATIONS)
        reason, registration_type = SCANNER_USER_AGENT, None
    else:
        state.STATS.add(stats.EVENTS_MALFORMED)
        return
    source_ip = get("network-ip")
    if offence.ban_address(source_ip) is None:
        state.STATS.add(stats.EVENTS_MALFORMED)
    fields = offence.registration_fields(
        get("profile-name"), get("to-user"), get("to-host"), user_agent, registration_type
    )
    penalty.impose(config, rules, reason, source_ip, fields)


def _close(consumer: Any) -> None:
    """Unbind; what is still queued will never be read and counts as dropped."""
    left = 0
    while left < QUEUE_LEN and consumer.pop() is not None:
        left += 1
    consumer.cleanup()
    if left:
        state.STATS.add(stats.EVENTS_DROPPED, left)
    host.console("notice", f"fs-guard: register-failure hook stopped ({left} queued events dropped)")
