"""``fs-guard replay`` and ``fs-guard demo``: what fs-guard and fail2ban would have done.

``replay FILE...`` reads traces (JSON Lines, CSV, FreeSWITCH's log or CDR CSV; gzip or
not) and decides them with the configuration the screen would use, its fraud limits
included; ``replay`` without a file, or ``demo``, replays the bundled attack trace on the
bundled demo configuration (or ``--config``).
"""

from __future__ import annotations

import argparse
import errno
import gc
import heapq
import json
import math
import os
import sys
import time
from operator import itemgetter
from typing import Any, Dict, List, Optional, Sequence, TextIO

from fs_guard.fsconf import site
from fs_guard.offline import replay, report_html, traces

from fs_guard.runtime import offence
from fs_guard.runtime.banlog import escape
from fs_guard.runtime.limits import CONCURRENT, CRITICAL, WARNING, Limit, Threshold
from fs_guard.offline.cli.check import load_or_report
from fs_guard.runtime.config import Config
from fs_guard.offline.replay import FileSummary, Jail, JailError, Replay, Report
from fs_guard.offline.replay_destinations import DestinationRow, DestinationsReport
from fs_guard.offline.replay_limits import SLACK, LimitsReport, MetricPeaks
from fs_guard.offline.replay_timeline import Timeline

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "data")
BUNDLED_TRACE = os.path.join(DATA, "attack-trace.jsonl.gz")
#: The shipped configuration as an office that calls abroad sets it, with the shipped limits.
DEMO_CONFIG = os.path.join(DATA, "demo.json")
#: Bans and bad lines listed in the text report; --json lists every ban.
SHOWN = 30
#: Bad lines listed under a file refused as not a trace (the report lists up to SHOWN).
REFUSED_SHOWN = 5
#: Keys listed per limit and metric in the text report (--json lists more).
PEAKS_SHOWN = 3
#: Exit status when an input file held no trace (2 is usage, a missing file, a bad configuration).
NOT_A_TRACE = 3
EPILOG = """\
formats (by extension, .gz stripped: .jsonl .ndjson .json, .csv, .log; else by the
first line; a CDR by its first line whatever the name; --format to choose):
  jsonl  one JSON object per line: time, kind, ip, context, number, ua, user, profile,
         host, type, account, uuid, duration (time required; kind is call or
         register_failure; another key makes the line bad)
  csv    the same fields as columns, named by a header row with a time column (other
         columns are ignored and listed; it needs number, or kind for register
         failures), else in that order
  fslog  FreeSWITCH's freeswitch.log: its invite, dialplan, SIP auth failure and
         Hangup lines
  cdr    mod_cdr_csv's Master.csv, templates "example" (15 fields) or "default" (13):
         no source address; the accountcode is the account

Fraud limits (the configuration's "limits") are applied on the traces' own times; several
files are merged in time order for them.

Times are epoch seconds or ISO-8601 (UTC without an offset), from 2000 to 2100; one in
milliseconds, microseconds or nanoseconds is a bad line that says so.

A file is not a trace when it is empty or holds no call or registration attempt; a
jsonl, csv or cdr file also when it has more bad lines than attempts (a freeswitch.log's
other lines are skipped, not bad). Its first bad lines are listed under it.

exit status: 0 the report; 2 usage, a missing file or a directory, a bad configuration,
jail or --ban-log; 3 a file held no trace (named on stderr; the report is printed when
another file did); 141 the reader of the output went away (| head)."""


def register(sub: "argparse._SubParsersAction") -> None:
    parser = sub.add_parser("replay", help="what fs-guard and fail2ban would have done to recorded calls",
                            description="What fs-guard and fail2ban would have done to recorded calls.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", metavar="FILE",
                        help="traces: JSON Lines, CSV, freeswitch.log or CDR CSV, optionally gzipped "
                             "(default: the bundled attack trace on the bundled demo configuration)")
    parser.add_argument("--format", choices=traces.FORMATS, help="the files' format (default: detected)")
    _common(parser)
    parser.set_defaults(run=run_replay)

    demo = sub.add_parser("demo", help="replay the bundled attack trace on the bundled demo configuration",
                          description="Replay the bundled attack trace (a day of an office's calls, scanners, "
                                      "password guessing and a stolen account calling premium numbers) on "
                                      "the bundled demo configuration: the shipped fs_guard.json with its "
                                      "fraud limits, as an office that calls abroad sets it "
                                      "(fs_guard/data/demo.json).")
    _common(demo)
    demo.set_defaults(run=run_replay, files=[], format=None)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH",
                        help="fs-guard configuration (default: the one the screen would use; "
                             "for the bundled trace, the bundled demo configuration)")
    parser.add_argument("--jail", metavar="PATH",
                        help="fail2ban jail with an [fs-guard] section (default: the shipped jail)")
    parser.add_argument("--ban-log", dest="ban_log", metavar="PATH",
                        help="also write the ban lines fs-guard would have written to PATH (overwritten)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", metavar="PATH",
                        help="also write the report as one self-contained HTML page with charts to PATH "
                             "(overwritten; needs the report extra: " + report_html.EXTRA + ")")
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
    live = (args.ban_log or args.html) and site.ban_log(config).path  # the ban log the screen writes
    if args.ban_log and _same_file(args.ban_log, live):
        print(f"fs-guard: refusing to overwrite the live ban log {live}", file=sys.stderr)
        return 2
    unwritable = args.ban_log and _cannot_write(args.ban_log)
    if unwritable:
        print(f"fs-guard: {unwritable}", file=sys.stderr)
        return 2
    unusable = args.html and _cannot_draw(args.html, [*files, live])
    if unusable:
        print(f"fs-guard: {unusable}", file=sys.stderr)
        return 2
    try:
        report = replay_files(files, args.format, config, jail, args.ban_log, args.top,
                              timeline=Timeline() if args.html else None)
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
        if args.html and not _draw(report, args.html):
            return 2
    for f in refused:
        print(f"fs-guard: {_refusal(f)}", file=sys.stderr)
        for line in _bad_lines(f, REFUSED_SHOWN):
            print(line, file=sys.stderr)
    return NOT_A_TRACE if refused else 0


def _not_a_file(path: str) -> Optional[str]:
    """Why ``path`` cannot be read as a trace before reading it, or None (a pipe or /dev/null can)."""
    if os.path.isdir(path):
        return f"{path}: is a directory; name the trace files in it (e.g. {os.path.join(path, '*.log')})"
    if not os.path.exists(path):
        return f"no such file: {path}"
    return None


def _cannot_write(path: str, option: str = "--ban-log") -> Optional[str]:
    """Why ``option``'s file cannot be written, found before a long replay rather than after."""
    try:
        with open(path, "a", encoding="ascii"):
            pass
    except OSError as exc:
        hint = " (create the directory first)" if exc.errno == errno.ENOENT else ""
        return f"cannot write {option} {path}: {exc.strerror or exc}{hint}"
    return None


def _cannot_draw(path: str, kept: Sequence[str]) -> Optional[str]:
    """Why ``--html`` cannot be written (no plotting library, no such directory, a file it
    would overwrite that must be ``kept``: a trace, the live ban log), before replaying."""
    for keep in kept:
        if _same_file(path, keep):
            return f"refusing to overwrite {keep} with the --html page"
    try:
        report_html.require()
    except report_html.ReportExtraMissing as exc:
        return str(exc)
    existed = os.path.lexists(path)
    problem = _cannot_write(path, "--html")
    if problem is None and not existed:
        os.remove(path)  # no empty page left behind when the replay then finds no trace
    return problem


def _draw(report: Report, path: str) -> bool:
    """Write the page; say where on stderr (stdout holds the text or JSON report)."""
    try:
        size = report_html.write(report, path)
    except OSError as exc:
        print(f"fs-guard: cannot write --html {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    print(f"fs-guard: wrote the HTML report {path} ({size / 1e6:.1f} MB)", file=sys.stderr)
    return True


def _refusal(f: FileSummary) -> str:
    """The one line that says a file is not a trace."""
    if f.not_a_trace == traces.EMPTY:
        return f"{f.path}: empty: not a trace"
    return (f"{f.path}: {f.not_a_trace} (read as {f.format}): not a trace; "
            "see fs-guard replay --help for the formats")


def _config(path: Optional[str], bundled: bool) -> Optional[Config]:
    """The screen's configuration; for the bundled trace, --config or the demo configuration."""
    if bundled and path is None:
        return load_or_report(DEMO_CONFIG)
    return load_or_report(path)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def replay_files(files: Sequence[str], fmt: Optional[str], config: Config, jail: Jail,
                 ban_log: Optional[str], top: int = 10, timeline: Optional[Timeline] = None) -> Report:
    """Replay ``files``: one after the other, or, when the configuration has limits (they
    need time order), merged by time. Progress on stderr when it is a terminal; with a
    ``timeline``, the report carries what happened when (for the HTML page)."""
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    out: Optional[TextIO] = open(ban_log, "w", encoding="ascii", newline="\n") if ban_log else None
    collecting = gc.isenabled()
    gc.disable()  # the hot loop makes no reference cycles; scanning its caches costs a fifth of the time
    try:
        engine = Replay(config, jail, out, timeline)
        read = [traces.Trace(path, fmt, progress) for path in files]
        if engine.limits is not None and len(read) > 1:
            engine.feed(heapq.merge(*(trace.read() for trace in read), key=itemgetter(0)))
            if progress is not None:
                progress.done()
        else:
            for trace in read:
                engine.feed(trace.read())
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
             "not_a_trace": f.not_a_trace, "ignored_columns": list(f.ignored_columns)}
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
        "limits": _limits_json(report.limits) if report.limits is not None else None,
        "destinations": _destinations_json(report.destinations) if report.destinations is not None else None,
    }


def _destinations_json(report: DestinationsReport) -> Dict[str, Any]:
    def rows(found: Sequence[DestinationRow]) -> List[Dict[str, Any]]:
        return [{"name": row.name, "attempts": row.attempts, "accepted": row.accepted, "rejected": row.rejected,
                 "rejected_by_limits": row.limited, "reasons": _pairs(row.reasons)} for row in found]
    return {"classified": report.classified, "emergency": report.emergency, "not_phone_numbers": report.not_numbers,
            "countries": report.country_count, "top_countries": rows(report.countries),
            "number_types": rows(report.types)}


def _limits_json(report: LimitsReport) -> Dict[str, Any]:
    return {
        "screened": report.screened,
        "rejected": report.rejected,
        "with_end": report.with_end,
        "without_end": report.without_end,
        "with_account": report.with_account,
        "with_address": report.with_address,
        "out_of_order": report.out_of_order,
        "evicted_keys": report.evicted,
        "limits": [
            {"name": s.limit.name, "by": s.limit.by, "action": s.limit.action, "description": s.limit.describe(),
             "hits": {WARNING: s.warning, CRITICAL: s.critical},
             "rejected": s.rejected, "blocked_calls": s.blocked_calls, "alerted": s.alerted,
             "blocks": [{"identity": b.identity, "key": b.key, "at": iso(b.at), "until": iso(b.until)}
                        for b in s.blocks],
             "critical_keys": [{"key": k.key, "first": iso(k.first), "peak": _pairs(k.peak)} for k in s.critical_keys],
             "critical_key_count": s.critical_key_count,
             "peaks": {p.metric: {WARNING: p.threshold.warning, CRITICAL: p.threshold.critical,
                                  "highest": p.highest, "cap": p.cap,
                                  "top": [{"key": key, "count": count} for key, count in p.top]}
                       for p in s.peaks}}
            for s in report.limits
        ],
    }


def render(report: Report) -> str:
    lines: List[str] = ["fs-guard replay: what fs-guard and fail2ban would have done", ""]
    for f in report.files:
        bad = f", {f.bad:,} bad" if f.bad else ""
        refused = f": NOT A TRACE ({f.not_a_trace})" if f.not_a_trace else ""
        ignored = f"; columns ignored: {escape(','.join(f.ignored_columns))}" if f.ignored_columns else ""
        lines.append(f"input:      {f.path} ({f.format}): {f.lines:,} lines, {f.events:,} attempts{bad}{ignored}{refused}")
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
    if report.limits is not None:
        _limits_text(lines, report.limits)
    if report.destinations is not None:
        _destinations_text(lines, report.destinations)
    if report.bad:
        lines += ["", f"bad lines: {report.bad:,} (skipped)"]
        for f in report.files:
            lines += _bad_lines(f, SHOWN)
    return "\n".join(lines) + "\n"


def _bad_lines(f: FileSummary, shown: int) -> List[str]:
    """A file's first ``shown`` bad lines, with their numbers and why, and how many more."""
    lines = [f"  {f.path}:{number}: {error}" for number, error in f.bad_lines[:shown]]
    if f.bad > len(lines):
        lines.append(f"  {f.path}: ... and {f.bad - len(lines):,} more")
    return lines


def _destinations_text(lines: List[str], report: DestinationsReport) -> None:
    lines += ["", f"destinations: {report.classified:,} calls classified, {report.country_count:,} "
                  f"countr{'ies' if report.country_count != 1 else 'y'}; {report.emergency:,} emergency "
                  f"(always let through), {report.not_numbers:,} not phone numbers (extensions, codes)"]
    for title, rows in (("top countries (accepted: what denying the country would have stopped):", report.countries),
                        ("number types:", report.types)):
        if not rows:
            continue
        lines += [f"  {title}",
                  f"    {'':<22} {'attempts':>9} {'accepted':>9} {'rejected':>9} {'by limits':>9}  reasons"]
        for row in rows:
            reasons = ", ".join(f"{reason} {count:,}" for reason, count in row.reasons)
            lines.append(f"    {row.name:<22} {row.attempts:>9,} {row.accepted:>9,} {row.rejected:>9,} "
                         f"{row.limited:>9,}  {reasons}")


def _limits_text(lines: List[str], report: LimitsReport) -> None:
    lines += ["", f"fraud limits, on the traces' own times: {report.screened:,} calls screened (the rules accepted "
                  f"them, in a context with limits), {report.rejected:,} rejected",
              f"  {'limit':<30} {'action':<7} {'warning':>8} {'critical':>8} {'rejected':>8} {'alerted':>8}"]
    for s in report.limits:
        lines.append(f"  {s.limit.name:<30} {s.limit.action:<7} {s.warning:>8,} {s.critical:>8,} {s.rejected:>8,} "
                     f"{s.alerted:>8,}")
    for note in _limit_notes(report):
        lines.append(f"  {note}")
    critical = [(s, key) for s in report.limits for key in s.critical_keys]
    if critical:
        lines += ["", "keys that hit critical (first hit, peak):"]
        for s, key in critical[:SHOWN]:
            caps = {peaks.metric: peaks.cap for peaks in s.peaks}
            peak = ", ".join(f"{metric} {_peak(count, caps.get(metric))}" for metric, count in key.peak)
            lines.append(f"  {s.limit.name:<30} {key.key:<28} {iso(key.first)}  {peak}")
        more = sum(s.critical_key_count for s in report.limits) - min(len(critical), SHOWN)
        if more:
            lines.append(f"  ... and {more:,} more (--json lists them)")
    blocks = [(s.limit.name, block) for s in report.limits for block in s.blocks]
    if blocks:
        lines += ["", "blocks:"]
        for name, block in blocks[:SHOWN]:
            lines.append(f"  {name:<30} {block.identity:<28} {iso(block.at)} until {iso(block.until)}")
        if len(blocks) > SHOWN:
            lines.append(f"  ... and {len(blocks) - SHOWN:,} more (--json lists them all)")
    lines += ["", "peaks, to pick thresholds (each key's highest count, the call included; N+: at least N):"]
    for s in report.limits:
        for peaks in s.peaks:
            top = ", ".join(f"{key} {_peak(count, peaks.cap)}{_level(peaks.threshold, count)}"
                            for key, count in peaks.top[:PEAKS_SHOWN])
            lines.append(f"  {s.limit.name:<30} {_metric(s.limit, peaks):<37} {top or '-'}")


def _limit_notes(report: LimitsReport) -> List[str]:
    """What the limits could not see in these traces."""
    notes = []
    if report.has_concurrency and report.without_end:
        notes.append(f"{report.without_end:,} calls had no known end (no duration; no uuid in a freeswitch.log): "
                     "not counted toward concurrent calls")
    if report.screened and not report.with_account and any(s.limit.by != "source_ip" for s in report.limits):
        notes.append("no call had an account (a freeswitch.log names none): account limits counted nothing")
    if report.screened and not report.with_address and any(s.limit.by == "source_ip" for s in report.limits):
        notes.append("no call had a source address (a CDR has none): source_ip limits counted nothing")
    if report.out_of_order:
        notes.append(f"{report.out_of_order:,} calls came more than {SLACK:g} s after a later one (input out of "
                     "time order): each was decided at its own time, counts around it are approximate")
    if report.evicted:
        notes.append(f"{report.evicted:,} keys were forgotten past limit_settings.max_keys (least recently seen first)")
    return notes


def _metric(limit: Limit, peaks: MetricPeaks) -> str:
    """``calls in 60 s > 10/20``: the metric and its warning/critical thresholds."""
    what = "concurrent" if peaks.metric == CONCURRENT else f"{peaks.metric} in {limit.window:g} s"
    values = "/".join("-" if value is None else str(value) for value in (peaks.threshold.warning,
                                                                           peaks.threshold.critical))
    return f"{what} > {values}"


def _peak(count: int, cap: Optional[int]) -> str:
    """A peak; ``N+`` at the cap, where the tally stops counting."""
    return f"{count:,}+" if count == cap else f"{count:,}"


def _level(threshold: Threshold, count: int) -> str:
    level = threshold.level(count)
    return f" ({level})" if level else ""


def _table(lines: List[str], title: str, rows: Sequence[Any]) -> None:
    if rows:
        lines += ["", title]
        lines.extend(f"  {name:<24} {count:>9,}" for name, count in rows)
