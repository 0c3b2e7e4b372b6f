"""Replay reads FreeSWITCH's log as operators have it: every line form, as data.

tests/data/freeswitch-log-forms.log holds the samples (fail2ban's own FreeSWITCH samples
and more), each line with what fail2ban's freeswitch filter finds on it in its normal mode
and what replay reads from it; one test per sample. Then: over the whole file replay finds
every address fail2ban finds and none that was only challenged, and the real
fail2ban-regex agrees with the annotations (skipped without fail2ban unless
FS_GUARD_REQUIRE_FAIL2BAN is set).
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

import fail2ban_support as f2b
from fs_guard.offline import cli
from fs_guard.offline.traces import CALL, END, REGISTER_FAILURE, SAME_ATTEMPT, UNTIL_HANGUP, Trace

FORMS = Path(__file__).parent / "data" / "freeswitch-log-forms.log"
SAMPLES = f2b.read_samples(FORMS)
ANNOTATED = [line for sample in SAMPLES for line in sample]
#: The file's last change, which dates its year-less lines: fail2ban's tests' "now".
LAST_CHANGE = datetime(2005, 8, 14, 10, 0, tzinfo=timezone.utc).timestamp()
#: An unknown user's line that FreeSWITCH follows with the failure line of the same 403.
COUNTED_WITH_NEXT = "same attempt as the failure line below"
#: fail2ban's own filter; the prefix of fail2ban 1.1 (gh-3143, a CPU percentage before the
#: level), which fail2ban 1.0.2 (Debian 12) lacks.
FAIL2BAN_FILTER = '/etc/fail2ban/filter.d/freeswitch.conf[mode=normal, _pref_line="^%(__prefix_line)s[^\\[]*"]'
_CHALLENGE = re.compile(r"SIP auth challenge \(\w+\) .* from ip (\S+)$")


def seconds(local: str) -> float:
    """A failJSON time (local time, read as UTC here) as the readers give it."""
    return round(datetime.fromisoformat(local).replace(tzinfo=timezone.utc).timestamp(), 6)


def expected(replay: dict) -> tuple:
    """An event as the freeswitch.log reader yields it, from its annotation."""
    kind = replay.get("kind", REGISTER_FAILURE)
    when = seconds(replay["time"])
    if kind == CALL:
        uuid = replay["uuid"]
        return (when, CALL, replay["ip"], replay["context"], replay["number"], None, None, None, uuid,
                UNTIL_HANGUP if uuid else None)
    if kind == END:
        return (when, END, None, "", None, None, None, None, replay["uuid"], None)
    return (when, REGISTER_FAILURE, replay["ip"], "", replay["user"], None,
            (replay["profile"], replay["host"], replay["type"]), None, None, None)


def read(path: Path) -> list:
    """Every event of ``path`` read as a FreeSWITCH log last changed at LAST_CHANGE, time rounded to 1 µs."""
    os.utime(path, (LAST_CHANGE, LAST_CHANGE))
    trace = Trace(str(path), "fslog")
    events = [(round(e[0], 6),) + e[1:] for e in trace.read()]
    assert trace.bad_lines == []
    return events


def log_of(lines, tmp_path: Path) -> Path:
    path = tmp_path / "freeswitch.log"
    path.write_text("".join(a.line + "\n" for a in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize("sample", SAMPLES, ids=[f"line{sample[0].lineno}" for sample in SAMPLES])
def test_each_sample_reads_as_annotated(sample, tmp_path, utc):
    want = [expected(a.expect["replay"]) for a in sample if isinstance(a.expect["replay"], dict)]
    assert sorted(read(log_of(sample, tmp_path)), key=repr) == sorted(want, key=repr)


def test_the_samples_annotate_every_line_and_cover_every_form():
    for a in ANNOTATED:
        replay = a.expect["replay"]
        assert replay is None or replay == COUNTED_WITH_NEXT or isinstance(replay, dict), a
        assert ("host" in a.expect) == a.expect["match"], a
    lines = [a.line for a in ANNOTATED]
    assert len(set(lines)) == len(lines), "sample lines must be unique"
    forms = {
        "unknown user": "Can't find user [",
        "REGISTER failure": "SIP auth failure (REGISTER) on",
        "INVITE failure": "SIP auth failure (INVITE) on",
        "REGISTER challenge": "SIP auth challenge (REGISTER)",
        "INVITE challenge": "SIP auth challenge (INVITE)",
        "[WARN] [SOFIA] [file:line]": "[WARN] [SOFIA] [sofia_reg.c:",
        "CPU percentage": "% [WARNING]",
        "journal": "]: 20",
        "BSD syslog": "Nov 28 ",
        "no year": "\n08-",
        "uuid column": "\n8398b0ce-",
    }
    text = "\n" + "\n".join(lines)
    assert [name for name, marker in forms.items() if marker not in text] == []


def test_an_unknown_users_line_counts_once_with_the_failure_line_that_follows_it():
    """With log-auth-failures=true mod_sofia writes both for one 403 and fires one event."""
    for sample in SAMPLES:
        for i, a in enumerate(sample):
            if a.expect["replay"] == COUNTED_WITH_NEXT:
                then = next(b for b in sample[i + 1:] if isinstance(b.expect["replay"], dict))
                assert "SIP auth failure (" in then.line and then.expect["replay"]["ip"] == a.expect["host"]
                gap = seconds(then.expect["replay"]["time"]) - seconds(a.line[:26].replace(" ", "T"))
                assert 0 <= gap <= SAME_ATTEMPT


def test_over_the_whole_file_replay_finds_every_address_fail2ban_finds_and_none_only_challenged(tmp_path, utc):
    events = read(log_of(ANNOTATED, tmp_path))
    found = {e[2] for e in events if e[1] == REGISTER_FAILURE}
    assert {a.expect["host"] for a in ANNOTATED if a.expect["match"]} <= found
    fail2ban_sample = {"5.11.47.236", "185.24.234.141", "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4",
                       "192.0.2.5"}  # the seven addresses fail2ban's own sample file matches in normal mode
    assert fail2ban_sample <= found
    challenged = {m.group(1) for a in ANNOTATED if (m := _CHALLENGE.search(a.line))}
    elsewhere = {a.expect.get("host") for a in ANNOTATED if not _CHALLENGE.search(a.line)}
    only_challenged = challenged - elsewhere
    assert len(only_challenged) >= 5 and not only_challenged & {e[2] for e in events}
    expected_failures = sum(1 for a in ANNOTATED if isinstance(a.expect["replay"], dict)
                            and a.expect["replay"].get("kind", REGISTER_FAILURE) == REGISTER_FAILURE)
    assert sum(1 for e in events if e[1] == REGISTER_FAILURE) == expected_failures


def test_the_command_reports_them_as_register_failures(tmp_path, capsys, utc):
    path = log_of(ANNOTATED, tmp_path)
    os.utime(path, (LAST_CHANGE, LAST_CHANGE))
    assert cli.main(["replay", str(path), "--json", "--top", "100"]) == 0
    report = json.loads(capsys.readouterr().out)
    offenders = {o["address"]: o["reasons"] for o in report["top_offenders"]}
    for a in ANNOTATED:
        if a.expect["match"]:
            assert "register_failure" in offenders[a.expect["host"]], a
    assert report["offences_by_reason"]["register_failure"] == report["register_failures"]


def test_a_stamp_without_a_year_takes_the_year_of_the_files_last_change_or_the_one_before(tmp_path, utc):
    """fail2ban's rule (its strptime: the current year, or the last one when that would put
    the line more than a day ahead), with the file's last change in place of the clock."""
    path = tmp_path / "freeswitch.log"
    path.write_text("".join(
        f"{stamp}.000000 [WARNING] sofia_reg.c:3210 Can't find user [1@pbx] from 192.0.2.{i}\n"
        for i, stamp in enumerate(["12-31 23:59:59", "01-01 00:00:10", "01-02 11:59:00", "01-02 12:01:00",
                                   "02-29 10:00:00"], 1)))
    last_change = datetime(2027, 1, 1, 12, 0, tzinfo=timezone.utc).timestamp()
    os.utime(path, (last_change, last_change))
    trace = Trace(str(path), "fslog")
    assert [datetime.fromtimestamp(e[0], timezone.utc).isoformat() for e in trace.read()] == [
        "2026-12-31T23:59:59+00:00", "2027-01-01T00:00:10+00:00",
        "2027-01-02T11:59:00+00:00",  # within a day after the last change: this year
        "2026-01-02T12:01:00+00:00",  # more than a day after it: the year before
    ]
    assert [b.line for b in trace.bad_lines] == [5]  # 2026-02-29 does not exist


@pytest.mark.fail2ban
def test_fail2bans_own_freeswitch_filter_finds_what_the_samples_say(tmp_path):
    tools = f2b.need_fail2ban("fail2ban-regex")
    if not Path(FAIL2BAN_FILTER.split("[")[0]).is_file():
        f2b.missing("fail2ban's freeswitch filter is not installed (/etc/fail2ban/filter.d/freeswitch.conf)")
    path = log_of(ANNOTATED, tmp_path)
    matches = f2b.regex_matches(tools["fail2ban-regex"], path, FAIL2BAN_FILTER)  # type: ignore[arg-type]
    by_line = {}
    for m in matches:
        by_line.setdefault(m.line, []).append(m.ip)
    for a in ANNOTATED:
        assert by_line.get(a.line, []) == ([a.expect["host"]] if a.expect["match"] else []), a
