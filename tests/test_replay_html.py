"""fs-guard replay --html: the timeline replay records for it, the page, the command, and the
page as headless Chromium renders it."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from fs_guard.offline import report_html
from fs_guard.offline.cli import replay as command
from fs_guard.offline.replay import Replay, shipped_jail
from fs_guard.offline.replay_timeline import (
    ACCEPTED, LIMITED, MONITORED, REGISTER_FAILED, REJECTED, SERIES, Timeline,
)
from fs_guard.offline.traces import Trace
from fs_guard.runtime.config import parse_config
from fs_guard.runtime.limits import CRITICAL, WARNING

from chromium_support import Charts, dump_dom, png_colours, screenshot

T0 = 1795860000.0  # 2026-11-28T10:00:00Z
ROOT = Path(__file__).resolve().parent.parent


def rgb(series: str) -> tuple:
    """A series' colour on the page, as a PNG's pixel."""
    colour = report_html.COLOURS[series]
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))



def jsonl(path: Path, records: List[Dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def attempt(at: float, ip: Optional[str] = "203.0.113.7", number: str = "0044123456", context: str = "public",
            **more: Any) -> Dict[str, Any]:
    return dict({"time": at, "ip": ip, "context": context, "number": number}, **more)


def replayed(tmp_path: Path, records: List[Dict[str, Any]], section: Dict[str, Any], timeline: Any = None):
    config = parse_config(json.dumps({"fail2ban": section}), "t.json")
    engine = Replay(config, shipped_jail(), timeline=timeline)
    trace = Trace(str(jsonl(tmp_path / "t.jsonl", records)))
    engine.feed(trace.read())
    return engine.report([trace])


RATE_LIMIT = {"name": "rate", "by": "account", "window": 60, "calls": {"warning": 1, "critical": 2},
              "action": "reject"}
#: A UK office's rules that classify destinations: a denied country and type, a limit on calls
#: to France that rejects, a lab context in monitor mode.
OFFICE = {"dialling": {"region": "GB"}, "deny_prefix": [], "destination_number_max_len": 16, "deny_countries": ["CU"],
          "deny_number_types": ["premium_rate"], "contexts": {"lab": {"monitor": True}},
          "limits": [{"name": "fr-rate", "by": "account", "countries": ["FR"], "window": 60,
                      "calls": {"critical": 2}, "action": "reject"}]}


def office_calls() -> List[Dict[str, Any]]:
    """Calls of every outcome to GB, CU, FR, 001 and no known country, an extension and 999."""
    numbers = (["02079460000"] * 3 + ["09098790000"] * 2 + ["005378612345"] * 2 + ["0033142685300"] * 4
               + ["00999123456", "0088213000000", "1001", "999"])
    calls = [attempt(T0 + i, number=number, context="default", account="1001@pbx")
             for i, number in enumerate(numbers)]
    return calls + [attempt(T0 + 20, number="005378612345", context="lab", account="1002@pbx")]


# -- the timeline --------------------------------------------------------------------------------


class TestTimeline:
    def test_each_attempt_is_counted_in_its_bin_by_what_became_of_it(self, tmp_path):
        records = [attempt(T0, number="1001"), attempt(T0 + 0.5), attempt(T0 + 2, context="lab"),
                   {"time": T0 + 2.5, "kind": "register_failure", "ip": "192.0.2.77", "user": "1000"}]
        report = replayed(tmp_path, records, {"deny_prefix": ["00"], "contexts": {"lab": {"monitor": True}}},
                          Timeline())
        timeline = report.timeline
        assert (timeline.width, timeline.starts) == (1, (T0, T0 + 1, T0 + 2))
        assert timeline.counts[ACCEPTED] == (1, 0, 0)
        assert timeline.counts[REJECTED] == (1, 0, 0)
        assert timeline.counts[MONITORED] == (0, 0, 1)
        assert timeline.counts[REGISTER_FAILED] == (0, 0, 1)
        assert timeline.counts[LIMITED] == (0, 0, 0)

    def test_calls_a_limit_rejects_and_its_hits_are_on_the_timeline_with_the_count_and_key(self, tmp_path):
        records = [attempt(T0 + i, number="1002", context="default", account="1001@pbx") for i in range(4)]
        report = replayed(tmp_path, records, {"limits": [RATE_LIMIT]}, Timeline())
        timeline = report.timeline
        assert timeline.counts[ACCEPTED] == (1, 1, 0, 0) and timeline.counts[LIMITED] == (0, 0, 1, 1)
        hits = {(s.limit, s.metric, s.level): [(b.start, b.hits, b.highest, b.key) for b in s.bins]
                for s in timeline.hits}
        assert hits == {("rate", "calls", WARNING): [(T0 + 1, 1, 2, "1001@pbx")],
                        ("rate", "calls", CRITICAL): [(T0 + 2, 1, 3, "1001@pbx"), (T0 + 3, 1, 3, "1001@pbx")]}

    def test_bins_widen_past_the_most_kept_and_no_attempt_is_lost(self):
        timeline = Timeline(max_bins=10)
        for second in range(1000):
            timeline.mark(T0 + second, ACCEPTED if second % 3 else REJECTED)
            timeline.hit(T0 + second, "rate", "calls", CRITICAL, second, f"key{second}")
        assert timeline.width == 300  # 1, 5, 10, 30, 60 s bins each overflowed
        report = timeline.report(shown_bins=3)
        assert report.width == 600 and len(report.starts) <= 3
        assert sum(report.counts[ACCEPTED]) == 666 and sum(report.counts[REJECTED]) == 334
        (series,) = report.hits
        assert sum(b.hits for b in series.bins) == 1000
        assert (series.bins[-1].highest, series.bins[-1].key) == (999, "key999")
        assert report.hit_width == 300

    def test_the_page_gets_at_most_its_number_of_bars_gaps_included(self):
        timeline = Timeline()
        timeline.mark(T0, ACCEPTED)
        timeline.mark(T0 + 86399, ACCEPTED)
        report = timeline.report(shown_bins=300)
        assert report.width == 300 and len(report.starts) == 288 and sum(report.counts[ACCEPTED]) == 2
        assert report.counts[ACCEPTED][0] == report.counts[ACCEPTED][-1] == 1

    def test_a_replay_without_the_page_records_no_timeline(self, tmp_path):
        assert replayed(tmp_path, [attempt(T0)], {"deny_prefix": ["00"]}).timeline is None


# -- the page --------------------------------------------------------------------------------------


class Resources(HTMLParser):
    """Every element of a page that would load something: (tag, attribute, value)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.loads: List[tuple] = []
        self.scripts = 0
        self.chart_ids: List[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "data", "srcset", "action", "poster"):
                self.loads.append((tag, name, value))
            if name == "class" and value and "plotly-graph-div" in value.split():
                self.chart_ids.append(dict(attrs)["id"])
        if tag in ("link", "iframe", "object", "embed", "img"):
            self.loads.append((tag, "", ""))
        self.scripts += tag == "script"


class TestPage:
    def test_the_page_loads_nothing_its_script_and_charts_are_in_the_file(self, tmp_path):
        records = [attempt(T0 + i) for i in range(6)] + [attempt(T0 + 9, number="1001")]
        text = report_html.page(replayed(tmp_path, records, {"deny_prefix": ["00"]}, Timeline()))
        page = Resources(text)
        assert page.loads == []
        assert page.chart_ids == ["attempts", "sources"]
        assert 'class="chart"' in text and "Plotly.newPlot" in text
        assert len(text) > 1_000_000  # plotly.js itself, written into the page

    def test_text_from_a_trace_reaches_the_page_escaped(self, tmp_path):
        hostile = '<img src=x onerror="alert(1)">'
        records = [attempt(T0, ip=hostile), attempt(T0 + 1, ip="</script><script>alert(2)</script>")]
        records += [attempt(T0 + i, number="1002", context="default", account=f"<b>{hostile}</b>") for i in range(4)]
        text = report_html.page(replayed(tmp_path, records, {"deny_prefix": ["00"], "limits": [RATE_LIMIT]},
                                         Timeline()))
        assert "<img src=x" not in text and "<script>alert(2)" not in text and "<b><img" not in text
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text  # the address, as the offender's label
        assert "&lt;b&gt;&lt;img" in text  # the account, as the limit's key
        assert Resources(text).loads == []

    def test_each_limit_hit_has_a_chart_and_one_never_hit_says_how_close_it_came(self, tmp_path):
        quiet = {"name": "quiet", "by": "account", "window": 60, "calls": {"warning": 50, "critical": 90},
                 "action": "alert"}
        records = [attempt(T0 + i, number="1002", context="default", account="1001@pbx") for i in range(4)]
        text = report_html.page(replayed(tmp_path, records, {"limits": [RATE_LIMIT, quiet]}, Timeline()))
        assert Resources(text).chart_ids == ["attempts", "sources", "limit-0"]
        # the fourth call, rejected by "rate", is counted by no limit
        assert "<li>quiet: never hit; highest calls 3 (warning above 50)</li>" in text

    def test_destination_charts_only_when_the_configuration_classifies_destinations(self, tmp_path):
        plain = report_html.page(replayed(tmp_path, office_calls(), {"deny_prefix": ["00"]}, Timeline()))
        assert Resources(plain).chart_ids == ["attempts", "sources"] and "destinations" not in plain
        text = report_html.page(replayed(tmp_path, office_calls(), OFFICE, Timeline()))
        assert Resources(text).chart_ids == ["attempts", "sources", "countries", "number-types", "limit-0"]
        summary = "16 calls classified: 5 countries, 1 emergency, 1 not phone numbers"
        assert f"<td>destinations</td><td>{summary}</td>" in text
        assert "in a context in monitor mode were let through: they would have been rejected." in text

    def test_the_destination_charts_draw_the_text_reports_tables(self, tmp_path):
        """Each bar is the text report's row: its reasons, accepted and limited calls add up to its
        attempts, and the words beside it name the accepted calls a deny entry would stop."""
        go, _, _ = report_html.require()
        report = replayed(tmp_path, office_calls(), OFFICE, Timeline())
        text = command.render(report)
        found = report.destinations
        for title, rows, rule in (("top countries", found.countries, report_html.DENY_COUNTRIES),
                                  ("number types", found.types, report_html.DENY_NUMBER_TYPES)):
            drawn = drawn_rows(report_html._destinations(go, report, rows, rule))
            assert drawn == text_rows(text, title)
            assert [name for name, *_ in drawn] == [row.name for row in rows]
        countries = drawn_rows(report_html._destinations(go, report, found.countries, report_html.DENY_COUNTRIES))
        assert countries == [
            ("GB", 5, 3, 2, 0, {"denied_number_type": 2}, "  deny_countries would stop 3 more"),
            ("FR", 4, 2, 0, 2, {}, "  deny_countries would stop 2 more"),
            ("CU", 3, 0, 3, 0, {"denied_country": 3}, "  none let through"),  # one of them in monitor mode
            ("001", 1, 1, 0, 0, {}, "  deny_countries would stop 1 more"),
            ("unknown", 1, 1, 0, 0, {}, "  country not known: no rule names it"),
        ]

    def test_the_page_needs_the_replays_timeline(self, tmp_path):
        with pytest.raises(ValueError, match="timeline"):
            report_html.page(replayed(tmp_path, [attempt(T0)], {}))


def drawn_rows(figure: Any) -> List[tuple]:
    """A bar chart's rows, top first: (label, attempts, accepted, rejected by the rules, by limits,
    reasons of those rejects, the words beside the bar)."""
    bars = [trace for trace in figure.data if trace.type == "bar"]
    (words,) = [trace for trace in figure.data if trace.type == "scatter"]
    rows = []
    for at, label in enumerate(words.y):
        values = {bar.name: bar.x[at] for bar in bars}
        accepted, limited = values.pop("accepted", 0), values.get("limit", 0)
        reasons = {name: count for name, count in values.items() if count and name != "limit"}
        rows.append((label, sum(bar.x[at] for bar in bars), accepted, sum(reasons.values()), limited, reasons,
                     words.text[at]))
        assert words.x[at] == rows[-1][1]  # the words at the bar's end
    return rows[::-1]


def text_rows(text: str, title: str) -> List[tuple]:
    """The text report's table under ``title``, with each row's words as the page draws them."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {title}")) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        name, attempts, accepted, rejected, limited, *reasons = line.replace(",", "").split()
        pairs = dict(zip(reasons[::2], map(int, reasons[1::2])))
        rule = report_html.DENY_COUNTRIES if title == "top countries" else report_html.DENY_NUMBER_TYPES
        words = ("  country not known: no rule names it" if name == "unknown" and rule == report_html.DENY_COUNTRIES
                 else f"  {rule} would stop {int(accepted):,} more" if int(accepted) else "  none let through")
        rows.append((name, int(attempts), int(accepted), int(rejected), int(limited),
                     {reason: count for reason, count in pairs.items() if reason != "limit"}, words))
    return rows


# -- the command ---------------------------------------------------------------------------------


class TestCommand:
    def test_html_writes_the_page_and_prints_the_usual_report(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [attempt(T0 + i) for i in range(6)])
        page = tmp_path / "report.html"
        code, out, err = run_cli("replay", str(trace), "--html", str(page))
        assert code == 0 and out.startswith("fs-guard replay: what fs-guard and fail2ban would have done")
        size = page.stat().st_size
        assert err == f"fs-guard: wrote the HTML report {page} ({size / 1e6:.1f} MB)\n"
        assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        code, out, _ = run_cli("replay", str(trace), "--html", str(page), "--json")
        assert code == 0 and json.loads(out)["rejected"] == 6

    def test_demo_writes_the_bundled_traces_page(self, tmp_path, run_cli):
        page = tmp_path / "demo.html"
        assert run_cli("demo", "--html", str(page))[0] == 0
        assert Resources(page.read_text(encoding="utf-8")).chart_ids[:2] == ["attempts", "sources"]

    def test_without_the_report_extra_html_is_a_clear_error_before_replaying(self, tmp_path, run_cli, monkeypatch):
        for module in ("plotly", "plotly.graph_objects", "plotly.io", "plotly.offline"):
            monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
        trace = jsonl(tmp_path / "t.jsonl", [attempt(T0)])
        page = tmp_path / "report.html"
        code, out, err = run_cli("replay", str(trace), "--html", str(page))
        assert (code, out) == (2, "") and not page.exists()
        assert err.startswith("fs-guard: --html draws its charts with plotly, which cannot be imported (")
        assert err.endswith(": pip install 'fs-guard[report]'\n") and err.count("\n") == 1

    def test_an_html_path_that_cannot_be_written_is_refused_before_replaying(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [attempt(T0)])
        target = tmp_path / "no-such-dir" / "report.html"
        assert run_cli("replay", str(trace), "--html", str(target)) == (
            2, "", f"fs-guard: cannot write --html {target}: No such file or directory (create the directory first)\n")

    def test_html_never_overwrites_a_trace_or_the_live_ban_log(self, tmp_path, run_cli, ban_log):
        trace = jsonl(tmp_path / "t.jsonl", [attempt(T0)])
        before = trace.read_text()
        assert run_cli("replay", str(trace), "--html", str(trace)) == (
            2, "", f"fs-guard: refusing to overwrite {trace} with the --html page\n")
        assert trace.read_text() == before
        code, out, err = run_cli("replay", str(trace), "--html", str(ban_log.path))
        assert (code, out) == (2, "") and err.startswith("fs-guard: refusing to overwrite ")
        assert not ban_log.path.exists()

    def test_no_page_is_written_when_the_input_held_no_trace(self, tmp_path, run_cli):
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        page = tmp_path / "report.html"
        code, out, err = run_cli("replay", str(empty), "--html", str(page))
        assert (code, out, err) == (command.NOT_A_TRACE, "", f"fs-guard: {empty}: empty: not a trace\n")
        assert not page.exists()

    def test_progress_goes_to_stderr_on_a_terminal_and_nowhere_else(self, tmp_path):
        """A real pseudo-terminal as stderr, as an operator's shell gives it; a pipe gets nothing."""
        trace = jsonl(tmp_path / "big.jsonl", [attempt(T0 + i / 100, ip=f"203.0.113.{i % 200}") for i in range(70_000)])
        argv = [sys.executable, "-m", "fs_guard", "replay", str(trace), "--top", "0"]
        controller, terminal = pty.openpty()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL)
        os.close(terminal)
        shown = b""
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            assert ready, "no end of output within 60 s"
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        os.close(controller)
        out, _ = child.communicate(timeout=60)
        assert child.returncode == 0 and b"calls:" in out
        assert b"\rfs-guard replay: big.jsonl: 65,536 lines (" in shown and shown.endswith(b"\r\x1b[K")
        piped = subprocess.run(argv, capture_output=True, timeout=60)
        assert piped.returncode == 0 and piped.stderr == b""


# -- in a browser --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    """The bundled trace's page, what Chromium made of it, and the report it was drawn from."""
    scratch = tmp_path_factory.mktemp("chromium")
    page = scratch / "demo.html"
    report = command.replay_files([command.BUNDLED_TRACE], None, command.load_or_report(command.DEMO_CONFIG),
                                  shipped_jail(), None, timeline=Timeline())
    report_html.write(report, str(page))
    picture = screenshot(page, scratch, scratch / "top.png", 1000, 1000)
    return page, Charts(dump_dom(page, scratch)).charts, picture, report


class TestInChromium:
    def test_every_chart_is_drawn_with_one_mark_per_non_zero_value(self, demo_page):
        _, charts, _, report = demo_page
        timeline, limits = report.timeline, report.limits.limits
        hit = [index for index, summary in enumerate(limits) if any(s.limit == summary.limit.name
                                                                   for s in timeline.hits)]
        # Six shipped limits are hit on the bundled day: four by the satellite-pumping account, the
        # country fan-out by the other stolen account, the high-risk list by its calls.
        assert set(charts) == {"attempts", "sources", "countries", "number-types",
                               *(f"limit-{index}" for index in hit)} and len(hit) == 6
        attempts = charts["attempts"]
        assert attempts.bars == sum(1 for counts in timeline.counts for count in counts if count) > 100
        assert attempts.markers == len({int((ban.at - timeline.starts[0]) // timeline.width) for ban in report.bans})
        sources = charts["sources"]
        assert sources.bars == sum(len(o.reasons) + (o.attempts > o.offences) for o in report.offenders)
        assert sources.texts == [report_html._fate(o.bans, o.stopped) for o in reversed(report.offenders)]
        assert "  banned 1×, 595 attempts dropped at the firewall" in sources.texts
        for index in hit:
            name = limits[index].limit.name
            drawn = charts[f"limit-{index}"]
            assert drawn.markers == sum(len(s.bins) for s in timeline.hits if s.limit == name) > 0
            threshold = limits[index].limit.thresholds()[0][1]
            assert drawn.shapes >= (threshold.warning is not None) + (threshold.critical is not None) > 0  # its lines

    def test_the_destination_charts_draw_the_text_reports_countries_and_types(self, demo_page):
        _, charts, _, report = demo_page
        found = report.destinations
        assert (len(found.countries), found.country_count, len(found.types)) == (10, 20, 9)
        for ident, title, rows, rule in (
                ("countries", "Top destination countries", found.countries, report_html.DENY_COUNTRIES),
                ("number-types", "Destination number types", found.types, report_html.DENY_NUMBER_TYPES)):
            drawn = charts[ident]
            assert drawn.title == title
            assert drawn.bars == sum(len(row.reasons) + (row.accepted > 0) for row in rows)
            assert drawn.texts == [report_html._deny(rule, row) for row in reversed(rows)]
        assert "  deny_countries would stop 1,191 more" in charts["countries"].texts  # GB: the office's own calls
        assert "  deny_number_types would stop 1,213 more" in charts["number-types"].texts  # fixed_line

    def test_the_picture_shows_rejects_register_failures_and_accepted_calls(self, demo_page):
        _, _, png, _ = demo_page
        width, height, colours = png_colours(png)
        assert (width, height) == (1000, 1000)
        rejected, failures, accepted = (colours.get(rgb(SERIES[i]), 0) for i in (REJECTED, REGISTER_FAILED, ACCEPTED))
        assert rejected > 500 and failures > 200 and accepted > 200
        assert len(colours) > 100  # text, axes, bars: not a blank page
