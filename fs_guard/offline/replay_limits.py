"""Fraud limits in ``fs-guard replay``: the screen's own counting on the trace's clock, and
what an operator needs to pick thresholds.

Each call the static rules accept is counted as the screen counts it
(``fs_guard.runtime.limiter``): ``limits.for_call`` gives its checks and identities, a
``Tally`` judges and counts them with ``now`` the call's time in the trace, ``enforce``
off in monitor mode. A call is counted once per limit per call id: a transfer screens it
again in another context, and the limits that already counted it are skipped (the screen
keeps them in the channel variable ``fs_guard_limits``; replay by uuid, for the last
``COUNTED_MAX`` calls).

A call holds a concurrency slot until its end, ``time + duration`` (or its hang-up line
in a freeswitch.log): replay releases it when it reaches that time, before the next call.
A call whose end is not known could never be released, so it does not count toward
concurrent limits (the report says how many).

Besides the decisions it keeps, per limit: hits by level, calls rejected or only alerted,
the keys that hit critical (the first time each did), blocks, and each key's peak count per
metric (the call included), so that thresholds can be set above what legitimate keys reach.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from fs_guard.runtime.config import Config
from fs_guard.runtime.destinations import Destination
from fs_guard.runtime.limits import (
    CRITICAL, REJECT, SOURCE_IP, Check, Limit, Outcome, Threshold, for_call,
)
from fs_guard.runtime.rules import Rules
from fs_guard.runtime.tally import Tally
from fs_guard.offline.replay_timeline import Timeline
from fs_guard.offline.traces import UNTIL_HANGUP

#: A call this many seconds older than the latest one seen is counted as out of time order.
SLACK = 1.0
#: Call ids remembered with the limits that counted them (a transfer comes seconds later).
COUNTED_MAX = 65_536
#: Keys whose peaks are kept per limit; past this the lower half (by load) is dropped.
PEAK_KEYS = 10_000
#: Keys that hit critical listed per limit (all are counted).
CRITICAL_KEYS_SHOWN = 1_000
#: Keys listed per limit and metric by peak.
TOP_KEYS = 10

Counts = Tuple[Tuple[str, int], ...]  # (metric, count) in ``Limit.metrics`` order


@dataclass(frozen=True)
class CriticalKey:
    key: str
    first: float  # the first critical hit
    peak: Counts  # the highest count each metric reached for the key


@dataclass(frozen=True)
class MetricPeaks:
    """One threshold of a limit, and the keys that came closest to it."""

    metric: str
    threshold: Threshold
    top: Tuple[Tuple[str, int], ...]  # (key, its highest count), highest first
    cap: Optional[int]  # a count this high may be higher: the tally keeps no more (``Limit.kept``); None: no cap

    @property
    def highest(self) -> int:
        return self.top[0][1] if self.top else 0


@dataclass(frozen=True)
class BlockStarted:
    identity: str  # "ip:ADDR" or "account:USER@DOMAIN"
    key: str
    at: float
    until: float


@dataclass(frozen=True)
class LimitSummary:
    limit: Limit
    warning: int  # warning hits (a call hitting two metrics is two hits, as the status counters count)
    critical: int
    rejected: int  # calls it rejected: a critical hit with action reject, or its block
    blocked_calls: int  # of those, calls rejected by its block
    alerted: int  # calls with a critical hit it let through (action alert, or monitor mode)
    blocks: Tuple[BlockStarted, ...]
    critical_keys: Tuple[CriticalKey, ...]  # the first CRITICAL_KEYS_SHOWN, by first hit
    critical_key_count: int
    peaks: Tuple[MetricPeaks, ...]  # per metric it has a threshold for


@dataclass(frozen=True)
class LimitsReport:
    limits: Tuple[LimitSummary, ...]
    screened: int  # calls the static rules accepted, screened by the limits
    rejected: int
    with_end: int  # of the screened calls, those with a known end (counted toward concurrent limits)
    without_end: int
    with_account: int  # of the screened calls, those with an account
    with_address: int  # of the screened calls, those with a valid source address
    out_of_order: int  # calls more than SLACK seconds older than one before them
    evicted: int  # keys forgotten past max_keys (the oldest first)
    has_concurrency: bool


@dataclass
class _Stats:
    """One limit's running totals."""

    warning: int = 0
    critical: int = 0
    rejected: int = 0
    blocked_calls: int = 0
    alerted: int = 0
    blocks: List[BlockStarted] = field(default_factory=list)
    critical_keys: Dict[str, float] = field(default_factory=dict)  # key -> its first critical hit
    peaks: Dict[str, List[int]] = field(default_factory=dict)  # key -> highest calls, distinct, concurrent


class LimitReplay:
    """Screens accepted calls against the configuration's limits, in the trace's time order."""

    def __init__(self, config: Config, timeline: Optional[Timeline] = None) -> None:
        self.limitset = config.limits
        self._timeline = timeline  # also told of each hit, when the HTML page is asked for
        self.tally = Tally(self.limitset)
        self._stats = {limit.name: _Stats() for limit in self.limitset.limits}
        self._peaks = {limit.name: self._stats[limit.name].peaks for limit in self.limitset.limits}
        self._count = self.tally.count
        self._slot_limits = frozenset(limit.name for limit in self.limitset.limits if limit.concurrent is not None)
        self._observe = self._observe_counts  # bound once: the hot path passes it per call
        self._counted: Dict[str, Tuple[str, ...]] = {}  # call id -> limits that counted it, oldest first
        self._ends: List[Tuple[float, int, Union[str, int]]] = []  # a heap of (end time, sequence, call id)
        self._sequence = 0  # also the slot id of a call with an end but no uuid
        self._latest = -float("inf")
        self.screened = self.rejected = self.with_end = self.with_account = self.with_address = self.out_of_order = 0

    def check(self, when: float, context: str, rules: Rules, number: Optional[str], source_ip: Optional[str],
              account: Optional[str], call_id: Optional[str], duration: Optional[float],
              destination: Optional[Destination] = None) -> Optional[Limit]:
        """Screen one call the static rules accepted; the limit that rejects it, or None.

        ``source_ip`` is the validated, canonical address (``offence.canonical_address``) or None;
        ``destination`` the number's classification, as the screen hands it to the limits.
        """
        ends = self._ends
        if ends and ends[0][0] <= when:
            release = self.tally.release
            while ends and ends[0][0] <= when:
                release(heapq.heappop(ends)[2])  # type: ignore[arg-type]
        if when > self._latest:
            self._latest = when
        elif when < self._latest - SLACK:
            self.out_of_order += 1
        limitset = self.limitset
        if not limitset.for_context(context) and not self.tally.has_blocks:
            return None
        self.screened += 1
        if source_ip is not None:
            self.with_address += 1
        if account is not None:
            self.with_account += 1
        number = number or ""
        skip = self._counted.get(call_id, ()) if call_id is not None else ()
        found, identities = for_call(limitset, context, number, source_ip, account, skip, destination)
        slot_id: Union[str, int, None] = call_id
        known_end = duration is not None
        if known_end:
            self.with_end += 1
            self._sequence += 1
            if slot_id is None:
                slot_id = self._sequence
        outcome = self._count(limitset, found, identities, slot_id, number, when,  # type: ignore[arg-type]
                              not rules.monitor, known_end, self._observe,
                              destination.region if destination is not None else "")
        if outcome.counted:
            if call_id is not None:
                self._remember(call_id, skip + outcome.counted)
            if known_end and duration != UNTIL_HANGUP and not self._slot_limits.isdisjoint(outcome.counted):
                heapq.heappush(ends, (when + duration, self._sequence, slot_id))  # type: ignore[operator]
        if outcome.hits:
            self._record_hits(outcome, when, source_ip, account)
        limit = outcome.rejected_by
        if limit is not None:
            self.rejected += 1
            stats = self._stats[limit.name]
            stats.rejected += 1
            if not outcome.hits:
                stats.blocked_calls += 1
        return limit

    def end(self, call_id: Optional[str]) -> None:
        """A call's hang-up (a freeswitch.log's Hangup line): free its slots."""
        if call_id is not None:
            self.tally.release(call_id)

    def report(self, top: int = TOP_KEYS) -> LimitsReport:
        summaries = []
        for limit in self.limitset.limits:
            stats = self._stats[limit.name]
            peaks = stats.peaks
            by_metric = []
            for index, threshold in _indexed(limit):
                ranked = heapq.nsmallest(top, ((-peak[index], key) for key, peak in peaks.items() if peak[index]))
                cap = limit.kept[index] + 1 if index < len(limit.kept) else None
                by_metric.append(MetricPeaks(limit.metrics[index], threshold, tuple((key, -count) for count, key in ranked),
                                             cap))
            summaries.append(LimitSummary(
                limit=limit,
                warning=stats.warning,
                critical=stats.critical,
                rejected=stats.rejected,
                blocked_calls=stats.blocked_calls,
                alerted=stats.alerted,
                blocks=tuple(stats.blocks),
                critical_keys=tuple(CriticalKey(key, first, _counts(limit, peaks.get(key)))
                                    for key, first in list(stats.critical_keys.items())[:CRITICAL_KEYS_SHOWN]),
                critical_key_count=len(stats.critical_keys),
                peaks=tuple(by_metric),
            ))
        return LimitsReport(tuple(summaries), self.screened, self.rejected, self.with_end,
                            self.screened - self.with_end, self.with_account, self.with_address,
                            self.out_of_order, self.tally.evicted, self.limitset.has_concurrency)

    # -- helpers ---------------------------------------------------------------------------

    def _remember(self, call_id: str, counted: Tuple[str, ...]) -> None:
        remembered = self._counted
        remembered.pop(call_id, None)
        remembered[call_id] = counted
        if len(remembered) > COUNTED_MAX:
            del remembered[next(iter(remembered))]

    def _observe_counts(self, check: Check, calls: int, distinct: int, concurrent: int) -> None:
        """Each check's counts (the call included): keep the key's peak of each."""
        peaks = self._peaks[check.limit.name]
        peak = peaks.get(check.key)
        if peak is None:
            if len(peaks) >= PEAK_KEYS:
                self._prune(check.limit, peaks)
            peaks[check.key] = [calls, distinct, concurrent]
            return
        if calls > peak[0]:
            peak[0] = calls
        if distinct > peak[1]:
            peak[1] = distinct
        if concurrent > peak[2]:
            peak[2] = concurrent

    def _prune(self, limit: Limit, peaks: Dict[str, List[int]]) -> None:
        """Keep the busier half of a limit's keys: a top list needs no quiet key."""
        scales = [(index, float(threshold.top())) for index, threshold in _indexed(limit)]
        ranked = sorted(peaks.items(), key=lambda item: max(item[1][index] / scale for index, scale in scales),
                        reverse=True)
        peaks.clear()
        peaks.update(ranked[: PEAK_KEYS // 2])

    def _record_hits(self, outcome: Outcome, when: float, source_ip: Optional[str], account: Optional[str]) -> None:
        critical = set()
        if self._timeline is not None:
            for hit in outcome.hits:
                self._timeline.hit(when, hit.limit.name, hit.metric, hit.level, hit.count, hit.key)
        for hit in outcome.hits:
            stats = self._stats[hit.limit.name]
            if hit.level != CRITICAL:
                stats.warning += 1
                continue
            stats.critical += 1
            critical.add(hit.limit)
            stats.critical_keys.setdefault(hit.key, when)
        for limit in critical:
            if outcome.rejected_by is not limit:
                self._stats[limit.name].alerted += 1
        limit = outcome.rejected_by
        if limit is not None and limit.action == REJECT and outcome.blocked_until is not None:
            identity = f"ip:{source_ip}" if limit.by == SOURCE_IP else f"account:{account}"
            self._stats[limit.name].blocks.append(BlockStarted(identity, outcome.key, when, outcome.blocked_until))


def _indexed(limit: Limit) -> List[Tuple[int, Threshold]]:
    """The limit's thresholds by their metric's index in ``Limit.metrics`` (and in a peak)."""
    return [(limit.metrics.index(metric), threshold) for metric, threshold in limit.thresholds()]


def _counts(limit: Limit, peak: Optional[List[int]]) -> Counts:
    """A key's peaks of the metrics its limit has a threshold for."""
    if peak is None:
        return ()
    return tuple((limit.metrics[index], peak[index]) for index, _ in _indexed(limit) if peak[index])

