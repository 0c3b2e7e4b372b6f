"""Shared limits: ``Tally.count`` across the cluster's nodes, in Redis.

Every screened call runs the counting script once (EVALSHA: one round trip, atomic on the
Redis server, so two nodes never both let the N+1st call through). It does what
``Tally.count`` does, on Redis keys that expire with their window: blocks by identity first;
then each check's counts with this call included (calls in the window, distinct numbers,
concurrent calls); a critical hit of a rejecting limit sets the block and counts nothing,
otherwise the call is counted everywhere. Python judges the returned counts with
``limits.judge``, so alerts and outcomes are the ones the node alone would give.

Time is Redis's clock (``TIME`` inside the script), not the node's: every node's calls land
in one window on one clock, so a node whose clock is a few seconds off neither stretches nor
shortens anybody's window. (Time the node sees is used only for its own tally.)

The node's own tally keeps counting its own calls (``Tally.record``, ``Tally.block``) and its
counts are floors in the script (a count is never below what the node alone has seen), so
when Redis cannot answer within the timeout the call is decided with the node's own counts
(never let through by accident), and after a Redis restart lost every key no node lets
through a call its own counts reject.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from fs_guard.runtime import state
from fs_guard.runtime.cluster import script
from fs_guard.runtime.cluster.link import Link
from fs_guard.runtime.cluster.outbox import Outbox
from fs_guard.runtime.limits import (
    ACCEPTED, REJECT, Check, Hit, Limit, LimitSet, Outcome, Threshold, judge,
)
from fs_guard.runtime.tally import Tally

#: Status counter (``fs_guard.status``): calls decided with the node's own counts: Redis unusable.
LOCAL_DECISIONS = "cluster_local_decisions"


class Counter:
    """The node's shared counting: Redis decides, the node's tally keeps up."""

    def __init__(self, link: Link, outbox: Outbox, server_time: bool = True) -> None:
        self._link = link
        self._outbox = outbox
        self._prefix = link.settings.key_prefix
        #: False: the script counts on the ``now`` it is given (tests compare it with Tally).
        self.server_time = server_time
        self._valid: Tuple[Optional[LimitSet], str] = (None, "")

    def count(self, tally: Tally, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str],
              call_id: Optional[str], number: str, now: float, enforce: bool = True,
              concurrency: bool = True, country: str = "") -> Outcome:
        """``Tally.count`` across the cluster: Redis decides, the node's tally keeps up; when
        Redis cannot answer within the timeout, the node's tally decides alone. ``country``:
        the destination's, what a limit of ``distinct_countries`` counts."""
        if not checks and not (enforce and identities):
            return ACCEPTED  # nothing to count, no block to look up
        link = self._link
        if not link.usable(wait=True):
            return _alone(tally, limits, checks, identities, call_id, number, now, enforce, concurrency, country)
        held, floors = tally.peek(limits, checks, identities, call_id, number, now, concurrency, country)
        slots = bool(concurrency and call_id)
        call = self._call(limits, checks, identities, call_id, number, now, enforce, slots,
                          held if enforce else None, floors, country)
        keys, args = script.encode(self._prefix, call)
        try:
            raw = link.script(keys=keys, args=args)
        except Exception as exc:  # down, slow, restarted: the node decides alone
            link.failed(exc)
            if slots:  # a slow Redis may still count it when it catches up: free that at hang-up too
                self._outbox.hold(str(call_id), script.slot_keys(self._prefix, call), limits.max_keys)
            return _alone(tally, limits, checks, identities, call_id, number, now, enforce, concurrency, country)
        link.health.succeeded()
        reply = script.decode(raw, len(checks))
        offset = now - reply.now_us / 1_000_000 if self.server_time else 0.0  # Redis's clock -> the node's
        if isinstance(reply, script.Blocked):
            limit = _named(limits, reply.limit)
            until = reply.until_us / 1_000_000 + offset
            tally.block(identities[reply.identity], until, limit, reply.key)
            return Outcome((), limit, reply.key, until, ())
        hits: List[Hit] = []
        for check, counts in zip(checks, reply.counts):
            found, _ = judge(check.limit, {metric: value for metric, value in zip(check.limit.metrics, counts)
                                           if value >= 0})
            hits.extend(Hit(check.limit, check.key, *hit) for hit in found)
        if reply.rejected >= 0:
            check = checks[reply.rejected]
            until = None
            if reply.block_until_us:
                until = reply.block_until_us / 1_000_000 + offset
                tally.block(check.identity, until, check.limit, check.key)
            return Outcome(tuple(hits), check.limit, check.key, until, ())
        tally.record(limits, checks, call_id, number, now, concurrency, country)
        if slots:
            self._outbox.hold(str(call_id), script.slot_keys(self._prefix, call), limits.max_keys)
        return Outcome(tuple(hits), None, "", None, tuple(check.limit.name for check in checks)) \
            if checks or hits else ACCEPTED

    def _call(self, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str], call_id: Optional[str],
              number: str, now: float, enforce: bool, slots: bool, held: Any,
              floors: Sequence[Dict[str, int]], country: str) -> script.CallArgs:
        arguments = []
        for check, counts in zip(checks, floors):
            limit = check.limit
            rejects = enforce and limit.action == REJECT
            arguments.append(script.CheckArgs(
                limit.name, limit.by, check.key, _us(limit.window), _metric(limit.calls, rejects),
                _metric(limit.distinct, rejects), _metric(limit.concurrent if slots else None, rejects),
                _us(limit.block_for), check.identity,
                tuple(counts.get(metric, 0) for metric in limit.metrics), limit.counts_countries))
        kept = None if held is None else script.HeldBlock(held.identity, _us(held.until - now), held.limit.name,
                                                          held.limit.by, held.key)
        return script.CallArgs(None if self.server_time else _us(now), number, self._link.unique(),
                               str(call_id) if slots else "", enforce, self._valid_limits(limits),
                               _us(limits.call_max_duration), identities, kept, arguments, country)

    def _valid_limits(self, limits: LimitSet) -> str:
        cached, text = self._valid
        if cached is not limits:
            text = "," + "".join(f"{limit.name}:{limit.by}," for limit in limits.limits)
            self._valid = (limits, text)
        return text


def _alone(tally: Tally, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str],
           call_id: Optional[str], number: str, now: float, enforce: bool, concurrency: bool,
           country: str) -> Outcome:
    state.STATS.add(LOCAL_DECISIONS)
    return tally.count(limits, checks, identities, call_id, number, now, enforce, concurrency, country=country)


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def _metric(threshold: Optional[Threshold], rejects: bool) -> script.Metric:
    if threshold is None:
        return script.NOT_COUNTED
    return script.Metric(threshold.top(), threshold.critical if rejects and threshold.critical is not None else -1)


def _named(limits: LimitSet, name: str) -> Limit:
    return next(limit for limit in limits.limits if limit.name == name)
