"""Readers for ``fs-guard replay``: JSON Lines, CSV, FreeSWITCH's own log and its CDR CSV, gzip or not.

Every reader turns a file into events, plain tuples for speed::

    (time, kind, ip, context, number, user_agent, failure, account, call_id, duration)

``time`` is seconds since the epoch; ``kind`` is ``call``, ``register_failure`` or ``end``.
For a call, ``number`` is the dialled number and ``failure`` is None; ``account`` is the
authenticated ``user@domain`` (None: not authenticated or not known), ``call_id`` its uuid
(None: not known) and ``duration`` the seconds from its start to its hang-up (None: not
known; ``UNTIL_HANGUP``: an ``end`` event with its uuid will say). For a register
failure, ``number`` is the user it tried, ``context`` is empty (sofia's events have none)
and ``failure`` is ``(profile, host, type)`` as the register-failure event carries them.
An ``end`` event is a call's hang-up: only its time and ``call_id`` are set. A line that
cannot be read is counted with its number and skipped, never fatal.

FreeSWITCH's log (``freeswitch.log``, as mod_logfile writes it, or as syslog or the journal
keep FreeSWITCH's console) is read from five lines:

- sofia.c ``CHANNEL receiving invite from ADDR:PORT version: ...``: the socket address
  of a new inbound INVITE (INFO since 1.10.12, DEBUG before; both are in the log at the
  stock log level);
- mod_dialplan_xml.c ``Processing NAME <CID>->NUMBER in context CONTEXT``: one dialplan
  hunt, which is one run of the screen; paired with the invite line by the call's uuid
  at the start of both lines (without uuids, with the latest invite line);
- sofia_reg.c ``SIP auth failure (REGISTER|INVITE) on sofia profile 'P' for [USER@HOST]
  from ip ADDR``, written with ``log-auth-failures=true`` (a 403: wrong password or
  unknown user), and ``Can't find user [USER@DOMAIN] from ADDR``, written whatever that
  setting for an unknown user (also a 403). Each is a register failure, as the
  ``sofia::register_failure`` event mod_sofia fires for the same 403 is live; an unknown
  user with ``log-auth-failures=true`` gets both lines, one after the other, for one event,
  so a failure line from the same address within ``SAME_ATTEMPT`` seconds after a
  "Can't find user" line is that same attempt and counts once. These are the lines
  fail2ban's freeswitch filter counts in its ``normal`` mode. "SIP auth challenge" lines
  (a normal 401, written for good phones too) are never failures and are not read;
- switch_channel.c ``Hangup CHANNEL [CS_STATE] [CAUSE]`` (logged once per channel, at
  NOTICE, with the file and line of whatever hung it up): a call's end, by its uuid.

Each line may start with a syslog or journal prefix (``STAMP HOST freeswitch[PID]: ``),
then the call's uuid, then FreeSWITCH's own stamp, ``YYYY-MM-DD HH:MM:SS.ffffff`` or
``MM-DD HH:MM:SS.ffffff`` (no year), an optional CPU-idle percentage, the level
(``[WARNING]``, ``[WARN] [SOFIA]``) and the source file and line, bracketed or not. A
line's time is FreeSWITCH's stamp (a syslog prefix's own stamp is not used); one without a
year gets fail2ban's: the year the file was last modified, or the year before when that
would put the line more than a day after the file's last change.

FreeSWITCH writes no User-Agent and no account for a call at the default log level, so
the ``scanner_user_agent`` rule cannot fire on a replayed log and account limits count
nothing on it. Its timestamps carry no zone: they are read in this machine's local time
zone (as fail2ban reads them); so are a CDR's.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import io
import json
import math
import os
import re
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from fs_guard.offline import cdr
from fs_guard.runtime.banlog import escape

CALL = "call"
REGISTER_FAILURE = "register_failure"
END = "end"
#: A call's ``duration`` when its end comes later as an ``end`` event (a freeswitch.log).
UNTIL_HANGUP = math.inf

JSONL = "jsonl"
CSV = "csv"
FSLOG = "fslog"
CDR = "cdr"
FORMATS = (JSONL, CSV, FSLOG, CDR)

#: Trace fields; also the CSV column order when a file has no header row (from ``user``
#: on they may then be left out). ``user``, ``profile``, ``host`` and ``type`` are read only
#: for register failures; ``context``, ``number``, ``account``, ``uuid`` and ``duration``
#: only for calls.
FIELDS = ("time", "kind", "ip", "context", "number", "ua", "user", "profile", "host", "type",
          "account", "uuid", "duration")
_KNOWN_KEYS = frozenset(FIELDS)
_REQUIRED_CELLS = 6
#: Bad lines kept with their text per file; the rest are only counted.
MAX_BAD_SHOWN = 20
#: ``Trace.not_a_trace()`` for a file with no line at all.
EMPTY = "empty"
#: Lines between two calls of a progress callback.
PROGRESS_EVERY = 1 << 16

Failure = Tuple[Optional[str], Optional[str], Optional[str]]
Event = Tuple[float, str, Optional[str], str, Optional[str], Optional[str], Optional[Failure],
              Optional[str], Optional[str], Optional[float]]

_EXTENSIONS = {".jsonl": JSONL, ".ndjson": JSONL, ".json": JSONL, ".csv": CSV, ".log": FSLOG}
#: The start of a line FreeSWITCH logged: (uuid, stamp, fraction, source file:line). Anchored,
#: so text a caller put in the middle of another line can never read as one.
_FS_LINE = (
    r"(?:([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}) )?"
    r"((?:\d{4}-)?\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)?(?: \d+(?:\.\d+)?%)? "
    r"\[[A-Z0-9]+\](?: \[[A-Z][A-Z0-9_]*\])? \[?([^\s\]]+)\]? "
)
_FS_PREFIX = re.compile("\ufeff?" + _FS_LINE)
#: The same after syslog's or the journal's ``STAMP HOST TAG[PID]: `` (tried second: rarer).
_FS_SYSLOG_PREFIX = re.compile(
    r"\ufeff?(?:\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S*|[A-Z][a-z][a-z] [ \d]\d \d\d:\d\d:\d\d) "
    r"\S+ [^\s\[:]+(?:\[\d+\])?: " + _FS_LINE
)
_AUTH_FAILURE = re.compile(r"SIP auth failure \((\w+)\) on sofia profile '([^']*)' for \[(.*)\]")
#: sofia_reg.c's line for a user the directory does not have.
_UNKNOWN_USER = "Can't find user ["
#: Seconds within which a failure line after a "Can't find user" line from the same address
#: is the same attempt: FreeSWITCH writes the two one after the other.
SAME_ATTEMPT = 1.0
#: "SIP auth failure (REGISTER) due to user-agent-filter ..." (or max registrations): the
#: reason, written before the failure line itself.
_LEADING_FAILURE = re.compile(r"SIP auth failure \(\w+\) due to ")
_HANGUP = re.compile(r"Hangup \S.* \[CS_[A-Z_]+\] \[[A-Z0-9_]+\]")
#: Invite lines waiting for their dialplan line; the oldest half is dropped past this.
_PENDING_MAX = 100_000
#: A CDR file is in the order calls ended; its calls are put back in the order they started,
#: holding those that started less than this many seconds before the latest end. A call
#: longer than this may come out of time order (replay counts it).
CDR_REORDER = 4 * 3600.0


#: Times a trace can hold: from 2000 to 2100 (UTC). Anything else is a unit mistake (epoch
#: milliseconds, microseconds or nanoseconds read as seconds) or garbage, and would give a
#: report with nonsense dates and fail2ban windows that never meet; such a line is bad.
EARLIEST = 946684800.0  # 2000-01-01T00:00:00Z
LATEST = 4102444800.0  # 2100-01-01T00:00:00Z
_FINER_UNITS = (("milliseconds", 1000), ("microseconds", 1000_000), ("nanoseconds", 1000_000_000))


class TraceError(ValueError):
    """Why one line is bad."""


@dataclass(frozen=True)
class BadLine:
    line: int
    error: str


def parse_time(value: Any) -> float:
    """Seconds since the epoch from epoch seconds (number or numeric text) or ISO-8601 text.

    An ISO-8601 time without a UTC offset is UTC. A time outside PLAUSIBLE is a TraceError
    (``_implausible`` says why, and which unit it looks like when it is one).
    """
    kind = type(value)
    if kind is str:
        if value.replace(".", "", 1).isdigit():
            return _plausible(_finite(value), value)
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            stamp = _iso_fallback(value)
            if stamp is None:
                return _plausible(_finite(value), value)
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=timezone.utc)
        seconds = stamp.timestamp()
        if EARLIEST <= seconds < LATEST:  # the common case, without a call
            return seconds
        return _plausible(seconds, value)
    if kind is int or kind is float:
        if EARLIEST <= value < LATEST:  # NaN and infinities fail it too
            return float(value)
        return _plausible(_finite(value), value)
    raise TraceError(f"time must be ISO-8601 text or epoch seconds, not {_json_type(value)}")


def _plausible(seconds: float, value: Any) -> float:
    """``seconds`` when it is a time a trace can hold; else TraceError naming the unit it looks like."""
    if EARLIEST <= seconds < LATEST:
        return seconds
    shown = str(value)[:40]
    for unit, per_second in _FINER_UNITS:
        if EARLIEST <= seconds / per_second < LATEST:
            raise TraceError(f"time {shown} looks like {unit} since the epoch ({_utc(seconds / per_second)}); "
                             f"give seconds (divide by {per_second:,})")
    raise TraceError(f"time {shown} is not between {_utc(EARLIEST)[:4]} and {_utc(LATEST)[:4]}")


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _iso_fallback(value: str) -> Optional[datetime]:
    """What Python 3.9's fromisoformat refuses: a ``Z`` suffix, a 1-6 digit fraction."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d{1,6})\d*)?(Z|z|[+-]\d\d:?\d\d)?", value)
    if match is None:
        return None
    seconds, fraction, zone = match.groups()
    text = seconds + (f".{fraction.ljust(6, '0')}" if fraction else "")
    if zone:
        text += "+00:00" if zone in ("Z", "z") else f"{zone[:3]}:{zone[-2:]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _finite(value: Any) -> float:
    try:
        seconds = float(value)
    except OverflowError:  # an integer beyond any float
        raise TraceError(f"time {str(value)[:40]}... is not between 2000 and 2100") from None
    except ValueError:
        raise TraceError(f"time {str(value)[:40]!r} is neither ISO-8601 nor epoch seconds") from None
    if not math.isfinite(seconds):
        raise TraceError("time is not a finite number")
    return seconds


def parse_duration(value: Any) -> Optional[float]:
    """A call's duration: seconds, 0 or more (a number or numeric text); None when absent."""
    if value is None:
        return None
    kind = type(value)
    if kind is str:
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
    elif kind is int or kind is float:
        seconds = value
    else:
        raise TraceError(f"duration must be seconds, not {_json_type(value)}")
    if not 0 <= seconds < math.inf:
        raise TraceError(f"duration {str(value)[:40]!r} is not seconds (a number, 0 or more)")
    return seconds


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false", type(None): "null"}.get(type(value), type(value).__name__)


def _text(raw: io.BufferedReader) -> io.TextIOWrapper:
    """``raw`` as text lines, gunzipped when it starts with gzip's magic bytes."""
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if raw.peek(2)[:2] == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")


def detect_format(path: str, first_line: str) -> str:
    """By extension (``.gz`` stripped) when it says, else by the first non-blank line; a
    CDR (``Master.csv``, ``Master.csv.2026-11-28-10-00-00``) by its first line whatever its name."""
    name = path[:-3] if path.endswith(".gz") else path
    known = _EXTENSIONS.get(os.path.splitext(name)[1].lower())
    if known in (None, CSV) and cdr.looks_like(first_line):
        return CDR
    if known:
        return known
    text = first_line.lstrip("\ufeff \t")
    if text.startswith("{"):
        return JSONL
    if _FS_PREFIX.match(text) or _FS_SYSLOG_PREFIX.match(text):
        return FSLOG
    return CSV


class Trace:
    """One input file: reads it as events and keeps its line counts and bad lines."""

    def __init__(self, path: str, fmt: Optional[str] = None,
                 progress: Optional[Callable[["Trace"], None]] = None) -> None:
        self.path = path
        self.format = fmt or ""
        self.lines = 0
        self.events = 0
        self.bad = 0
        self.bad_lines: List[BadLine] = []
        self.ignored_columns: Tuple[str, ...] = ()  # a CSV header's columns that are no trace field
        self.size = os.path.getsize(path)
        self._progress = progress
        self._raw: Optional[Any] = None

    def not_a_trace(self) -> Optional[str]:
        """Why the file read is not a trace (``EMPTY``, or what it lacks), or None when it is one.

        A FreeSWITCH log is mostly lines that are not calls: they are skipped, not bad, so
        it is a trace when it holds one attempt. JSON Lines, CSV and CDRs hold nothing else:
        they are not a trace when they hold no attempt or more bad lines than attempts (a
        binary or unrelated file read as CSV is all bad lines).
        """
        if not self.lines and not self.bad:
            return EMPTY
        if not self.events:
            return "no call or registration attempt found"
        if self.format != FSLOG and self.bad > self.events:
            return f"more bad lines ({self.bad:,}) than attempts ({self.events:,})"
        return None

    def position(self) -> int:
        """Bytes of the file read so far (compressed bytes for a gzip file)."""
        try:
            return self._raw.tell() if self._raw is not None else 0
        except (OSError, ValueError):
            return 0

    def read(self) -> Iterator[Event]:
        """The file's events; ``lines``, ``events`` and the bad lines are kept up to date."""
        with open(self.path, "rb") as raw:
            self._raw = raw
            text = _text(raw)
            head: List[str] = []
            for line in text:
                head.append(line)
                if line.strip():
                    break
            if not self.format:
                self.format = detect_format(self.path, head[-1] if head else "")
            lines: Iterator[str] = chain(head, text)
            if self._progress is not None:
                lines = self._reporting(lines)
            reader = {JSONL: self._jsonl, CSV: self._csv, FSLOG: self._fslog, CDR: self._cdr}[self.format]
            try:
                yield from reader(lines)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                self._bad(self.lines + 1, f"compressed data is cut or corrupt, rest of file skipped: {exc}")
            finally:
                self._raw = None

    def _reporting(self, lines: Iterable[str]) -> Iterator[str]:
        """``lines``, calling the progress callback every PROGRESS_EVERY lines."""
        progress, every = self._progress, PROGRESS_EVERY
        for number, line in enumerate(lines, 1):
            if not number % every:
                self.lines = number
                progress(self)  # type: ignore[misc]
            yield line

    def _bad(self, line: int, error: str) -> None:
        self.bad += 1
        if len(self.bad_lines) < MAX_BAD_SHOWN:
            self.bad_lines.append(BadLine(line, error))

    # -- JSON Lines ---------------------------------------------------------------------

    def _jsonl(self, lines: Iterable[str]) -> Iterator[Event]:
        """One JSON object per line; a well-formed call takes the inline path (the common case)."""
        decode = json.JSONDecoder().scan_once  # json.loads without its whitespace scans and two calls
        when_of = parse_time
        infinity = math.inf
        known = _KNOWN_KEYS
        number = events = 0
        try:
            for number, line in enumerate(lines, 1):
                try:
                    record, end = decode(line, 0)
                    if end < len(line) - 1 and line[end:].strip() or type(record) is not dict:
                        raise ValueError
                    if not record.keys() <= known:
                        _check_keys(record)
                    get = record.get
                    kind, when = get("kind"), get("time")
                    ip, context, dialled, ua = get("ip"), get("context", ""), get("number"), get("ua")
                    account, call_id, duration = get("account"), get("uuid"), get("duration")
                    if (kind is None and when is not None and (ip is None or type(ip) is str)
                            and type(context) is str and (dialled is None or type(dialled) is str)
                            and (ua is None or type(ua) is str) and (account is None or type(account) is str)
                            and (call_id is None or type(call_id) is str)
                            and (duration is None or (type(duration) is int or type(duration) is float)
                                 and 0 <= duration < infinity)):
                        event: Event = (when_of(when), CALL, ip, context, dialled, ua, None, account or None,
                                        call_id or None, duration)
                    else:
                        event = _record(get)
                except (ValueError, StopIteration):  # StopIteration: scan_once found no JSON value there
                    if not line.strip():
                        continue
                    try:
                        event = _loaded(line)  # the exact error, or a line json.loads takes
                    except ValueError as exc:
                        self._bad(number, _message(exc))
                        continue
                events += 1
                yield event
        finally:
            self.lines, self.events = number, events

    # -- CSV ----------------------------------------------------------------------------

    def _csv(self, lines: Iterable[str]) -> Iterator[Event]:
        """A header row (one that names a ``time`` column) names the columns, in any order,
        with other columns ignored (a CDR export has many); without one, FIELDS' order."""
        rows = csv.reader(lines)
        columns: Tuple[str, ...] = ()
        events = 0
        try:
            while True:
                try:
                    row = next(rows)
                except StopIteration:
                    return
                except csv.Error as exc:
                    self._bad(rows.line_num, f"not CSV: {exc}")
                    continue
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if not columns:
                    names = tuple(cell.strip().lower() for cell in row)
                    columns = names if "time" in names else FIELDS
                    at = {name: columns.index(name) if name in columns else -1 for name in FIELDS}
                    time_at, kind_at, ip_at, context_at, number_at, ua_at = (at[name] for name in FIELDS[:6])
                    account_at, uuid_at, duration_at = at["account"], at["uuid"], at["duration"]
                    fewest = len(columns) if columns is names else _REQUIRED_CELLS
                    if columns is names:
                        problem = _header_problem(names)
                        if problem:
                            self._bad(rows.line_num, problem)
                            return
                        self.ignored_columns = tuple(name for name in names if name and name not in _KNOWN_KEYS)
                        header_line = rows.line_num
                        continue
                cells = len(row)
                if cells != len(columns):
                    if not fewest <= cells <= len(columns):
                        self._bad(rows.line_num, f"{cells} columns, expected {len(columns)} ({','.join(columns)})")
                        continue
                    row += [""] * (len(columns) - cells)
                row.append("")  # what a column the file does not have (index -1) reads
                try:
                    kind = row[kind_at]
                    if not kind or kind == CALL:
                        if number_at < 0:
                            raise TraceError(f"a call needs a number: the header (line {header_line}) has no "
                                             "number column")
                        seconds = row[duration_at]
                        event: Event = (parse_time(row[time_at]), CALL, row[ip_at] or None, row[context_at],
                                        row[number_at], row[ua_at] or None, None, row[account_at] or None,
                                        row[uuid_at] or None, parse_duration(seconds) if seconds else None)
                    else:
                        event = _record(dict(zip(columns, row)).get, empty_is_none=True)
                except ValueError as exc:
                    self._bad(rows.line_num, _message(exc))
                    continue
                events += 1
                yield event
        finally:
            self.lines, self.events = rows.line_num, events

    # -- FreeSWITCH log -----------------------------------------------------------------

    def _fslog(self, lines: Iterable[str]) -> Iterator[Event]:
        invites: Dict[str, Optional[str]] = {}  # call uuid ("" without uuids) -> source address
        unknown: Dict[str, Event] = {}  # address -> its "Can't find user" failure, until SAME_ATTEMPT has passed
        local = _LocalTime(os.fstat(self._raw.fileno()).st_mtime)  # dates year-less stamps
        plain, syslog = _FS_PREFIX.match, _FS_SYSLOG_PREFIX.match
        number = events = 0
        try:
            for number, line in enumerate(lines, 1):
                if " receiving invite from " in line:
                    source = "sofia.c:"
                elif " in context " in line:
                    source = "mod_dialplan_xml.c:"
                elif "sofia_reg.c:" in line and ("SIP auth failure (" in line or _UNKNOWN_USER in line):
                    source = "sofia_reg.c:"
                elif " Hangup " in line:
                    source = ""  # switch_channel.c's line, with the file and line of whoever hung up
                else:
                    continue
                match = plain(line) or syslog(line)
                if match is None or not match.group(4).startswith(source):
                    continue  # not a line FreeSWITCH wrote for a call (a SIP trace, another module)
                uuid, seconds, fraction, _ = match.groups()
                message = line[match.end():].rstrip("\r\n")
                if not source and (uuid is None or not _HANGUP.fullmatch(message)):
                    continue  # a hang-up says which call ended by its uuid alone
                try:
                    when = local(seconds)
                    if fraction:
                        when += float(fraction)
                    if source == "sofia.c:":
                        if len(invites) > _PENDING_MAX:
                            for key in list(invites)[: _PENDING_MAX // 2]:
                                del invites[key]
                        invites[uuid or ""] = _invite_source(message)
                        continue
                    if not source:
                        event: Event = (when, END, None, "", None, None, None, None, uuid, None)
                    elif source == "mod_dialplan_xml.c:":
                        context, dialled = _dialplan_hunt(message)
                        event = (when, CALL, invites.get(uuid or ""), context, dialled, None, None, None,
                                 uuid, UNTIL_HANGUP if uuid else None)
                    elif message.startswith(_UNKNOWN_USER):
                        address, user, failure = _unknown_user(message)
                        event = (when, REGISTER_FAILURE, address, "", user, None, failure, None, None, None)
                    elif _LEADING_FAILURE.match(message):
                        continue  # a reason given first; the failure line itself follows
                    else:
                        address, user, failure = _auth_failure(message)
                        event = (when, REGISTER_FAILURE, address, "", user, None, failure, None, None, None)
                except ValueError as exc:
                    self._bad(number, _message(exc))
                    continue
                while unknown:  # an unknown user's failure line can no longer come: it had none
                    waiting = next(iter(unknown.values()))
                    if waiting[0] >= when - SAME_ATTEMPT:
                        break
                    del unknown[waiting[2]]  # type: ignore[arg-type]
                    events += 1
                    yield waiting
                if event[1] is REGISTER_FAILURE:
                    earlier = unknown.pop(address, None)
                    unknown_user = failure[0] is None
                    if earlier is not None and (unknown_user or abs(when - earlier[0]) > SAME_ATTEMPT):
                        events += 1
                        yield earlier  # not this failure line's attempt: counted on its own
                    if unknown_user:  # its failure line may follow
                        unknown[address] = event
                        continue
                elif event[1] is END:
                    yield event
                    continue
                events += 1
                yield event
            for waiting in unknown.values():
                events += 1
                yield waiting
        finally:
            self.lines, self.events = number, events

    # -- FreeSWITCH's CDR CSV ---------------------------------------------------------------

    def _cdr(self, lines: Iterable[str]) -> Iterator[Event]:
        """mod_cdr_csv's lines (``fs_guard.offline.cdr``), written as calls end, yielded in the
        order they started (see CDR_REORDER)."""
        pending: List[Tuple[float, int, Event]] = []  # a heap by start time
        push, pop, split, local = heapq.heappush, heapq.heappop, cdr.split, _LocalTime()
        horizon = CDR_REORDER
        number = events = 0
        try:
            for number, line in enumerate(lines, 1):
                try:
                    dialled, context, started, ended, seconds, call_id, account = split(line)
                    start = local(started)
                    if seconds.isdigit():  # whole seconds, as FreeSWITCH writes them
                        duration: Optional[float] = int(seconds)
                        end = start + duration  # type: ignore[operator]
                    elif seconds:
                        duration = parse_duration(seconds)
                        end = start + duration  # type: ignore[operator]
                    else:
                        end = local(ended)
                        duration = max(end - start, 0.0)
                except ValueError as exc:
                    if line.strip():
                        self._bad(number, _message(exc))
                    continue
                push(pending, (start, number, (start, CALL, None, context, dialled, None, None, account or None,
                                               call_id or None, duration)))
                events += 1
                while pending[0][0] <= end - horizon:
                    yield pop(pending)[2]
            while pending:
                yield pop(pending)[2]
        finally:
            self.lines, self.events = number, events


class _LocalTime:
    """FreeSWITCH's local stamps, ``YYYY-MM-DD HH:MM:SS`` or ``MM-DD HH:MM:SS``, as epoch
    seconds: one mktime a minute.

    A stamp without a year gets the one fail2ban gives it (its strptime, with the file's
    last change in place of the clock: replay never reads the clock): the year of
    ``reference``, or the year before when that would put it more than a day after
    ``reference`` (a December line in a file last written in January). Without a
    ``reference`` (a CDR's stamps), a stamp without a year is bad.
    """

    def __init__(self, reference: Optional[float] = None) -> None:
        self._minutes: Dict[str, float] = {}
        self._reference = reference

    def __call__(self, stamp: str) -> float:
        minute, second = stamp[:-3], stamp[-2:]
        if len(stamp) not in (14, 19) or stamp[-3] != ":" or not second.isdigit() or second > "59":
            raise TraceError(f"bad timestamp {stamp[:40]!r}")
        base = self._minutes.get(minute)
        if base is None:
            if len(self._minutes) >= 4096:
                self._minutes.clear()
            try:
                base = self._minutes[minute] = self._minute(minute)
            except TraceError:
                raise TraceError(f"bad timestamp {stamp!r}") from None
        return base + int(second)

    def _minute(self, minute: str) -> float:
        if len(minute) == 16 or self._reference is None:
            return _local_seconds(minute + ":00")
        year = time.localtime(self._reference).tm_year
        when = _local_seconds(f"{year}-{minute}:00")
        if when > self._reference + 86400:
            when = _local_seconds(f"{year - 1}-{minute}:00")
        return when


def _header_problem(names: Tuple[str, ...]) -> Optional[str]:
    """Why a CSV header row cannot be read (the file is refused at it), or None."""
    twice = sorted({name for name in names if name in _KNOWN_KEYS and names.count(name) > 1})
    if twice:
        return f"the header names the {twice[0]} column twice"
    if "number" not in names and "kind" not in names:
        return (f"the header has no number column, so no call can be read (columns: {escape(','.join(names), 200)}; "
                "a file of register failures only needs a kind column)")
    return None


def _record(read: Callable[[str], Any], empty_is_none: bool = False) -> Event:
    """One trace record (``read`` gets its fields) as an event; raises TraceError naming what is wrong."""
    get = (lambda name: read(name) or None) if empty_is_none else read
    when, kind, ip, ua = get("time"), get("kind"), get("ip"), get("ua")
    if when is None:
        raise TraceError("missing time")
    if kind is None or kind == CALL:
        context, number, account, call_id = get("context"), get("number"), get("account"), get("uuid")
        if context is None:
            context = ""
        _check_text(ip, context, number, ua, account, call_id)
        return (parse_time(when), CALL, ip, context, number, ua, None, account or None, call_id or None,
                parse_duration(get("duration")))
    if kind != REGISTER_FAILURE:
        raise TraceError(f"kind must be call or register_failure, not {str(kind)[:40]!r}")
    user, failure = get("user"), (get("profile"), get("host"), get("type"))
    _check_text(ip, "", user, ua, *failure)
    return parse_time(when), REGISTER_FAILURE, ip, "", user, ua, failure, None, None, None


def _loaded(line: str) -> Event:
    """A JSON line the slow, exact way: json.loads' own error messages."""
    record = json.loads(line)
    if type(record) is not dict:
        raise TraceError(f"expected a JSON object, found {_json_type(record)}")
    _check_keys(record)
    return _record(record.get)


def _check_keys(record: Dict[str, Any]) -> None:
    """Every key is a trace field: a misspelt one (``destination`` for ``number``) would
    otherwise read as a missing field and change the verdict without a word."""
    for key in record:
        if key not in _KNOWN_KEYS:
            raise TraceError(f"unknown key {key[:40]!r} (a trace's keys: {', '.join(FIELDS)})")


def _check_text(ip: Any, context: Any, number: Any, ua: Any, *more: Any) -> None:
    """Every field but the time is text (or absent)."""
    for value in (ip, context, number, ua) + more:
        if value is not None and type(value) is not str:
            raise TraceError(f"fields other than time must be text, found {_json_type(value)}")


def _local_seconds(stamp: str) -> float:
    try:
        seconds = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
    except (ValueError, OverflowError):
        raise TraceError(f"bad timestamp {stamp!r}") from None
    return _plausible(seconds, stamp)


def _invite_source(message: str) -> Optional[str]:
    """``CHANNEL receiving invite from ADDR:PORT version: ...``: ADDR.

    Read by position: the channel name (from the caller's From header) and the call-id
    have no spaces, so text a caller put in either cannot move ADDR.
    """
    words = message.split(" ", 5)
    if len(words) < 5 or words[1:4] != ["receiving", "invite", "from"]:
        raise TraceError("invite line without 'CHANNEL receiving invite from ADDR:PORT'")
    address, colon, port = words[4].rpartition(":")
    if not colon or not port.isdigit():
        raise TraceError(f"invite source {words[4][:60]!r} is not ADDR:PORT")
    return address[1:-1] if address.startswith("[") and address.endswith("]") else address


def _dialplan_hunt(message: str) -> Tuple[str, str]:
    """``Processing NAME <CID>->NUMBER in context CONTEXT``: (CONTEXT, NUMBER).

    Read from the right: the caller's display name may hold anything, the dialled number
    (a SIP URI user) no space and no ``>``.
    """
    if not message.startswith("Processing "):
        raise TraceError("dialplan line without 'Processing ... in context ...'")
    head, _, context = message.rpartition(" in context ")
    names, arrow, number = head.rpartition(">->")
    if not arrow or " " in number:
        raise TraceError("dialplan line without '<CALLER>->NUMBER'")
    return context.strip(), number


def _auth_failure(message: str) -> Tuple[str, str, Failure]:
    """``SIP auth failure (TYPE) on sofia profile 'P' for [USER@HOST] from ip ADDR``: (ADDR, USER, (P, HOST, TYPE))."""
    head, _, address = message.rstrip().rpartition("] from ip ")
    match = _AUTH_FAILURE.fullmatch(head + "]")
    if match is None or not address or " " in address:
        raise TraceError("auth failure line without 'on sofia profile ... for [...] from ip ADDR'")
    user, at, host = match.group(3).rpartition("@")
    if not at:
        user, host = host, ""
    return address, user, (match.group(2), host, match.group(1))


def _unknown_user(message: str) -> Tuple[str, str, Failure]:
    """``Can't find user [USER@DOMAIN] from ADDR``: (ADDR, USER, (None, DOMAIN, None)).

    Read from the right: ADDR (the socket's) is the last word; USER and DOMAIN come from the
    caller's Authorization header and may hold anything, ``] from `` included. FreeSWITCH
    goes on with two more lines of advice, which are not read.
    """
    head, sep, address = message.rstrip().rpartition("] from ")
    if not sep or not address or " " in address:
        raise TraceError("unknown-user line without \"Can't find user [...] from ADDR\"")
    user, at, domain = head[len(_UNKNOWN_USER):].rpartition("@")
    if not at:
        user, domain = domain, ""
    return address, user, (None, domain, None)


def _message(exc: ValueError) -> str:
    if isinstance(exc, TraceError):
        return str(exc)
    return f"not JSON: {exc}" if isinstance(exc, json.JSONDecodeError) else str(exc)
