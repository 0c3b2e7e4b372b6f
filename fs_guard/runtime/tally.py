"""In-process counts for the fraud limits: sliding windows, distinct numbers, concurrent
calls and blocks, exact and thread-safe, in bounded memory.

- A call ``window`` seconds old or older no longer counts: the window is ``(now - window, now]``.
- Windows (calls and distinct numbers) are kept per (limit, key) for at most ``max_keys``
  keys; the least recently seen is evicted (and counted) first, so an attacker rotating
  through addresses cannot grow memory. Within a key, counts above four times the
  highest threshold are not kept: they would change no decision.
- Concurrent calls hold a slot per (limit, key) from the screen until the call's
  hang-up (``release``), or ``call_max_duration`` if its hang-up is never seen. Slots are
  bounded by the calls up, not by keys, so evicting a key never forgets a call in
  progress; only past ``max_keys`` calls up (hang-ups lost) is the oldest call let go.
- Blocks are per identity (an address, or an account whatever prefix it dialled) until
  a time; expired ones are dropped when looked at.

The same object serves the live screen (wall clock) and ``fs-guard replay`` (the
trace's own clock): ``now`` is always passed in.
"""

from __future__ import annotations

import heapq
import math
import threading
from array import array
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from fs_guard.runtime.limits import (
    ACCEPTED, CALLS, CONCURRENT, Check, Hit, Limit, LimitSet, NO_LIMITS, Outcome, judge, new_tuple,
)

WindowKey = Tuple[str, str]  # (limit name, key)


#: One key's window: the times of its calls, oldest first, and number (or country) -> time of
#: its last call, oldest first. Neither part is tracked by Python's garbage collector (an array
#: of floats; a dict of str to float), so 100,000 keys cost a collection nothing to scan. A
#: plain pair: unpacking it is one specialised instruction, a NamedTuple's fields are not.
_Window = Tuple["array[float]", Dict[str, float]]


@dataclass(frozen=True)
class Block:
    identity: str
    until: float
    limit: Limit
    key: str  # the key whose critical hit started it


@dataclass(frozen=True)
class KeyView:
    """One key of one limit as ``fs_guard.status`` shows it."""

    key: str
    counts: Tuple[Tuple[str, int], ...]  # (metric, count now)
    load: float  # the highest count / threshold: how close to acting


class Tally:
    def __init__(self, limits: LimitSet = NO_LIMITS) -> None:
        self._lock = threading.Lock()
        self._windows: "OrderedDict[WindowKey, _Window]" = OrderedDict()
        self._slots: Dict[WindowKey, Dict[str, float]] = {}  # call id -> expiry, oldest first
        self._held: Dict[str, Tuple[WindowKey, ...]] = {}  # call id -> the slots it holds
        self._blocks: Dict[str, Block] = {}
        self._sweep_at = math.inf  # the earliest end of a block held: expired ones go then
        self._limits = limits
        self.evicted = 0

    @property
    def has_blocks(self) -> bool:
        """Read without the lock: a stale answer costs one call a lookup, or one block a call."""
        return bool(self._blocks)

    # -- the hot path ---------------------------------------------------------------------

    def count(self, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str], call_id: Optional[str],
              number: str, now: float, enforce: bool = True, concurrency: bool = True,
              observe: Optional[Callable[[Check, int, int, int], None]] = None, country: str = "") -> Outcome:
        """Judge one call against ``checks`` and, unless it is rejected, count it.

        ``identities`` are the call's blockable identities (``ip:ADDR``, ``account:USER@DOMAIN``);
        ``enforce`` false (monitor mode) alerts but never rejects or blocks; ``concurrency``
        false (nobody would release the slot) leaves concurrent calls uncounted. ``observe``,
        when given, sees each check's counts of calls, distinct numbers and concurrent calls
        (0 where not counted), hit or not: ``fs-guard replay``'s peaks. ``country`` is the
        destination's country, what a limit of ``distinct_countries`` counts instead of ``number``.
        """
        lock = self._lock
        lock.acquire()  # and release in ``finally``: half the instructions of ``with`` on this path
        try:
            if limits is not self._limits:
                self._adopt(limits)
            if self._blocks:
                blocked = self._blocked(identities, now)
                if blocked is not None and enforce:
                    return new_tuple(Outcome, ((), blocked.limit, blocked.key, blocked.until, ()))
            hits: List[Hit] = []
            rejecting: Optional[Check] = None
            # When no limit can reject this call, each is counted as soon as it is measured, in one
            # pass (limits have distinct names: counting one changes no other's counts); otherwise
            # counting waits until every limit has judged the call, as a rejected call never happened.
            at_once = not (enforce and limits.rejects)
            measure = self._measure
            names = []
            for check in checks:
                limit, key, _ = check
                names.append(limit.name)
                calls, distinct, concurrent = measure(limit, key, call_id, country if limit.counts_countries
                                                      else number, now, concurrency, at_once)
                if observe is not None:
                    observe(check, calls, distinct, concurrent)
                quiet_calls, quiet_distinct, quiet_concurrent = limit.quiet
                if calls > quiet_calls or distinct > quiet_distinct or concurrent > quiet_concurrent:
                    counts = limit.counts(calls, distinct, concurrent)
                    found, rejects = judge(limit, counts)
                    if found:
                        hits.extend([Hit(limit, key, *hit) for hit in found])
                        if rejects and enforce and rejecting is None:
                            rejecting = check
            if rejecting is not None:
                limit = rejecting.limit
                until = None
                if limit.block_for:
                    until = now + limit.block_for
                    self._hold(Block(rejecting.identity, until, limit, rejecting.key))
                return new_tuple(Outcome, (tuple(hits), limit, rejecting.key, until, ()))
            if not checks:
                return ACCEPTED
            if not at_once:
                self._record_all(checks, call_id, number, now, concurrency, country)
            elif len(self._held) > self._limits.max_keys:
                self._drop_oldest_call()
            return new_tuple(Outcome, (tuple(hits), None, "", None, tuple(names)))
        finally:
            lock.release()

    # -- for the cluster (fs_guard.runtime.cluster): Redis decides, this tally keeps up ------

    def peek(self, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str], call_id: Optional[str],
             number: str, now: float, concurrency: bool = True,
             country: str = "") -> Tuple[Optional[Block], List[Dict[str, int]]]:
        """The block and the counts ``count`` would judge now (this call included), counting nothing."""
        with self._lock:
            if limits is not self._limits:
                self._adopt(limits)
            blocked = self._blocked(identities, now) if self._blocks else None
            measure = self._measure
            return blocked, [limit.counts(*measure(limit, key, call_id, country if limit.counts_countries else number,
                                                   now, concurrency, False))
                             for limit, key, _ in checks]

    def record(self, limits: LimitSet, checks: Sequence[Check], call_id: Optional[str], number: str, now: float,
               concurrency: bool = True, country: str = "") -> None:
        """Count a call accepted elsewhere (by the shared counts), as ``count`` counts an accepted call."""
        with self._lock:
            if limits is not self._limits:
                self._adopt(limits)
            self._record_all(checks, call_id, number, now, concurrency, country)

    def block(self, identity: str, until: float, limit: Limit, key: str) -> None:
        """Hold a block decided elsewhere (by the shared counts) as if this tally had decided it."""
        with self._lock:
            self._hold(Block(identity, until, limit, key))

    def release(self, call_id: str) -> int:
        """The call has ended: free its concurrency slots; returns how many."""
        with self._lock:
            held = self._held.pop(call_id, None)
            if not held:
                return 0
            self._free(call_id, held)
            return len(held)

    # -- helpers (the lock is held) ---------------------------------------------------------

    def _hold(self, block: Block) -> None:
        self._blocks[block.identity] = block
        self._sweep_at = min(self._sweep_at, block.until)

    def _blocked(self, identities: Sequence[str], now: float) -> Optional[Block]:
        if now >= self._sweep_at:
            # Blocks of addresses that never call again would stay forever (memory), and one
            # held keeps every call reading its address (``has_blocks``): all expired go at once.
            self._blocks = {identity: block for identity, block in self._blocks.items() if block.until > now}
            self._sweep_at = min((block.until for block in self._blocks.values()), default=math.inf)
        for identity in identities:
            block = self._blocks.get(identity)
            if block is not None:
                if block.until > now:
                    return block
                del self._blocks[identity]
        return None

    def _record_all(self, checks: Sequence[Check], call_id: Optional[str], number: str, now: float,
                    concurrency: bool, country: str) -> None:
        """Count an accepted call toward each of ``checks`` (the lock is held)."""
        measure = self._measure
        for limit, key, _ in checks:
            measure(limit, key, call_id, country if limit.counts_countries else number, now, concurrency, True)
        if len(self._held) > self._limits.max_keys:
            self._drop_oldest_call()

    def _measure(self, limit: Limit, key: str, call_id: Optional[str], value: str, now: float, concurrency: bool,
                 record: bool) -> Tuple[int, int, int]:
        """One check's (``limit``, ``key``) counts of calls, distinct numbers (or countries:
        ``value`` is what the limit tells apart) and concurrent calls with this call included
        (0 for what the limit does not count), expired entries dropped; with ``record``, the
        call is counted too (measuring again before that changes nothing).

        One function on the hot path (each call of a Python function costs as much as a few of
        its lines): the window's lookup, LRU order and expiry, the live slots, and counting the
        call in them. The caller frees the oldest call's slots when too many calls hold one
        (``_drop_oldest_call``).
        """
        where = (limit.name, key)
        calls = distinct = concurrent = 0
        if limit.windowed:
            windows = self._windows
            window = windows.get(where)
            if window is None:
                window = windows[where] = (array("d"), {})
                if len(windows) > self._limits.max_keys:
                    windows.popitem(last=False)
                    self.evicted += 1
                times, values = window
            else:
                windows.move_to_end(where)
                times, values = window
                horizon = now - limit.window
                if times and times[0] <= horizon:
                    del times[:bisect_right(times, horizon)]
                while values:
                    oldest = next(iter(values))
                    if values[oldest] > horizon:
                        break
                    del values[oldest]
            calls = len(times) + 1
            distinct = len(values) + (value not in values)
            if record:
                if limit.calls is not None:
                    times.append(now)
                    if calls > limit.kept[0]:
                        del times[0]
                if limit.distinct is not None:
                    values.pop(value, None)  # seen again: now the most recent
                    values[value] = now
                    if len(values) > limit.kept[1]:
                        del values[next(iter(values))]
        if concurrency and call_id and limit.concurrent is not None:
            slots = self._slots.get(where)
            if slots:
                while slots:
                    oldest = next(iter(slots))
                    if slots[oldest] > now:
                        break
                    del slots[oldest]  # its hang-up was never seen: the call is long gone
                concurrent = len(slots) + 1
            else:
                concurrent = 1
            if record:
                if slots is None:
                    slots = self._slots[where] = {}
                slots.pop(call_id, None)
                slots[call_id] = now + self._limits.call_max_duration
                held = self._held
                held[call_id] = held.get(call_id, ()) + (where,)
        return calls, distinct, concurrent

    def _drop_oldest_call(self) -> None:
        """More calls hold slots than keys may be tracked: hang-ups were lost (hook stopped,
        queue full). The oldest call is the likeliest to be long gone: free its slots."""
        call_id, held = next(iter(self._held.items()))
        del self._held[call_id]
        self.evicted += 1
        self._free(call_id, held)

    def _free(self, call_id: str, held: Sequence[WindowKey]) -> None:
        for where in held:
            slots = self._slots.get(where)
            if slots is not None:
                slots.pop(call_id, None)
                if not slots:
                    del self._slots[where]

    def _adopt(self, limits: LimitSet) -> None:
        """A new configuration: keep the counts of every limit whose name and key kind are
        unchanged (thresholds, window and action may change); drop the rest."""
        kept = {limit.name: limit.by for limit in limits.limits}
        # Every window was made under the limits adopted before: only theirs can be stale, and a
        # reload that keeps every limit's name and key kind costs no scan of the keys.
        stale = {limit.name for limit in self._limits.limits if kept.get(limit.name) != limit.by}
        if stale:
            for where in [where for where in self._windows if where[0] in stale]:
                del self._windows[where]
            for where in [where for where in self._slots if where[0] in stale]:
                del self._slots[where]
            for call_id, held in list(self._held.items()):
                live = tuple(where for where in held if where[0] not in stale)
                if live:
                    self._held[call_id] = live
                else:
                    del self._held[call_id]
            for identity in [i for i, block in self._blocks.items() if block.limit.name in stale]:
                del self._blocks[identity]
        while len(self._windows) > limits.max_keys:
            self._windows.popitem(last=False)
            self.evicted += 1
        self._limits = limits

    # -- for status and the operator ----------------------------------------------------------

    def unblock(self, key: str) -> List[Block]:
        """Lift the blocks of ``key`` (an address, an account, or ``ip:``/``account:`` form)
        and forget its counts, so its next call starts from zero; returns the blocks lifted."""
        with self._lock:
            lifted = [block for identity, block in self._blocks.items()
                      if key in (identity, identity.split(":", 1)[1], block.key)]
            for block in lifted:
                del self._blocks[block.identity]
                account = block.identity.split(":", 1)[1]
                for where in [w for w in self._windows if w[1] in (block.key, account) or
                              w[1].startswith(account + "/")]:
                    del self._windows[where]
            return lifted

    def blocks(self, now: float) -> List[Block]:
        with self._lock:
            return sorted((b for b in self._blocks.values() if b.until > now), key=lambda b: b.until)

    def tracked(self) -> int:
        with self._lock:
            return len(self._windows)

    def concurrent_calls(self) -> int:
        with self._lock:
            return len(self._held)

    def hottest(self, limit: Limit, now: float, top: int = 5) -> List[KeyView]:
        """The keys of ``limit`` closest to (or over) its thresholds now, like Kamailio's pike.top."""
        with self._lock:
            keys = {key for name, key in self._windows if name == limit.name}
            keys |= {key for name, key in self._slots if name == limit.name}
            views = []
            for key in keys:
                where = (limit.name, key)
                window = self._windows.get(where)
                counts = []
                if window is not None:
                    times, values = window
                    horizon = now - limit.window
                    if limit.calls is not None:
                        counts.append((CALLS, sum(1 for t in times if t > horizon)))
                    if limit.distinct is not None:
                        counts.append((limit.metrics[1], sum(1 for t in values.values() if t > horizon)))
                if limit.concurrent is not None:
                    counts.append((CONCURRENT, sum(1 for e in self._slots.get(where, {}).values() if e > now)))
                load = max((count / _scale(limit, metric) for metric, count in counts), default=0.0)
                if load > 0:
                    views.append(KeyView(key, tuple(counts), load))
        return heapq.nlargest(top, views, key=lambda view: (view.load, view.key))


def _scale(limit: Limit, metric: str) -> float:
    threshold: Any = dict(zip(limit.metrics, (limit.calls, limit.distinct, limit.concurrent)))[metric]
    return float(threshold.critical if threshold.critical is not None else threshold.warning)
