"""What fs-guard and fail2ban would have done to recorded traffic (``fs-guard replay``).

Each call is decided by the screen's own code: ``Config.rules_for(context)`` and
``rules.decide``; each offence's ban line by ``offence.ban_outcome`` (monitor mode,
``ban: false``, trusted networks, invalid addresses), and written, when asked, by
``banlog.line`` and ``offence.call_fields``/``registration_fields`` with the trace's time. A register failure is an offence with
reason ``register_failure`` under the top-level rules, as the register-failure hook has it.

A call the rules accept then meets the configuration's fraud limits on the trace's own
clock (``fs_guard.offline.replay_limits``); one a limit rejects is an offence with reason
``limit``, its ban line ``offence.limit_fields``' (when the limit's ``ban`` allows one).

fail2ban is then simulated per address on the offences that got a ban line (that is
all fail2ban sees), in time order whatever the order of the input:

- a ban when ``maxretry`` failures fall within ``findtime`` seconds: a failure exactly
  ``findtime`` seconds before the latest still counts, one older does not (fail2ban
  ignores only failures older than findtime; fail2ban 0.10+ estimates a longer history
  from its rate, which replay does not);
- while banned (``bantime`` seconds from the ban; ``-1`` for ever) the firewall drops the
  address: its attempts never reach FreeSWITCH, are counted as stopped, and do not count
  toward a new ban. fail2ban forgets an address's failures when it bans it, so after
  the ban the count starts again from zero;
- addresses in the jail's ``ignoreip`` are never banned.
"""

from __future__ import annotations

import configparser
import ipaddress
import math
import os
import re
from array import array
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, TextIO, Tuple, Union

from fs_guard.fsconf import bundle

from fs_guard.runtime import offence
from fs_guard.runtime.banlog import line
from fs_guard.runtime.limits import Limit
from fs_guard.runtime.offence import call_fields, limit_fields, registration_fields
from fs_guard.runtime.config import Config, Network
from fs_guard.runtime.destinations import Destination
from fs_guard.runtime.rules import LIMIT, REGISTER_FAILURE, CallFacts, Rules, decide, destination_of
from fs_guard.offline.replay_destinations import DestinationReplay, DestinationsReport
from fs_guard.offline.replay_limits import LimitReplay, LimitsReport
from fs_guard.offline.replay_timeline import (
    ACCEPTED, LIMITED, MONITORED, REGISTER_FAILED, REJECTED, Timeline, TimelineReport,
)
from fs_guard.offline.traces import END, Event, Failure, Trace

JAIL_SECTION = "fs-guard"
JAIL_FILE = "jail.d/fs-guard.conf"
#: fail2ban's own defaults (its jail.conf) for a key the jail file leaves out.
FAIL2BAN_DEFAULTS = {"maxretry": "5", "findtime": "10m", "bantime": "10m", "ignoreip": ""}
#: Distinct (context, number, user agent) decisions kept; the cache starts again past this.
DECISION_CACHE = 1 << 18
_UNITS = {"": 1, "s": 1, "ss": 1, "sec": 1, "second": 1, "seconds": 1,
          "m": 60, "mm": 60, "mi": 60, "min": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hh": 3600, "hour": 3600, "hours": 3600, "d": 86400, "dd": 86400, "day": 86400, "days": 86400,
          "w": 604800, "ww": 604800, "week": 604800, "weeks": 604800}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


class JailError(ValueError):
    """A jail file that cannot be read or has a value fail2ban would refuse."""


@dataclass(frozen=True)
class Jail:
    """What replay needs of the fail2ban jail; the defaults are the shipped jail's values."""

    maxretry: int = 5
    findtime: float = 180.0
    bantime: float = 86400.0  # math.inf: banned for ever (bantime = -1)
    ignore: Tuple[Network, ...] = ()
    source: Optional[str] = None  # the file read; None: built-in values

    def ignores(self, address: Union[ipaddress.IPv4Address, ipaddress.IPv6Address]) -> bool:
        return any(address in network for network in self.ignore)


def duration(text: str) -> float:
    """fail2ban's time values: ``600``, ``10m``, ``1h30m``, ``1d``; a negative bantime is for ever."""
    text = text.strip().lower()
    if text.startswith("-"):
        return math.inf
    total, at = 0.0, 0
    while at < len(text):
        match = _DURATION.match(text, at)
        if match is None or match.group(2) not in _UNITS:
            raise JailError(f"{text!r} is not a time (seconds, or a number with s, m, h, d or w)")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        at = match.end()
    if at == 0:
        raise JailError("empty time value")
    return total


def load_jail(path: str) -> Jail:
    """The ``[fs-guard]`` section of ``path`` (and of ``.local`` beside it, as fail2ban reads them)."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    local = os.path.splitext(path)[0] + ".local"
    _read_jail(parser, path)
    if os.path.exists(local):
        _read_jail(parser, local)
    if not parser.has_section(JAIL_SECTION):
        raise JailError(f"{path}: no [{JAIL_SECTION}] section (name the jail file that has one, "
                        f"e.g. /etc/fail2ban/{JAIL_FILE})")
    values = {key: parser.get(JAIL_SECTION, key, fallback=default) for key, default in FAIL2BAN_DEFAULTS.items()}
    try:
        maxretry = int(values["maxretry"])
        if maxretry < 1:
            raise ValueError
    except ValueError:
        raise JailError(f"{path}: maxretry {values['maxretry']!r} is not a positive whole number") from None
    try:
        return Jail(maxretry, duration(values["findtime"]), duration(values["bantime"]),
                    _networks(values["ignoreip"]), path)
    except JailError as exc:
        raise JailError(f"{path}: {exc}") from None


def _read_jail(parser: configparser.ConfigParser, path: str) -> None:
    """One jail file into ``parser``; JailError says in one line what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle, source=path)
    except OSError as exc:
        raise JailError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise JailError(f"{path}: is not a text file (fail2ban jail files are UTF-8 text)") from None
    except configparser.MissingSectionHeaderError as exc:
        raise JailError(f"{path}: line {exc.lineno}: text before any [section]: not a fail2ban jail file") from None
    except configparser.ParsingError as exc:
        raise JailError(f"{path}: line {exc.errors[0][0]}: neither [section] nor 'key = value'") from None
    except configparser.DuplicateSectionError as exc:
        raise JailError(f"{path}: line {exc.lineno}: section [{exc.section}] given twice (remove one)") from None
    except configparser.DuplicateOptionError as exc:
        raise JailError(f"{path}: line {exc.lineno}: {exc.option} given twice in [{exc.section}] (remove one)") from None


def shipped_jail() -> Jail:
    """The shipped jail's values (``fail2ban/jail.d/fs-guard.conf``), or the same values built in."""
    try:
        return load_jail(bundle.path(bundle.FAIL2BAN, JAIL_FILE))
    except bundle.BundleMissing:
        return Jail()


def _networks(text: str) -> Tuple[Network, ...]:
    """``ignoreip``'s addresses and CIDRs; host names (fail2ban resolves them) are left out."""
    networks = []
    for word in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return tuple(networks)


@dataclass(frozen=True)
class Ban:
    address: str
    at: float
    until: float  # math.inf for a ban for ever
    failures: int  # failures within findtime when it was banned (= maxretry)


@dataclass(frozen=True)
class Offender:
    address: str  # as given when it is not a valid IP ("" when missing)
    attempts: int  # calls and register failures from it, offences or not
    offences: int
    reasons: Tuple[Tuple[str, int], ...]
    bans: int
    stopped: int  # attempts the ban would have dropped at the firewall


@dataclass(frozen=True)
class FileSummary:
    path: str
    format: str
    lines: int
    events: int
    bad: int
    bad_lines: Tuple[Tuple[int, str], ...]  # the first few: (line number, why)
    not_a_trace: Optional[str]  # why the file is not a trace (traces.Trace.not_a_trace); None: it is one
    ignored_columns: Tuple[str, ...] = ()  # a CSV header's columns that are no trace field


@dataclass(frozen=True)
class Report:
    """Everything ``fs-guard replay`` prints; counts are over the whole input."""

    files: Tuple[FileSummary, ...]
    config: Optional[str]  # the configuration file; None for the built-in defaults
    jail: Jail
    first: Optional[float]
    last: Optional[float]
    calls: int
    accepted: int
    rejected: int
    monitored: int  # calls monitor mode let through that it would have rejected
    register_failures: int
    by_reason: Tuple[Tuple[str, int], ...]
    by_context: Tuple[Tuple[str, int], ...]  # offending calls per context
    ban_lines: Tuple[Tuple[str, int], ...]  # ban-line outcome ("banned", "trusted network", ...) -> offences
    offenders: Tuple[Offender, ...]  # the top ones
    bans: Tuple[Ban, ...]
    stopped: int  # attempts from banned addresses, dropped at the firewall
    ignored_by_jail: Tuple[str, ...]  # addresses that reached maxretry but are in ignoreip
    limits: Optional[LimitsReport] = None  # None: the configuration has no limits
    timeline: Optional[TimelineReport] = None  # None: no timeline was asked for (only the HTML page draws one)
    destinations: Optional[DestinationsReport] = None  # None: no call was classified (no dialling.region)

    @property
    def events(self) -> int:
        return self.calls + self.register_failures

    @property
    def bad(self) -> int:
        return sum(f.bad for f in self.files)


class Replay:
    """Feeds events through the screen's decisions; ``report()`` adds fail2ban's view."""

    def __init__(self, config: Config, jail: Jail, ban_log: Optional[TextIO] = None,
                 timeline: Optional[Timeline] = None) -> None:
        self.config = config
        self.jail = jail
        self._ban_log = ban_log
        self.timeline = timeline
        self._decisions: Dict[Tuple[str, Optional[str], Optional[str]], Tuple[Optional[str], Rules]] = {}
        # (source address as given, context; None for a register failure) ->
        #   (address text, whether its offences get a ban line, attempt-time and counted-flag appenders)
        self._sources: Dict[Tuple[Optional[str], Optional[str]], Tuple[str, bool, Any, Any]] = {}
        self._outcomes: Dict[Tuple[str, Optional[str]], str] = {}  # (address text, context) -> ban outcome
        self._attempts: Dict[str, Tuple[array, bytearray]] = {}  # address text -> (times, counted by fail2ban)
        # (address text, reason, context or None for a register failure) -> offences
        self._tally: Dict[Tuple[str, str, Optional[str]], int] = {}
        # Calls a limit rejected: (address text, context, ban outcome) -> calls; and the ban
        # outcome of (address as given, context, the limit's ban)
        self._limited: Dict[Tuple[str, str, str], int] = {}
        self._limit_outcomes: Dict[Tuple[Optional[str], str, bool], str] = {}
        self.limits = LimitReplay(config, timeline) if config.limits else None
        self.destinations = DestinationReplay()
        self.calls = self.accepted = self.register_failures = 0
        self._first = math.inf
        self._last = -math.inf

    @property
    def events(self) -> int:
        return self.calls + self.register_failures

    def feed(self, events: Iterable[Event]) -> None:
        """Decide each event. The hot loop of replay: it caches what it can and counts in one dict.

        With limits, ``events`` must come in time order (``replay_files`` merges files).
        """
        write = self._ban_log.write if self._ban_log is not None else None
        decisions, sources, tally = self._decisions, self._sources, self._tally
        new_source, decide_call, base = self._new_source, self._decide, self.config.base
        limits = self.limits
        check = limits.check if limits is not None else None
        mark = self.timeline.mark if self.timeline is not None else None
        book = self.destinations.book
        classify_for_limits = self.config.limits.needs_destination
        calls = accepted = failures = 0
        first, last = self._first, self._last
        try:
            for when, kind, ip, context, number, ua, failure, account, call_id, duration in events:
                if kind is END:
                    if limits is not None:
                        limits.end(call_id)
                    continue
                if when < first:
                    first = when
                if when > last:
                    last = when
                if failure is None:
                    calls += 1
                    decision = decisions.get((context, number, ua))
                    if decision is None:
                        decision = decide_call(context, number, ip, ua)
                    reason, rules, destination = decision
                    source = sources.get((ip, context))
                    if source is None:
                        source = new_source(ip, context, rules)
                    text, banned, add_time, add_flag = source
                    if reason is None:
                        limit = None
                        if check is not None and (destination is None or not destination.emergency):
                            if destination is None and classify_for_limits and rules.classifier is not None:
                                destination = rules.classifier.classify(number)  # as the screen's limiter does
                            limit = check(when, context, rules, number, text if add_time is not None else None,
                                          account, call_id, duration, destination)
                        if destination is not None:
                            book(destination, limit is not None and LIMIT)
                        if limit is None:
                            accepted += 1
                            if mark is not None:
                                mark(when, ACCEPTED)
                            if add_time is not None:
                                add_time(when)
                                add_flag(0)
                            continue
                        banned = self._limit_offence(text, ip, context, rules, limit)
                        if mark is not None:
                            mark(when, LIMITED)
                        if add_time is not None:
                            add_time(when)
                            add_flag(banned)
                        if banned and write is not None:
                            write(line(text, LIMIT, limit_fields(limit.name, context, number, ua, destination),
                                       now=when) + "\n")
                        continue
                    if destination is not None:
                        book(destination, reason)
                    key: Tuple[str, str, Optional[str]] = (text, reason, context)
                    if mark is not None:
                        mark(when, MONITORED if rules.monitor else REJECTED)
                else:
                    failures += 1
                    source = sources.get((ip, None))
                    if source is None:
                        source = new_source(ip, None, base)
                    text, banned, add_time, add_flag = source
                    reason = REGISTER_FAILURE
                    key = (text, reason, None)
                    if mark is not None:
                        mark(when, REGISTER_FAILED)
                tally[key] = tally.get(key, 0) + 1
                if add_time is not None:
                    add_time(when)
                    add_flag(banned)
                if banned and write is not None:
                    destination = decision[2] if failure is None else None
                    write(line(text, reason, _fields(context, number, ua, failure, destination), now=when) + "\n")
        finally:
            self.calls += calls
            self.accepted += accepted
            self.register_failures += failures
            self._first, self._last = first, last

    def _limit_offence(self, text: str, ip: Optional[str], context: str, rules: Rules, limit: Limit) -> bool:
        """Count a call a limit rejected; whether it gets a ban line (the limit's ``ban`` decides too)."""
        outcome = self._limit_outcomes.get((ip, context, limit.ban))
        if outcome is None:
            outcome = offence.ban_outcome(self.config, rules, offence.ban_address(ip), ban=limit.ban)
            self._limit_outcomes[(ip, context, limit.ban)] = outcome
        key = (text, context, outcome)
        self._limited[key] = self._limited.get(key, 0) + 1
        return outcome == offence.BANNED

    def _new_source(self, ip: Optional[str], context: Optional[str], rules: Rules) -> Tuple[str, bool, Any, Any]:
        """What an address gets in a context: its text, its ban outcome, where its attempts go."""
        address = offence.ban_address(ip)
        text = str(address) if address is not None else (ip or "")
        outcome = self._outcomes[(text, context)] = offence.ban_outcome(self.config, rules, address)
        if address is None:
            source: Tuple[str, bool, Any, Any] = (text, False, None, None)
        else:
            times, counted = self._attempts.get(text) or self._attempts.setdefault(text, (array("d"), bytearray()))
            source = (text, outcome == offence.BANNED, times.append, counted.append)
        self._sources[(ip, context)] = source
        return source

    def _decide(self, context: str, number: Optional[str], ip: Optional[str],
                ua: Optional[str]) -> Tuple[Optional[str], Rules, Optional[Destination]]:
        """The screen's decision and the number's destination (classified as the screen does);
        cached by (context, number, ua), all that ``decide`` reads. An emergency call's reason
        is None: accepted, and no limit counts it."""
        if len(self._decisions) >= DECISION_CACHE:
            self._decisions.clear()
        rules = self.config.rules_for(context)
        destination = destination_of(rules, number)  # as the screen: for the rules; the limits classify later
        verdict = decide(rules, CallFacts(number, context, ip, ua, destination))
        reason = None if verdict.accept else verdict.reason
        decision = self._decisions[(context, number, ua)] = (reason, rules, destination)
        return decision

    def report(self, traces: Sequence[Trace] = (), top: int = 10) -> Report:
        by_reason: Counter = Counter()
        by_context: Counter = Counter()
        by_outcome: Counter = Counter()
        by_address: Dict[str, Counter] = {}
        monitored = 0
        offences = [(text, reason, scope, self._outcomes[(text, scope)], count)
                    for (text, reason, scope), count in self._tally.items()]
        offences += [(text, LIMIT, context, outcome, count) for (text, context, outcome), count in self._limited.items()]
        for text, reason, scope, outcome, count in offences:
            by_reason[reason] += count
            by_outcome[outcome] += count
            by_address.setdefault(text, Counter())[reason] += count
            if scope is not None:
                by_context[scope] += count
                if outcome == offence.MONITOR:
                    monitored += count
        bans: List[Ban] = []
        stopped: Counter = Counter()
        ignored = []
        for text, (times, counted) in self._attempts.items():
            if counted.count(1) < self.jail.maxretry:
                continue
            if self.jail.ignore and self.jail.ignores(ipaddress.ip_address(text)):
                ignored.append(text)
                continue
            stopped[text] = _simulate(text, times, counted, self.jail, bans)
        bans.sort(key=lambda ban: (ban.at, ban.address))
        ban_count = Counter(ban.address for ban in bans)
        ranked = sorted(by_address.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        return Report(
            files=tuple(
                FileSummary(t.path, t.format, t.lines, t.events, t.bad, tuple((b.line, b.error) for b in t.bad_lines),
                            t.not_a_trace(), t.ignored_columns)
                for t in traces
            ),
            config=self.config.source,
            jail=self.jail,
            first=self._first if self._first != math.inf else None,
            last=self._last if self._last != -math.inf else None,
            calls=self.calls,
            accepted=self.accepted,
            rejected=sum(by_context.values()) - monitored,
            monitored=monitored,
            register_failures=self.register_failures,
            by_reason=_ranked(by_reason),
            by_context=_ranked(by_context),
            ban_lines=_ranked(by_outcome),
            offenders=tuple(
                Offender(text, len(self._attempts[text][0]) if text in self._attempts else sum(counts.values()),
                         sum(counts.values()), _ranked(counts), ban_count[text], stopped[text])
                for text, counts in ranked[:top]
            ),
            bans=tuple(bans),
            stopped=sum(stopped.values()),
            ignored_by_jail=tuple(sorted(ignored)),
            limits=self.limits.report() if self.limits is not None else None,
            timeline=self.timeline.report() if self.timeline is not None else None,
            destinations=self.destinations.report(top),
        )


def _fields(context: str, number: Optional[str], ua: Optional[str], failure: Optional[Failure],
            destination: Optional[Destination]) -> str:
    """A ban line's fields: the screen's for a call, the register-failure hook's for a failure."""
    if failure is None:
        return call_fields(context, number, ua, destination)
    profile, host, reg_type = failure
    return registration_fields(profile, number, host, ua, reg_type or "")


def _simulate(text: str, times: array, counted: bytearray, jail: Jail, bans: List[Ban]) -> int:
    """fail2ban on one address's attempts: appends its bans, returns the attempts they stop."""
    window: deque = deque()
    banned_until = -math.inf
    stopped = 0
    findtime, maxretry = jail.findtime, jail.maxretry
    for when, failure in sorted(zip(times, counted)):
        if when < banned_until:
            stopped += 1
            continue
        if not failure:
            continue
        while window and window[0] < when - findtime:
            window.popleft()
        window.append(when)
        if len(window) >= maxretry:
            banned_until = when + jail.bantime
            bans.append(Ban(text, when, banned_until, len(window)))
            window.clear()
    return stopped


def _ranked(counts: Counter) -> Tuple[Tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
