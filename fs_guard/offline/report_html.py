"""The replay report as one page for a person to look at (``fs-guard replay --html``).

One self-contained HTML file: the charts are drawn by plotly (the ``report`` extra, imported
only here), whose JavaScript is written into the page, so it opens offline from a file or
a mail attachment, with no CDN and no request of any kind. Plotly rather than a static
image library: it is pure Python (no compiled dependency, no numpy), and a day of traffic
binned by minutes is read by hovering and zooming, which a picture cannot offer. The cost
is the size of its script (about 5 MB, once per page, whatever the number of charts).

Everything shown comes from the replay's ``Report`` (with its ``timeline``; the destination
charts draw the text report's own tables, ``Report.destinations``); text that came
from a trace (addresses as given, accounts, keys) is escaped for HTML, and plotly's own
text markup, before it reaches the page.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from fs_guard.runtime import offence
from fs_guard.runtime.limits import CRITICAL, WARNING, Limit
from fs_guard.runtime.rules import LIMIT, REGISTER_FAILURE
from fs_guard.offline.replay import Report
from fs_guard.offline.replay_destinations import UNKNOWN_COUNTRY, DestinationRow, DestinationsReport
from fs_guard.offline.replay_limits import LimitSummary
from fs_guard.offline.replay_timeline import (
    ACCEPTED, LIMITED, MONITORED, REGISTER_FAILED, REJECTED, SERIES, HitSeries, TimelineReport,
)

EXTRA = "pip install 'fs-guard[report]'"
#: The rules an entry for a destination row would go into (docs/destinations.md).
DENY_COUNTRIES, DENY_NUMBER_TYPES = "deny_countries", "deny_number_types"
#: Blocks drawn as shaded spans on a limit's chart (the text report lists them all).
BLOCKS_DRAWN = 50
#: Addresses named in a bar's hover text for the bans in it.
NAMED_PER_BAR = 10
#: The charts' plotly settings: no link to plotly's site, pictures saved from the browser.
CONFIG = {"displaylogo": False, "responsive": True}
COLOURS = {SERIES[ACCEPTED]: "#9ab973", SERIES[REJECTED]: "#d9534f", SERIES[LIMITED]: "#8e44ad",
           SERIES[MONITORED]: "#f0ad4e", SERIES[REGISTER_FAILED]: "#5b9bd5", WARNING: "#f0ad4e", CRITICAL: "#d9534f"}
#: Legends in a row above the plot (plotly widens the top margin when they wrap).
LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}
#: Offence reasons on the bars of sources and destinations: warm for calls the rules reject, as on
#: the attempts chart; register failures and fraud limits in their own series' colours.
REASON_COLOURS = ("#d9534f", "#e67e22", "#a93226", "#f1948a", "#dc7633", "#922b21", "#f5b041", "#cd6155")
STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table.summary td { padding: 0.1em 1em 0.1em 0; vertical-align: top; }
table.summary td:first-child { color: #555; }
p.note { color: #555; }
"""


class ReportExtraMissing(RuntimeError):
    """The plotting library is not installed: the message says how to install it."""


def require() -> Any:
    """plotly's figure and output modules; ReportExtraMissing when they cannot be imported."""
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
        import plotly.offline as offline
    except ImportError as exc:
        raise ReportExtraMissing(f"--html draws its charts with plotly, which cannot be imported ({exc}): "
                                 f"{EXTRA}") from None
    return go, pio, offline


def write(report: Report, path: str) -> int:
    """Write the page to ``path``; returns its size in bytes."""
    text = page(report)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return len(text.encode("utf-8"))


def page(report: Report) -> str:
    """The whole page: a summary, then one section per chart."""
    go, pio, offline = require()
    sections = [_section(pio, "attempts", "Attempts, rejects and bans over time", _attempts_note(report),
                         _attempts(go, report))]
    if report.offenders:
        sections.append(_section(pio, "sources", "Top sources and what became of them",
                                 "Each address's attempts by what the rules made of them; beside the bar, "
                                 "fail2ban's bans of it and the attempts its firewall would have dropped.",
                                 _sources(go, report)))
    if report.destinations is not None:
        sections.extend(_destination_sections(go, pio, report, report.destinations))
    if report.limits is not None:
        sections.extend(_limit_sections(go, pio, report))
    title = "fs-guard replay: what fs-guard and fail2ban would have done"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n"
            f"<script type=\"text/javascript\">{offline.get_plotlyjs()}</script>\n</head>\n<body>\n"
            f"<h1>{_e(title)}</h1>\n{_summary(report)}\n{''.join(sections)}"
            f"<p class=\"note\">Made by fs-guard replay; charts by plotly, included in this file.</p>\n"
            "</body>\n</html>\n")


# -- charts ----------------------------------------------------------------------------------


def _attempts(go: Any, report: Report) -> Any:
    timeline = _timeline(report)
    x = [_when(start) for start in timeline.starts]
    figure = go.Figure()
    for name, counts in zip(SERIES, timeline.counts):
        if any(counts):
            figure.add_trace(go.Bar(x=x, y=counts, name=name, marker_color=COLOURS[name], offset=0,
                                    width=timeline.width * 1000,
                                    hovertemplate=f"%{{y:,}} {name}<extra>%{{x}}</extra>"))
    bans = [(ban.at, ban.address) for ban in report.bans]
    blocks = [(block.at, f"{summary.limit.name}: {block.identity}") for summary in _summaries(report)
              for block in summary.blocks]
    highest = 0
    for name, events, symbol in (("fail2ban bans", bans, "triangle-down"), ("limit blocks", blocks, "x")):
        if events:
            markers = _markers(go, timeline, name, events, symbol)
            highest = max([highest, *markers.y])
            figure.add_trace(markers)
    figure.update_layout(barmode="stack", bargap=0, xaxis_title="time (UTC)",
                         yaxis=dict(title=f"attempts per {_width(timeline.width)}",
                                    **_whole(max(map(sum, zip(*timeline.counts)), default=0))),
                         yaxis2=dict(title="bans and blocks started", overlaying="y", side="right", showgrid=False,
                                     range=[0, highest * 1.05 or 1], **_whole(highest)),
                         legend=LEGEND, margin=dict(t=40))
    return figure


def _markers(go: Any, timeline: TimelineReport, name: str, events: Sequence[Tuple[float, str]], symbol: str) -> Any:
    """Bans or blocks per bar, on the right-hand axis, naming what they hit."""
    first = timeline.starts[0] if timeline.starts else 0.0
    named: Dict[int, List[str]] = {}  # bar -> what started in it
    for at, what in sorted(events):
        named.setdefault(int((at - first) // timeline.width), []).append(_e(what))
    shown = sorted(named)
    return go.Scatter(
        x=[_when(first + (index + 0.5) * timeline.width) for index in shown],
        y=[len(named[index]) for index in shown], yaxis="y2", mode="markers", name=name,
        marker=dict(symbol=symbol, size=11, color="#222" if symbol == "x" else "#000080"),
        hovertext=[_named(named[index]) for index in shown],
        hovertemplate=f"%{{y}} {name}<br>%{{hovertext}}<extra>%{{x}}</extra>")


def _sources(go: Any, report: Report) -> Any:
    return _outcome_bars(go, [Outcomes(o.address or "(none)", o.reasons, o.attempts - o.offences,
                                       _fate(o.bans, o.stopped)) for o in report.offenders],
                         _reason_colours(report))


def _destination_sections(go: Any, pio: Any, report: Report, found: DestinationsReport) -> List[str]:
    """The text report's destination tables as charts (only a replay that classified calls has them)."""
    would = (" A reason's calls in a context in monitor mode were let through: they would have been rejected."
             if report.monitored else "")
    sections = []
    if found.countries:
        shown = (f"the top {len(found.countries):,} of {found.country_count:,}"
                 if len(found.countries) < found.country_count else f"all {found.country_count:,}")
        sections.append(_section(
            pio, "countries", "Top destination countries",
            f"Calls to phone numbers by the country they went to ({shown}; ISO 3166 region codes, 001 the "
            "international networks) and what the rules and fraud limits made of them; beside the bar, the calls "
            f"a {DENY_COUNTRIES} entry for the country would have stopped: those let through.{would}",
            _destinations(go, report, found.countries, DENY_COUNTRIES)))
    if found.types:
        sections.append(_section(
            pio, "number-types", "Destination number types",
            "The same calls by number type (libphonenumber's); beside the bar, the calls a "
            f"{DENY_NUMBER_TYPES} entry for the type would have stopped.{would}",
            _destinations(go, report, found.types, DENY_NUMBER_TYPES)))
    return sections


def _destinations(go: Any, report: Report, rows: Sequence[DestinationRow], rule: str) -> Any:
    """The text report's rows of a destination table, each a bar of its calls by outcome; beside
    it, what ``rule`` (an entry for the row: ``deny_countries``, ``deny_number_types``) would have
    stopped: the calls let through."""
    return _outcome_bars(go, [Outcomes(row.name, row.reasons, row.accepted, _deny(rule, row)) for row in rows],
                         _reason_colours(report))


def _reason_colours(report: Report) -> Dict[str, str]:
    """One colour per offence reason on every chart of the page: warm ones by the reasons' rank
    in the report (rules' rejects), the series' own for register failures and fraud limits."""
    warm = iter(REASON_COLOURS * len(report.by_reason))
    own = {REGISTER_FAILURE: COLOURS[SERIES[REGISTER_FAILED]], LIMIT: COLOURS[SERIES[LIMITED]]}
    return {reason: own.get(reason) or next(warm) for reason, _ in report.by_reason}


def _deny(rule: str, row: DestinationRow) -> str:
    if row.name == UNKNOWN_COUNTRY and rule == DENY_COUNTRIES:
        return "  country not known: no rule names it"
    if not row.accepted:
        return "  none let through"
    return f"  {rule} would stop {row.accepted:,} more"


@dataclass(frozen=True)
class Outcomes:
    """One bar of attempts by what became of them: offences by reason (most first, as the
    text report lists them), attempts let through, and the words beside the bar."""

    label: str
    reasons: Tuple[Tuple[str, int], ...]
    accepted: int
    fate: str


def _outcome_bars(go: Any, rows: Sequence[Outcomes], colours: Dict[str, str]) -> Any:
    """Horizontal bars, the first row on top, stacked by reason (in ``colours``) then accepted;
    the words at their end."""
    rows = list(reversed(rows))  # plotly draws the first row at the bottom
    labels = [_e(row.label) for row in rows]
    reasons = sorted({reason for row in rows for reason, _ in row.reasons},
                     key=lambda reason: -sum(dict(row.reasons).get(reason, 0) for row in rows))
    figure = go.Figure()
    for reason in reasons:
        figure.add_trace(go.Bar(y=labels, x=[dict(row.reasons).get(reason, 0) for row in rows], name=reason,
                                orientation="h", marker_color=colours.get(reason, REASON_COLOURS[0]),
                                hovertemplate=f"%{{x:,}} {reason}<extra>%{{y}}</extra>"))
    if any(row.accepted for row in rows):
        figure.add_trace(go.Bar(y=labels, x=[row.accepted for row in rows], name="accepted", orientation="h",
                                marker_color=COLOURS[SERIES[ACCEPTED]],
                                hovertemplate="%{x:,} accepted<extra>%{y}</extra>"))
    totals = [row.accepted + sum(count for _, count in row.reasons) for row in rows]
    figure.add_trace(go.Scatter(y=labels, x=totals, mode="text", showlegend=False,
                                text=[row.fate for row in rows], textposition="middle right",
                                cliponaxis=False, hoverinfo="skip"))
    highest = max(totals)
    figure.update_layout(barmode="stack", xaxis=dict(title="attempts", range=[0, highest * 2], **_whole(highest)),
                         yaxis=dict(type="category"),  # a label such as "001" is a name, not a number
                         height=max(300, 60 + 32 * len(rows)), legend=LEGEND, margin=dict(t=40))
    return figure


def _fate(bans: int, stopped: int) -> str:
    if not bans:
        return "  not banned"
    return f"  banned {bans:,}×, {stopped:,} attempts dropped at the firewall"


def _limit_sections(go: Any, pio: Any, report: Report) -> List[str]:
    """One chart per limit that was hit; one line for those that never were."""
    timeline = _timeline(report)
    hits: Dict[str, List[HitSeries]] = {}
    for series in timeline.hits:
        hits.setdefault(series.limit, []).append(series)
    sections, quiet = [], []
    for index, summary in enumerate(_summaries(report)):
        limit = summary.limit
        if limit.name not in hits:
            quiet.append(f"<li>{_e(limit.name)}: {_e(_closest(summary))}</li>")
            continue
        note = (f"{limit.describe()}. Each mark: the highest count of a bin's hits "
                f"(bins of {_width(timeline.hit_width)}); the lines: its thresholds. "
                f"{summary.warning:,} warning and {summary.critical:,} critical hits; "
                f"{summary.rejected:,} calls rejected, {summary.alerted:,} alerted only.")
        sections.append(_section(pio, f"limit-{index}", f"Fraud limit {limit.name}", note,
                                 _limit(go, report, summary, hits[limit.name])))
    if quiet:
        sections.append("<section><h2>Fraud limits never hit</h2>\n<ul>" + "".join(quiet) + "</ul></section>\n")
    return sections


def _limit(go: Any, report: Report, summary: LimitSummary, hits: Sequence[HitSeries]) -> Any:
    """A limit's hits over the replay's period, its thresholds as lines, its blocks shaded."""
    limit = summary.limit
    figure = go.Figure()
    several = len(limit.thresholds()) > 1
    for series in hits:
        name = f"{series.level} ({limit.measure(series.metric)})" if several else series.level
        figure.add_trace(go.Scatter(
            x=[_when(b.start) for b in series.bins], y=[b.highest for b in series.bins], mode="markers", name=name,
            marker=dict(color=COLOURS[series.level], size=9,
                        symbol="circle" if series.metric == limit.thresholds()[0][0] else "diamond"),
            customdata=[[b.hits, _e(b.key)] for b in series.bins],
            hovertemplate=(f"%{{customdata[0]:,}} {series.level} hits, highest {limit.measure(series.metric)} "
                           "%{y:,}<br>key %{customdata[1]}<extra>%{x}</extra>")))
    for metric, threshold in limit.thresholds():
        for level, value in ((WARNING, threshold.warning), (CRITICAL, threshold.critical)):
            if value is not None:
                which = f" ({limit.measure(metric)})" if several else ""
                figure.add_hline(y=value, line_color=COLOURS[level], line_dash="dash" if level == WARNING else "solid",
                                 annotation_text=f"{level} > {value}{which}", annotation_position="top right")
    for block in summary.blocks[:BLOCKS_DRAWN]:
        figure.add_vrect(x0=_when(block.at), x1=_when(min(block.until, report.last or block.until)),
                         fillcolor="#d9534f", opacity=0.12, line_width=0)
    if report.first is not None and report.last is not None:
        figure.update_xaxes(range=[_when(report.first), _when(report.last)])
    highest = max([value for _, threshold in limit.thresholds() for value in (threshold.warning, threshold.critical)
                   if value is not None] + [b.highest for series in hits for b in series.bins])
    figure.update_layout(xaxis_title="time (UTC)",
                         yaxis=dict(title=_axis(limit), rangemode="tozero", **_whole(highest)),
                         legend=LEGEND, margin=dict(t=40), height=360)
    return figure


def _closest(summary: LimitSummary) -> str:
    """Why a limit never hit: how close its keys came to its lowest threshold."""
    closest = []
    for peaks in summary.peaks:
        threshold = peaks.threshold
        level, value = (WARNING, threshold.warning) if threshold.warning is not None else (CRITICAL, threshold.critical)
        closest.append(f"highest {peaks.metric} {peaks.highest:,} ({level} above {value})")
    return "; ".join(["never hit", *closest])


# -- page parts ------------------------------------------------------------------------------


def _section(pio: Any, ident: str, title: str, note: str, figure: Any) -> str:
    chart = pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=ident, config=CONFIG,
                        default_width="100%")
    return (f"<section id=\"section-{ident}\">\n<h2>{_e(title)}</h2>\n<p class=\"note\">{_e(note)}</p>\n"
            f"<div class=\"chart\">{chart}</div>\n</section>\n")


def _attempts_note(report: Report) -> str:
    return (f"Every call and register failure by what fs-guard made of it, in bars of "
            f"{_width(_timeline(report).width)}; marks on the right-hand axis: fail2ban's bans "
            "and the fraud limits' blocks as they start (hover for their addresses).")


def _summary(report: Report) -> str:
    rows: List[Tuple[str, str]] = [
        ("input", "; ".join(f"{f.path} ({f.format}, {f.lines:,} lines, {f.events:,} attempts)" for f in report.files)),
        ("period", f"{_when(report.first)} .. {_when(report.last)} UTC" if report.first is not None else "no attempt"),
        ("rules", report.config or "built-in defaults"),
        ("fail2ban", f"{report.jail.maxretry} offences within {_width(report.jail.findtime)} ban for "
                     f"{_width(report.jail.bantime)}"),
        ("calls", f"{report.calls:,}: accepted {report.accepted:,}, rejected {report.rejected:,}"
                  + (f", monitor mode would reject {report.monitored:,}" if report.monitored else "")),
        ("register failures", f"{report.register_failures:,}"),
        ("ban lines", f"{dict(report.ban_lines).get(offence.BANNED, 0):,}"),
        ("fail2ban bans", f"{len(report.bans):,} of {len({b.address for b in report.bans}):,} addresses; "
                          f"{report.stopped:,} attempts dropped at the firewall while banned"),
    ]
    if report.limits is not None:
        rows.append(("fraud limits", f"{report.limits.screened:,} calls screened, {report.limits.rejected:,} rejected; "
                                     + ", ".join(f"{s.limit.name} {s.warning + s.critical:,} hits"
                                                 for s in report.limits.limits)))
    if report.destinations is not None:
        found = report.destinations
        rows.append(("destinations", f"{found.classified:,} calls classified: {found.country_count:,} countries, "
                                     f"{found.emergency:,} emergency, {found.not_numbers:,} not phone numbers"))
    cells = "".join(f"<tr><td>{_e(name)}</td><td>{_e(value)}</td></tr>" for name, value in rows)
    return f"<table class=\"summary\">{cells}</table>"


def _timeline(report: Report) -> TimelineReport:
    if report.timeline is None:
        raise ValueError("the page needs the replay's timeline: Replay(..., timeline=Timeline())")
    return report.timeline


def _summaries(report: Report) -> Tuple[LimitSummary, ...]:
    return report.limits.limits if report.limits is not None else ()


def _axis(limit: Limit) -> str:
    metrics = [metric for metric, _ in limit.thresholds()]
    return limit.measure(metrics[0]) if len(metrics) == 1 else "count"


def _whole(highest: int) -> Dict[str, int]:
    """An axis of counts up to ``highest``: a tick per whole count when plotly would put them between."""
    return {"dtick": 1} if highest <= 6 else {}


def _named(names: List[str]) -> str:
    more = f"<br>and {len(names) - NAMED_PER_BAR:,} more" if len(names) > NAMED_PER_BAR else ""
    return "<br>".join(names[:NAMED_PER_BAR]) + more


def _when(seconds: Optional[float]) -> str:
    """A time as plotly reads a date (UTC, milliseconds)."""
    if seconds is None:
        return ""
    whole = int(seconds // 1)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1000):03d}"


def _width(seconds: float) -> str:
    """A bin's width or a jail's time in its largest whole unit: ``5 min``, ``4 h``, ``2 d``."""
    if seconds == float("inf"):
        return "ever"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _e(text: str) -> str:
    """Escaped for HTML; plotly reads entities in its text, so this also keeps a trace's text
    from being taken for plotly's markup (``<a href>``, ``<br>``)."""
    return html.escape(text, quote=True)
