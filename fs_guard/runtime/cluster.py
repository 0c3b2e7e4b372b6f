"""Limits and bans shared by the FreeSWITCH nodes of a cluster, through Redis (the ``cluster`` setting).

Imported only when a configuration has a ``cluster``; it imports redis-py (``pip install
'fs-guard[cluster]'``) in a thread of its own when it first connects, so no call waits for
that import: until the first connection answers, calls are decided with the node's own counts.

Shared limits. Every screened call runs ``cluster.lua`` once (EVALSHA: one round trip, atomic
on the Redis server, so two nodes never both let the N+1st call through). It does what
``Tally.count`` does, on Redis keys that expire with their window: blocks by identity first;
then each check's counts with this call included (calls in the window, distinct numbers,
concurrent calls); a critical hit of a rejecting limit sets the block and counts nothing,
otherwise the call is counted everywhere. Python judges the returned counts with
``limits.judge``, so alerts and outcomes are the ones the node alone would give.

Time is Redis's clock (``TIME`` inside the script), not the node's: every node's calls land
in one window on one clock, so a node whose clock is a few seconds off neither stretches nor
shortens anybody's window. (Time the node sees is used only for its own tally.)

The node's own tally keeps counting its own calls (``Tally.record``, ``Tally.block``) and its
counts are floors in the script (a count is never below what the node alone has seen), so:

- when Redis fails (down, slow, restarted, unreachable) a call waits at most ``timeout_ms``
  for the answer (and as long again if it must open a connection first: redis-py's socket
  timeouts, no retries), is then decided with the node's own counts (never let through by
  accident), and Redis is
  left alone for a backoff (0.5 s, doubling to 30 s) before one call tries it again; the
  fault is logged once (then at most once a minute) and shown by ``fs_guard.status``;
- after a Redis restart lost every key, no node lets through a call its own counts reject.

Concurrent calls hold a member (the call's uuid) in a Redis set per key until the call's
CHANNEL_HANGUP_COMPLETE (``release``, from the event hook), or ``call_max_duration``.

Shared bans: every ban line a node writes is added to a Redis stream (``XADD``, capped at
about ``STREAM_MAX`` entries) with the node's name. Every node reads it with a consumer group
of its own name (``follow``, a thread the event hook starts): lines of other nodes are written
to its own ban log, with their original time and `` node=NAME`` added, then acknowledged. Its
own lines are skipped, and a received line is never shared again, so nothing loops. The
group remembers, in Redis, what each node has read: a node that was stopped gets, when it
comes back, every line written meanwhile (as far as the stream still holds them); one that
died between writing and acknowledging checks the end of its ban log before writing those
again, so a restart writes no line twice.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from fs_guard.runtime import banlog, errors, host, offence, state, stats
from fs_guard.runtime.config import NODE_NAME, ClusterSettings, Config
from fs_guard.runtime.limits import (
    ACCEPTED, METRICS, REJECT, Check, Hit, Limit, LimitSet, Outcome, Threshold, judge,
)
from fs_guard.runtime.ratelimit import RateLimiter
from fs_guard.runtime.rules import INTERNAL_ERROR, REASONS
from fs_guard.runtime.tally import Tally

SCRIPT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cluster.lua")

#: Status counters (``fs_guard.status``).
ERRORS = "cluster_errors"  # Redis requests that failed or timed out
LOCAL_DECISIONS = "cluster_local_decisions"  # calls decided with the node's own counts: Redis unusable
BANS_PUBLISHED = "cluster_bans_published"
BANS_RECEIVED = "cluster_bans_received"  # other nodes' lines written to this node's ban log
BANS_IGNORED = "cluster_bans_ignored"  # other nodes' lines not written here (trusted, monitor, malformed)
BACKLOG_DROPPED = "cluster_backlog_dropped"  # lines or releases dropped: BACKLOG waited for Redis already

UP = "up"
DOWN = "down"
CONNECTING = "connecting"

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
#: While Redis stays down, at most one console line per this many seconds.
LOG_INTERVAL = 60.0
#: Stream length kept (approximately): about a day of a busy cluster's ban lines.
STREAM_MAX = 100_000
#: Longest wait for new lines in one read (ms): bounds how late the follower sees a shutdown.
BLOCK_MS = 250
#: Entries read, lines shared, slots released per round trip.
BATCH = 500
#: Ban lines and releases kept while Redis is down, each (the oldest go first): about 20 MB at most.
BACKLOG = 50_000
#: How long a lifted block cannot be put back by a node that still holds it (ms): the other
#: nodes hear of the unblock (the ban stream) well within it.
UNBLOCKED_MS = 60_000
#: Entries whose ids are remembered to drop one added twice (a timed-out request Redis carried out anyway).
SEEN = 10_000
#: How much of the end of the ban log is searched for a line before writing it again after a crash.
TAIL_BYTES = 256 * 1024
#: Longest ban line taken from another node.
MAX_LINE = 8192

_BAN_REASONS = "|".join(reason for reason in REASONS if reason != INTERNAL_ERROR)
_SHARED_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00 ip\[([0-9A-Fa-f.:]{2,45})\] "
                          rf"reason=(?:{_BAN_REASONS})(?: [ -~]*)?")

with open(SCRIPT_PATH, encoding="utf-8") as _handle:
    LUA = _handle.read()

_lock = threading.Lock()
_following = False  # the follower thread runs (the event hook started it)


def current(settings: ClusterSettings) -> "Cluster":
    """The process's cluster for these settings: made on first use, remade when they change."""
    live = state.CLUSTER
    if live is not None and live.settings == settings:
        return live
    with _lock:
        live = state.CLUSTER
        if live is None or live.settings != settings:
            live = Cluster(settings, previous=live)
            state.CLUSTER = live
            live.start()
    return live


def _text(exc: BaseException) -> str:
    """What went wrong, as status keeps it (escaped where it is printed)."""
    return f"{type(exc).__name__}: {exc}"[:512]


def _us(seconds: float) -> str:
    return str(round(seconds * 1_000_000))


class Health:
    """Whether Redis answers; when it does not, when to try it again and what to show."""

    def __init__(self, settings: ClusterSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self.state = CONNECTING
        self.since = time.time()
        self.last_error: Optional[str] = None
        self.error_at: Optional[float] = None
        self._backoff = 0.0
        self._retry_at = 0.0
        self._trying = False  # a caller is trying Redis again after a backoff
        self._log = RateLimiter(LOG_INTERVAL)

    def usable(self) -> bool:
        """Up; or down with its backoff over, and this caller is the one to try again."""
        if self.state == UP:
            return True
        if self.state == CONNECTING:
            return False
        with self._lock:
            now = time.monotonic()
            if self.state == UP or now >= self._retry_at:
                self._retry_at = now + self._backoff  # the others stay local meanwhile
                self._trying = True
                return True
            return False

    def failed(self, exc: BaseException) -> None:
        text = _text(exc)
        with self._lock:
            first = self.state != DOWN
            if first or self._trying:  # not every request that was under way when it went down
                self._backoff = FIRST_BACKOFF if first else min(self._backoff * 2, MAX_BACKOFF)
                self._retry_at = time.monotonic() + self._backoff
                self._trying = False
            if first:
                self.state, self.since = DOWN, time.time()
            self.last_error, self.error_at = text, time.time()
        state.STATS.add(ERRORS)
        held = self._log.allow()  # one line a minute, however Redis fails or flaps
        if held is None:
            return
        where = banlog.escape(self._settings.shown_url, limit=1024)
        text = banlog.escape(text, limit=512)
        more = f" ({held} more failures since the last line)" if held else ""
        if first:
            host.console("err", f"fs-guard: cluster: Redis at {where} failed ({text}){more}; limits are decided "
                                f"with this node's own counts until it answers again (retrying from "
                                f"{FIRST_BACKOFF:g} s to every {MAX_BACKOFF:g} s)")
        else:
            host.console("err", f"fs-guard: cluster: Redis at {where} still fails ({text}){more}")

    def succeeded(self) -> None:
        if self.state == UP:
            return
        with self._lock:
            if self.state == UP:
                return
            self.state, self.since, self._backoff, self._trying = UP, time.time(), 0.0, False
        host.console("notice", f"fs-guard: cluster: Redis at {banlog.escape(self._settings.shown_url, limit=1024)} "
                               f"answers; node {self._settings.node} shares its limits and bans")

    def retry_in(self) -> Optional[float]:
        if self.state != DOWN:
            return None
        return max(0.0, self._retry_at - time.monotonic())


class Cluster:
    """One node's link to the cluster's Redis: shared counting, releases, ban lines in and out."""

    def __init__(self, settings: ClusterSettings, previous: Optional["Cluster"] = None,
                 server_time: bool = True) -> None:
        self.settings = settings
        #: False: the script counts on the ``now`` it is given (tests compare it with Tally).
        self.server_time = server_time
        self.health = Health(settings)
        prefix = settings.key_prefix
        self._prefix = prefix
        self.stream = prefix + "bans"
        self._client: Any = None  # calls: waits at most the timeout
        self._reader: Any = None  # the follower: also waits BLOCK_MS for new lines
        self._script: Any = None
        self._lock = threading.Lock()
        self._held: Dict[str, List[str]] = {}  # call id -> its concurrency keys in Redis
        self._releases: Deque[Tuple[str, List[str]]] = deque(maxlen=BACKLOG)  # not yet done in Redis
        self._outbox: Deque[Dict[str, str]] = deque(maxlen=BACKLOG)  # stream entries not yet added
        self._flushing = threading.Lock()
        self._sending = (0, 0)  # releases and entries on their way to Redis now
        self._members = itertools.count()
        self._tag = f"{settings.node}:{os.urandom(4).hex()}:"
        self._valid: Tuple[Optional[LimitSet], str] = (None, "")
        self._group_ready = False
        self._seen: "OrderedDict[bytes, None]" = OrderedDict()  # ids of the entries read last
        self.reading_since: Optional[float] = None  # when the follower joined the ban stream
        self.last_id: Optional[bytes] = None  # the last stream entry this node has read
        if previous is not None and (previous.settings.url, previous.settings.key_prefix) == (settings.url, prefix):
            with previous._lock:  # same Redis, same keys: what the calls up hold is still there
                self._held = dict(previous._held)
            self._releases.extend(previous._releases)
            self._outbox.extend(previous._outbox)
            self.last_id = previous.last_id

    # -- connecting -----------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background: importing redis-py and the first answer hold no call."""
        threading.Thread(target=self._connect, name="fs-guard cluster connect", daemon=True).start()

    def _connect(self) -> None:
        try:
            if self._script is None:
                self._client, self._reader, self._script = _clients(self.settings)
            self._client.script_load(LUA)
        except Exception as exc:
            self.health.failed(exc)
            return
        self.health.succeeded()

    def _usable(self) -> bool:
        if not self.health.usable():
            return False
        if self._script is None:  # the first connection failed before a client existed: try again now
            self._connect()
            return self.health.state == UP
        return True

    def _failed(self, exc: BaseException) -> None:
        self.health.failed(exc)
        client = self._client
        if client is not None:  # a restarted Redis leaves every pooled connection dead: drop them all
            try:
                client.connection_pool.disconnect(inuse_connections=False)
            except Exception:
                pass

    def close(self) -> None:
        for client in (self._client, self._reader):
            if client is not None:
                try:
                    client.connection_pool.disconnect()
                except Exception:
                    pass

    # -- shared counting (the screen) ---------------------------------------------------------

    def count(self, tally: Tally, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str],
              call_id: Optional[str], number: str, now: float, enforce: bool = True,
              concurrency: bool = True) -> Outcome:
        """``Tally.count`` across the cluster: Redis decides, the node's tally keeps up; when
        Redis cannot answer within the timeout, the node's tally decides alone."""
        if not checks and not (enforce and identities):
            return ACCEPTED  # nothing to count, no block to look up
        if not self._usable():
            return self._alone(tally, limits, checks, identities, call_id, number, now, enforce, concurrency)
        held, floors = tally.peek(limits, checks, identities, call_id, number, now, concurrency)
        slots = bool(concurrency and call_id)
        keys, args = self._arguments(limits, checks, identities, call_id, number, now, enforce, slots,
                                     held if enforce else None, floors)
        try:
            reply = self._script(keys=keys, args=args)
        except Exception as exc:  # down, slow, restarted: the node decides alone
            self._failed(exc)
            if slots:  # a slow Redis may still count it when it catches up: free that at hang-up too
                self._hold(str(call_id), _slot_keys(checks, keys), limits.max_keys)
            return self._alone(tally, limits, checks, identities, call_id, number, now, enforce, concurrency)
        self.health.succeeded()
        offset = now - int(reply[3]) / 1_000_000 if self.server_time else 0.0  # Redis's clock -> the node's
        if reply[0] == 1:
            identity = identities[int(reply[1]) - 1]
            until_us, name, by, key = reply[2].decode("utf-8", "replace").split("|", 3)
            limit = _named(limits, name)
            until = int(until_us) / 1_000_000 + offset
            tally.block(identity, until, limit, key)
            return Outcome((), limit, key, until, ())
        hits: List[Hit] = []
        for index, check in enumerate(checks):
            counts = {metric: int(value) for metric, value in zip(METRICS, reply[4 + 3 * index:7 + 3 * index])
                      if int(value) >= 0}
            found, _ = judge(check.limit, counts)
            hits.extend(Hit(check.limit, check.key, *hit) for hit in found)
        if reply[0] == 2:
            check = checks[int(reply[1]) - 1]
            until = None
            if int(reply[2]):
                until = int(reply[2]) / 1_000_000 + offset
                tally.block(check.identity, until, check.limit, check.key)
            return Outcome(tuple(hits), check.limit, check.key, until, ())
        tally.record(limits, checks, call_id, number, now, concurrency)
        if slots:
            self._hold(str(call_id), _slot_keys(checks, keys), limits.max_keys)
        return Outcome(tuple(hits), None, "", None, tuple(check.limit.name for check in checks)) \
            if checks or hits else ACCEPTED

    def _alone(self, tally: Tally, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str],
               call_id: Optional[str], number: str, now: float, enforce: bool, concurrency: bool) -> Outcome:
        state.STATS.add(LOCAL_DECISIONS)
        return tally.count(limits, checks, identities, call_id, number, now, enforce, concurrency)

    def _arguments(self, limits: LimitSet, checks: Sequence[Check], identities: Sequence[str],
                   call_id: Optional[str], number: str, now: float, enforce: bool, slots: bool,
                   held: Any, floors: Sequence[Dict[str, int]]) -> Tuple[List[str], List[str]]:
        """KEYS and ARGV of cluster.lua (its header says what each one is)."""
        prefix = self._prefix
        blockable = list(identities) + [c.identity for c in checks if c.identity not in identities]
        keys: List[str] = []
        args = [
            "" if self.server_time else _us(now), number, self._unique(),
            str(call_id) if slots else "", str(len(checks)), str(len(identities)), "1" if enforce else "0",
            self._valid_limits(limits), _us(limits.call_max_duration),
        ]
        if held is not None:
            args += [str(blockable.index(held.identity) + 1), _us(held.until - now),
                     f"{held.limit.name}|{held.limit.by}|{held.key}"]
        else:
            args += ["0", "0", ""]
        for check, counts in zip(checks, floors):
            limit = check.limit
            where = f"{limit.name}:{limit.by}:{check.key}"
            keys += [f"{prefix}calls:{where}", f"{prefix}numbers:{where}", f"{prefix}up:{where}"]
            rejects = enforce and limit.action == REJECT
            values = [_us(limit.window)]
            for threshold, counted in ((limit.calls, True), (limit.distinct, True), (limit.concurrent, slots)):
                values += _threshold(threshold if counted else None, rejects)
            values += [_us(limit.block_for), str(blockable.index(check.identity) + 1)]
            values += [str(counts.get(metric, 0)) for metric in METRICS]
            args += [",".join(values), f"{limit.name}|{limit.by}|{check.key}"]
        keys += [f"{prefix}block:{identity}" for identity in blockable]
        if held is not None:
            keys.append(f"{prefix}unblocked:{held.identity}")
        return keys, args

    def _unique(self) -> str:
        """An id no other node and no earlier run of this one uses."""
        return f"{self._tag}{next(self._members)}"

    def _valid_limits(self, limits: LimitSet) -> str:
        cached, text = self._valid
        if cached is not limits:
            text = "," + "".join(f"{limit.name}:{limit.by}," for limit in limits.limits)
            self._valid = (limits, text)
        return text

    def _hold(self, call_id: str, keys: List[str], most: int) -> None:
        if not keys:
            return
        with self._lock:
            self._held[call_id] = keys
            if len(self._held) > most:  # hang-ups lost: Redis frees those slots at call_max_duration
                del self._held[next(iter(self._held))]

    # -- releases and ban lines out (the event hook, the screen) -------------------------------

    def release(self, call_id: str) -> None:
        """The call has ended: free its concurrency slots in Redis (later, if Redis is down)."""
        with self._lock:
            keys = self._held.pop(call_id, None)
        if keys is None:
            return
        _append(self._releases, (call_id, keys))
        self.flush()

    def publish(self, line: str) -> None:
        """Share a ban line this node wrote (later, if Redis is down)."""
        _append(self._outbox, {"node": self.settings.node, "line": line, "id": self._unique()})
        self.flush()

    def flush(self) -> None:
        """Do in Redis the releases and shares still waiting: one round trip per BATCH."""
        if not (self._releases or self._outbox) or not self._flushing.acquire(blocking=False):
            return  # nothing to do, or another thread is doing it (the follower picks up stragglers)
        try:
            while (self._releases or self._outbox) and self._usable():
                releases = [self._releases.popleft() for _ in range(min(BATCH, len(self._releases)))]
                entries = [self._outbox.popleft() for _ in range(min(BATCH, len(self._outbox)))]
                self._sending = (len(releases), len(entries))
                pipe = self._client.pipeline(transaction=False)
                for call_id, keys in releases:
                    for key in keys:
                        pipe.zrem(key, call_id)
                for entry in entries:
                    pipe.xadd(self.stream, entry, maxlen=STREAM_MAX, approximate=True)
                try:
                    pipe.execute()
                except Exception as exc:
                    self._releases.extendleft(reversed(releases))
                    self._outbox.extendleft(reversed(entries))
                    self._failed(exc)
                    return
                finally:
                    self._sending = (0, 0)
                self.health.succeeded()
                shared = sum(1 for entry in entries if "line" in entry)
                if shared:
                    state.STATS.add(BANS_PUBLISHED, shared)
        finally:
            self._flushing.release()

    # -- ban lines in (the follower thread) ------------------------------------------------------

    def follow_step(self, stop: threading.Event) -> None:
        """Write the other nodes' new ban lines to this node's ban log (waits at most BLOCK_MS)."""
        if not self._usable() or self._reader is None:
            stop.wait(BLOCK_MS / 1000)
            return
        try:
            self.flush()
            if not self._group_ready:
                self._join_group()
            reply = self._reader.xreadgroup(self.settings.node, self.settings.node, {self.stream: ">"},
                                            count=BATCH, block=BLOCK_MS)
            for _, entries in reply or ():
                self._deliver(entries, after_crash=False)
        except Exception as exc:
            if "NOGROUP" in str(exc):  # Redis lost the stream (restart without persistence)
                self._group_ready, self.reading_since = False, None
                return
            self._failed(exc)
            stop.wait(BLOCK_MS / 1000)
            return
        self.health.succeeded()

    def _join_group(self) -> None:
        """Make this node's consumer group (a new node starts at the stream's end; a node that
        lost its group in a Redis restart, after the last entry it read), then write what it
        had been given but had not acknowledged when it stopped."""
        try:
            self._reader.xgroup_create(self.stream, self.settings.node, id=self.last_id or "$", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        while True:
            reply = self._reader.xreadgroup(self.settings.node, self.settings.node, {self.stream: "0"}, count=BATCH)
            entries = reply[0][1] if reply else []
            if not entries:
                break
            self._deliver(entries, after_crash=True)
        self._group_ready, self.reading_since = True, time.time()

    def _deliver(self, entries: Sequence[Tuple[bytes, Optional[Dict[bytes, bytes]]]], after_crash: bool) -> None:
        if not entries:
            return
        config = state.CONFIG.current()
        tail = _tail(config.ban_log_path) if after_crash else ""
        for entry_id, fields in entries:
            self.last_id = entry_id
            origin = (fields or {}).get(b"node", b"").decode("ascii", "replace")
            if not fields or origin == self.settings.node or self._repeated(fields.get(b"id", b"")):
                continue
            if b"unblock" in fields:
                state.TALLY.unblock(fields[b"unblock"].decode("utf-8", "replace"))
                continue
            line = _received_line(fields.get(b"line"), origin, config)
            if line is None:
                state.STATS.add(BANS_IGNORED)
            elif not (after_crash and f"\n{line}\n" in tail):
                if state.BANLOG.write(config.ban_log_path, line):
                    state.STATS.add(BANS_RECEIVED)
                else:
                    state.STATS.add(stats.BAN_LOG_ERRORS)
        self._reader.xack(self.stream, self.settings.node, *[entry_id for entry_id, _ in entries])

    def _repeated(self, unique: bytes) -> bool:
        """An entry added twice: Redis carried out a request its sender had given up on, then the retry."""
        if not unique:
            return False
        if unique in self._seen:
            return True
        self._seen[unique] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return False

    # -- the operator ------------------------------------------------------------------------------

    def unblock(self, key: str) -> List[Tuple[str, str]]:
        """Lift the shared blocks of ``key`` as ``Tally.unblock`` does (and forget its shared
        counts), and tell the other nodes to lift theirs; returns (identity, limit) lifted."""
        client = self._client
        if client is None:
            raise RuntimeError("not connected to Redis yet")
        prefix = self._prefix
        lifted = []
        marks = {key} if key.startswith(("ip:", "account:")) else {"ip:" + key, "account:" + key}
        start = f"{prefix}block:"
        for name in client.scan_iter(match=_glob(start) + "*", count=1000):
            identity = name.decode("utf-8", "replace")[len(start):]
            value = client.get(name)
            if value is None:
                continue
            _, limit, _, blocked_key = value.decode("utf-8", "replace").split("|", 3)
            if key in (identity, identity.split(":", 1)[1], blocked_key):
                client.delete(name)
                lifted.append((identity, limit))
                marks.add(identity)
                account = identity.split(":", 1)[1]
                for kind in ("calls", "numbers"):
                    for tail in (_glob(blocked_key), _glob(account), _glob(account + "/") + "*"):
                        for window in client.scan_iter(match=f"{_glob(prefix + kind)}:*:*:{tail}", count=1000):
                            client.delete(window)
        for identity in marks:  # nodes still holding the block must not put it back before they hear
            client.set(f"{prefix}unblocked:{identity}", "1", px=UNBLOCKED_MS)
        client.xadd(self.stream, {"node": self.settings.node, "unblock": key, "id": self._unique()},
                    maxlen=STREAM_MAX, approximate=True)
        return lifted

    def status(self, iso: Callable[[Optional[float]], Optional[str]]) -> Dict[str, Any]:
        """What ``fs_guard.status`` shows; ``iso`` writes its times."""
        health = self.health
        retry = health.retry_in()
        return {
            "node": self.settings.node,
            "url": self.settings.shown_url,
            "key_prefix": self.settings.key_prefix,
            "timeout_ms": round(self.settings.timeout * 1000),
            "state": health.state,
            "since": iso(health.since),
            "retry_in": None if retry is None else round(retry, 1),
            "last_error": health.last_error,
            "error_at": iso(health.error_at),
            "ban_follower": {"running": _following, "reading_since": iso(self.reading_since)},
            "calls_up_shared": len(self._held),
            "waiting": {"releases": len(self._releases) + self._sending[0],
                        "ban_lines": len(self._outbox) + self._sending[1]},
        }


def _slot_keys(checks: Sequence[Check], keys: Sequence[str]) -> List[str]:
    """The concurrent-call keys among a call's KEYS (three per check: calls, numbers, up)."""
    return [keys[3 * index + 2] for index, check in enumerate(checks) if check.limit.concurrent is not None]


def _append(backlog: Deque[Any], item: Any) -> None:
    if len(backlog) == backlog.maxlen:
        state.STATS.add(BACKLOG_DROPPED)
    backlog.append(item)


def _threshold(threshold: Optional[Threshold], rejects: bool) -> List[str]:
    """(top, critical) of one metric: -1 top = not counted, -1 critical = never rejects."""
    if threshold is None:
        return ["-1", "-1"]
    critical = threshold.critical if rejects and threshold.critical is not None else -1
    return [str(threshold.top()), str(critical)]


def _named(limits: LimitSet, name: str) -> Limit:
    return next(limit for limit in limits.limits if limit.name == name)


def _glob(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _tail(path: str) -> str:
    """The end of the ban log, to look for lines written just before a crash."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - TAIL_BYTES))
            return "\n" + handle.read().decode("ascii", "replace")
    except OSError:
        return ""


def _received_line(raw: Optional[bytes], origin: str, config: Config) -> Optional[str]:
    """Another node's ban line as this node writes it (`` node=NAME`` added), or None when it is
    not a well-formed ban line or this node would write none for its address (trusted network,
    monitor mode, ``"ban": false``)."""
    if not raw or len(raw) > MAX_LINE or not NODE_NAME.fullmatch(origin):
        return None
    try:
        line = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    found = _SHARED_LINE.fullmatch(line)
    if found is None:
        return None
    address = offence.ban_address(found.group(1))
    if address is None or str(address) != found.group(1):
        return None
    if offence.ban_outcome(config, config.base, address) != offence.BANNED:
        return None
    return f"{line} node={origin}"


def _clients(settings: ClusterSettings) -> Tuple[Any, Any, Any]:
    """redis-py clients for calls and for the follower, and the registered script.

    No retries: a call waits at most the timeout, once. ``redis`` is imported here only.
    """
    try:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry
    except ImportError as exc:
        raise ImportError(f"redis-py is not installed (pip install redis): {exc}") from None

    def client(read_timeout: float) -> Any:
        return redis.Redis.from_url(settings.url, socket_timeout=read_timeout,
                                    socket_connect_timeout=settings.timeout, retry=Retry(NoBackoff(), 0),
                                    retry_on_timeout=False, health_check_interval=0)

    calls = client(settings.timeout)
    return calls, client(settings.timeout + BLOCK_MS / 1000), calls.register_script(LUA)


# -- entry points for the rest of fs-guard ---------------------------------------------------------


def follow(stop: threading.Event) -> None:
    """The ban follower's thread, started by the event hook: until ``stop`` (or shutdown), write
    the other nodes' ban lines and finish the releases and shares Redis could not take."""
    global _following
    _following = True
    try:
        while not stop.is_set() and host.running():
            try:
                settings = state.CONFIG.current().cluster
                if settings is None:
                    stop.wait(BLOCK_MS / 1000)
                    continue
                current(settings).follow_step(stop)
            except Exception as exc:  # a bug must not end the follower
                errors.report("cluster ban follower error", exc)
                stop.wait(BLOCK_MS / 1000)
    finally:
        _following = False


def status(settings: ClusterSettings, iso: Callable[[Optional[float]], Optional[str]]) -> Dict[str, Any]:
    """What ``fs_guard.status`` shows of the cluster; ``iso`` writes its times."""
    return current(settings).status(iso)


def unblock(settings: ClusterSettings, key: str) -> Set[Tuple[str, str]]:
    """``status unblock KEY`` with a cluster: the shared blocks too, on every node. Redis down:
    nothing is lifted there, and status shows why (its last error)."""
    live = current(settings)
    try:
        return set(live.unblock(key))
    except Exception as exc:
        live._failed(exc)
        return set()


def ping(settings: ClusterSettings) -> Tuple[bool, str]:
    """For ``fs-guard check-config``: does the Redis answer a PING within the timeout? (ok, what)"""
    try:
        client = _clients(settings)[0]
    except Exception as exc:
        return False, _text(exc)
    began = time.perf_counter()
    try:
        client.ping()
    except Exception as exc:
        return False, _text(exc)
    finally:
        client.connection_pool.disconnect()
    return True, f"PING answered in {(time.perf_counter() - began) * 1000:.1f} ms"
