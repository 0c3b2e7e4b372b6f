"""``fs-guard replay`` and ``fs-guard demo``: what fs-guard and fail2ban would have done.

``replay FILE...`` reads traces (JSON Lines, CSV, FreeSWITCH's log; gzip or not) and
decides them with the configuration the screen would use; ``replay`` without a file, or
``demo``, replays the bundled attack trace on the built-in defaults (or ``--config``).
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO

from fs_guard.offline import replay, traces

from fs_guard.runtime import offence
from fs_guard.offline.cli.check import load_or_report
from fs_guard.runtime.config import Config, default_config
from fs_guard.offline.replay import FileSummary, Jail, JailError, Replay, Report

BUNDLED_TRACE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "data", "attack-trace.jsonl.gz")
#: Bans and bad lines listed in the text report; --json lists every ban.
SHOWN = 30
#: Exit status when an input file held no trace (2 is usage, a missing file, a bad configuration).
NOT_A_TRACE = 3
EPILOG = """\
formats (by extension, .gz stripped: .jsonl .ndjson .json, .csv, .log; else by the
first line; --format to choose):
  jsonl  one JSON object per line: time, kind, ip, context, number, ua, user, profile,
         host, type (time required; kind is call or register_failure)
  csv    the same fields as columns, named by a header row (else in that order)
  fslog  FreeSWITCH's freeswitch.log: its invite, dialplan and SIP auth failure lines

A file is not a trace when it is empty or holds no call or registration attempt; a
jsonl or csv file also when it has more bad lines than attempts (a freeswitch.log's
other lines are skipped, not bad).

exit status: 0 the report; 2 usage, a missing file or a directory, a bad configuration,
jail or --ban-log; 3 a file held no trace (named on stderr; the report is printed when
another file did)."""


def register(sub: "argparse._SubParsersAction") -> None:
    parser = sub.add_parser("replay", help="what fs-guard and fail2ban would have done to recorded calls",
                            description="What fs-guard and fail2ban would have done to recorded calls.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="traces: JSON Lines, CSV or freeswitch.log, optionally gzipped "
                             "(default: the bundled attack trace on the built-in defaults)")
    parser.add_argument("--format", choices=traces.FORMATS, help="the files' format (default: detected)")
    _common(parser)
    parser.set_defaults(run=run_replay)

    demo = sub.add_parser("demo", help="replay the bundled attack trace on the built-in defaults")
    _common(demo)
    demo.set_defaults(run=run_replay, files=[], format=None)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="fs-guard configuration (default: the one the screen would use; "
                             "for the bundled trace, the built-in defaults)")
    parser.add_argument("--jail", metavar="PATH",
                        help="fail2ban jail with an [fs-guard] section (default: the shipped jail)")
    parser.add_argument("--ban-log", dest="ban_log", metavar="PATH",
                        help="also write the ban lines fs-guard would have written to PATH (overwritten)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--top", type=_count, default=10, metavar="N",
                        help="offending addresses listed (default: 10; 0 lists none)")


def _count(text: str) -> int:
    """``--top``: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative (0 lists no address)")
    return value


def run_replay(args: argparse.Namespace) -> int:
    files = list(args.files) or [BUNDLED_TRACE]
    config = _config(args.config, bundled=not args.files)
    if config is None:
        return 2
    try:
        jail = replay.load_jail(args.jail) if args.jail else replay.shipped_jail()
    except JailError as exc:
        print(f"fs-guard: jail {exc}", file=sys.stderr)
        return 2
    unreadable = [problem for problem in map(_not_a_file, files) if problem]
    if unreadable:
        for problem in unreadable:
            print(f"fs-guard: {problem}", file=sys.stderr)
        return 2
    if args.ban_log and _same_file(args.ban_log, config.ban_log_path):
        print(f"fs-guard: refusing to overwrite the live ban log {config.ban_log_path}", file=sys.stderr)
        return 2
    unwritable = args.ban_log and _cannot_write(args.ban_log)
    if unwritable:
        print(f"fs-guard: {unwritable}", file=sys.stderr)
        return 2
    try:
        report = replay_files(files, args.format, config, jail, args.ban_log, args.top)
    except OSError as exc:
        print(f"fs-guard: cannot read {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    refused = [f for f in report.files if f.not_a_trace]
    if len(refused) < len(report.files):  # a report on no trace at all would read as an all-clear
        if args.json:
            json.dump(report_json(report), sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(render(report))
    for f in refused:
        print(f"fs-guard: {_refusal(f)}", file=sys.stderr)
    return NOT_A_TRACE if refused else 0


def _not_a_file(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as a trace before reading it, or None (a pipe or /dev/null can)."""
    if os.path.isdir(path):
        return f"{path}: is a directory; name the trace files in it (e.g. {os.path.join(path, '*.log')})"
    if not os.path.exists(path):
        return f"no such file: {path}"
    return None


def _cannot_write(path: str) -> Optional[str]:
    """Why ``--ban-log`` cannot be written, found before a long replay rather than after."""
    try:
        with open(path, "a", encoding="ascii"):
            pass
    except OSError as exc:
        hint = " (create the directory first)" if exc.errno == errno.ENOENT else ""
        return f"cannot write --ban-log {path}: {exc.strerror or exc}{hint}"
    return None


def _refusal(f: FileSummary) -> str:
    """The one line that says a file is not a trace."""
    if f.not_a_trace == traces.EMPTY:
        return f"{f.path}: empty: not a trace"
    return (f"{f.path}: {f.not_a_trace} (read as {f.format}): not a trace; "
            "see fs-guard replay --help for the formats")


def _config(path: Optional[str], bundled: bool) -> Optional[Config]:
    """The screen's configuration; for the bundled trace, --config or the built-in defaults."""
    if bundled and path is None:
        return default_config()
    return load_or_report(path)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def replay_files(files: Sequence[str], fmt: Optional[str], config: Config, jail: Jail,
                 ban_log: Optional[str], top: int = 10) -> Report:
    """Replay ``files`` in order; progress on stderr when it is a terminal."""
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    out: Optional[TextIO] = open(ban_log, "w", encoding="ascii", newline="\n") if ban_log else None
    collecting = gc.isenabled()
    gc.disable()  # the hot loop makes no reference cycles; scanning its caches costs a fifth of the time
    try:
        engine = Replay(config, jail, out)
        read: List[traces.Trace] = []
        for path in files:
            trace = traces.Trace(path, fmt, progress)
            engine.feed(trace.read())
            read.append(trace)
            if progress is not None:
                progress.done()
        return engine.report(read, top)
    finally:
        if collecting:
            gc.enable()
        if out is not None:
            out.close()


class _Progress:
    """One self-overwriting line on the terminal; nothing when stderr is not one."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def __call__(self, trace: traces.Trace) -> None:
        share = f" ({100 * trace.position() // trace.size}%)" if trace.size else ""
        self._stream.write(f"\rfs-guard replay: {os.path.basename(trace.path)}: {trace.lines:,} lines{share}\x1b[K")
        self._stream.flush()

    def done(self) -> None:
        self._stream.write("\r\x1b[K")
        self._stream.flush()


# -- the report -------------------------------------------------------------------------


def iso(seconds: Optional[float]) -> Optional[str]:
    """UTC ISO-8601 with milliseconds; None for no time or for ever."""
    if seconds is None or math.isinf(seconds):
        return None
    whole = math.floor(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}Z"


def _span(seconds: float) -> str:
    """A duration in its two largest units: ``3 min``, ``1 d``, ``4 d 2 h``, ``12 s``."""
    if math.isinf(seconds):
        return "for ever"
    left, parts = int(round(seconds)), []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size} {unit}")
            left %= size
    return " ".join(parts[:2]) or "0 s"


def _pairs(pairs: Sequence[Any]) -> Dict[str, int]:
    return {name: count for name, count in pairs}


def report_json(report: Report) -> Dict[str, Any]:
    """The report as JSON-ready data: times as UTC ISO-8601 strings, pairs as objects."""
    jail = report.jail
    return {
        "files": [
            {"path": f.path, "format": f.format, "lines": f.lines, "events": f.events, "bad": f.bad,
             "bad_lines": [{"line": line, "error": error} for line, error in f.bad_lines],
             "not_a_trace": f.not_a_trace}
            for f in report.files
        ],
        "config": report.config,
        "jail": {"source": jail.source, "maxretry": jail.maxretry, "findtime": jail.findtime,
                 "bantime": None if math.isinf(jail.bantime) else jail.bantime,
                 "ignoreip": [str(n) for n in jail.ignore]},
        "first": iso(report.first),
        "last": iso(report.last),
        "events": report.events,
        "calls": report.calls,
        "accepted": report.accepted,
        "rejected": report.rejected,
        "monitor_would_reject": report.monitored,
        "register_failures": report.register_failures,
        "offences_by_reason": _pairs(report.by_reason),
        "rejected_by_context": _pairs(report.by_context),
        "ban_lines": _pairs(report.ban_lines),
        "top_offenders": [
            {"address": o.address, "attempts": o.attempts, "offences": o.offences, "reasons": _pairs(o.reasons),
             "bans": o.bans, "stopped": o.stopped}
            for o in report.offenders
        ],
        "bans": [{"address": b.address, "at": iso(b.at), "until": iso(b.until), "failures": b.failures}
                 for b in report.bans],
        "banned_addresses": len({b.address for b in report.bans}),
        "stopped_by_firewall": report.stopped,
        "not_banned_ignoreip": list(report.ignored_by_jail),
    }


def render(report: Report) -> str:
    lines: List[str] = ["fs-guard replay: what fs-guard and fail2ban would have done", ""]
    for f in report.files:
        bad = f", {f.bad:,} bad" if f.bad else ""
        refused = f": NOT A TRACE ({f.not_a_trace})" if f.not_a_trace else ""
        lines.append(f"input:      {f.path} ({f.format}): {f.lines:,} lines, {f.events:,} attempts{bad}{refused}")
    if report.first is not None and report.last is not None:
        lines.append(f"period:     {iso(report.first)} .. {iso(report.last)} ({_span(report.last - report.first)})")
    lines.append(f"rules:      {report.config or 'built-in defaults'}")
    jail = report.jail
    lines.append(f"fail2ban:   {jail.maxretry} offences within {_span(jail.findtime)} ban for {_span(jail.bantime)}"
                 f" ({jail.source or 'built-in values: no jail file found'})")
    lines.append("")
    monitor = f", monitor mode would reject {report.monitored:,}" if report.monitored else ""
    lines.append(f"calls:              {report.calls:>9,}   accepted {report.accepted:,}, rejected {report.rejected:,}{monitor}")
    lines.append(f"register failures:  {report.register_failures:>9,}")
    outcomes = dict(report.ban_lines)
    written = outcomes.pop(offence.BANNED, 0)
    unwritten = ", ".join(f"{count:,} {why}" for why, count in outcomes.items())
    lines.append(f"ban lines:          {written:>9,}" + (f"   not written: {unwritten}" if unwritten else ""))
    _table(lines, "offences by reason:", report.by_reason)
    _table(lines, "rejected calls by context:", [(name or "(none)", n) for name, n in report.by_context])
    if report.offenders:
        lines += ["", "top offending addresses:",
                  f"  {'address':<28} {'attempts':>8} {'offences':>8} {'bans':>4} {'stopped':>8}  reasons"]
        for o in report.offenders:
            reasons = ", ".join(f"{reason} {count:,}" for reason, count in o.reasons)
            lines.append(f"  {o.address or '(none)':<28} {o.attempts:>8,} {o.offences:>8,} {o.bans:>4} "
                         f"{o.stopped:>8,}  {reasons}")
    lines.append("")
    banned = len({b.address for b in report.bans})
    if report.bans:
        lines.append(f"fail2ban would ban {banned:,} address{'es' if banned != 1 else ''} "
                     f"({len(report.bans):,} ban{'s' if len(report.bans) != 1 else ''}):")
        for ban in report.bans[:SHOWN]:
            until = iso(ban.until) or "for ever"
            lines.append(f"  {iso(ban.at)}  {ban.address:<28} until {until}")
        if len(report.bans) > SHOWN:
            lines.append(f"  ... and {len(report.bans) - SHOWN:,} more (--json lists them all)")
        lines.append(f"attempts dropped at the firewall while banned: {report.stopped:,}")
    else:
        lines.append("fail2ban would ban no address.")
    if report.ignored_by_jail:
        lines.append(f"not banned (in the jail's ignoreip): {', '.join(report.ignored_by_jail)}")
    if report.bad:
        lines += ["", f"bad lines: {report.bad:,} (skipped)"]
        for f in report.files:
            for number, error in f.bad_lines:
                lines.append(f"  {f.path}:{number}: {error}")
            if f.bad > len(f.bad_lines):
                lines.append(f"  {f.path}: ... and {f.bad - len(f.bad_lines):,} more")
    return "\n".join(lines) + "\n"


def _table(lines: List[str], title: str, rows: Sequence[Any]) -> None:
    if rows:
        lines += ["", title]
        lines.extend(f"  {name:<24} {count:>9,}" for name, count in rows)
