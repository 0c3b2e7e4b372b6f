"""fs-guard replay and demo: trace readers, the screen's decisions, fail2ban's window, the report."""

from __future__ import annotations

import gzip
import io
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import freeswitch
import pytest

from fs_guard.fsconf import bundle

from fs_guard.offline import cli, replay, traces

from fs_guard.runtime import sofia_events, state
from fs_guard.runtime.banlog import line
from fs_guard.runtime.offence import call_fields, registration_fields
from fs_guard.offline.cli import replay as command
from fs_guard.runtime.config import compile_config
from fs_guard.offline.replay import Jail, JailError, Replay
from fs_guard.offline.traces import CALL, END, REGISTER_FAILURE, UNTIL_HANGUP, Trace, parse_time

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOG = Path(__file__).parent / "data" / "freeswitch-sample.log"
T0 = 1795860000.0  # 2026-11-28T10:00:00Z
JAIL = Jail(maxretry=5, findtime=180.0, bantime=86400.0)


def jsonl(path: Path, records: List[Dict[str, Any]], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + extra)
    return path


def call(at: float, ip: Optional[str] = "203.0.113.7", number: Optional[str] = "0044123456",
         context: str = "public", ua: Optional[str] = None) -> Dict[str, Any]:
    return {"time": at, "ip": ip, "context": context, "number": number, "ua": ua}


def failure(at: float, ip: str = "192.0.2.77", user: str = "1000", **more: str) -> Dict[str, Any]:
    return dict({"time": at, "kind": "register_failure", "ip": ip, "user": user}, **more)


def events(path: Path, fmt: Optional[str] = None) -> List[tuple]:
    return list(Trace(str(path), fmt).read())


def called(at: float, ip: Optional[str], context: str, number: Optional[str], ua: Optional[str] = None,
           account: Optional[str] = None, uuid: Optional[str] = None, duration: Optional[float] = None) -> tuple:
    """A call as the readers yield it."""
    return (at, CALL, ip, context, number, ua, None, account, uuid, duration)


def failed(at: float, ip: str, user: str, ua: Optional[str], profile: Optional[str], host: Optional[str],
           kind: Optional[str]) -> tuple:
    """A register failure as the readers yield it."""
    return (at, REGISTER_FAILURE, ip, "", user, ua, (profile, host, kind), None, None, None)


def ended(at: float, uuid: str) -> tuple:
    """A call's hang-up as the freeswitch.log reader yields it."""
    return (at, END, None, "", None, None, None, None, uuid, None)


def replay_of(records: List[Dict[str, Any]], tmp_path: Path, jail: Jail = JAIL, config=None, ban_log=None):
    engine = Replay(config or compile_config({}, None), jail, ban_log)
    trace = Trace(str(jsonl(tmp_path / "trace.jsonl", records)))
    engine.feed(trace.read())
    return engine.report([trace])


# -- reading traces ---------------------------------------------------------------------


class TestTimes:
    @pytest.mark.parametrize("text, seconds", [
        ("2026-11-28T10:00:00Z", T0),
        ("2026-11-28T10:00:00.250Z", T0 + 0.25),
        ("2026-11-28T11:00:00+01:00", T0),
        ("2026-11-28T10:00:00", T0),  # no offset: UTC
        ("2026-11-28 10:00:00.5", T0 + 0.5),
        ("2026-11-28T10:00:00.1234567Z", T0 + 0.123456),
        ("1795860000", T0),
        ("1795860000.5", T0 + 0.5),
        (1795860000, T0),
        (1795860000.25, T0 + 0.25),
    ])
    def test_iso_8601_and_epoch_seconds(self, text, seconds):
        assert parse_time(text) == pytest.approx(seconds)

    @pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "", "nan", True, None, [1], float("inf")])
    def test_anything_else_is_an_error(self, value):
        with pytest.raises(ValueError):
            parse_time(value)

    @pytest.mark.parametrize("value, unit, divisor", [
        (1795860000_000, "milliseconds", "1,000"),
        ("1795860000000", "milliseconds", "1,000"),
        (1795860000_000_000, "microseconds", "1,000,000"),
        (1795860000_000_000_000, "nanoseconds", "1,000,000,000"),
        (1.79586e18, "nanoseconds", "1,000,000,000"),
    ])
    def test_epoch_milli_micro_and_nanoseconds_are_named_not_taken_as_seconds(self, value, unit, divisor):
        with pytest.raises(traces.TraceError) as error:
            parse_time(value)
        assert f"looks like {unit} since the epoch (2026-11-28T" in str(error.value)
        assert f"give seconds (divide by {divisor})" in str(error.value)

    @pytest.mark.parametrize("value", [1e18 * -1, 1e300, 10 ** 400, -1, 0, "1970-01-01T00:00:00Z",
                                       "2100-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "9999-12-31T23:59:59"],
                             ids=lambda value: str(value)[:24])
    def test_a_time_before_2000_or_from_2100_on_is_an_error_saying_so(self, value):
        with pytest.raises(traces.TraceError, match="is not between 2000 and 2100"):
            parse_time(value)

    def test_the_first_and_last_plausible_times(self):
        assert parse_time("2000-01-01T00:00:00Z") == traces.EARLIEST
        assert parse_time(traces.LATEST - 1) == traces.LATEST - 1

    @pytest.mark.parametrize("time_value", ["1764288000000000000", "1e18", "-1e18", "1e300", "1764288000000"])
    def test_an_implausible_time_is_a_bad_line_never_a_traceback(self, tmp_path, run_cli, time_value):
        path = tmp_path / "t.jsonl"
        path.write_text(f'{{"time":{time_value},"ip":"203.0.113.66","number":"00"}}\n'
                        f'{{"time":{T0},"ip":"203.0.113.66","number":"00"}}\n')
        for json_flag in ((), ("--json",)):
            code, out, err = run_cli("replay", *json_flag, str(path))
            assert code == 0 and "Traceback" not in err
            report = json.loads(out) if json_flag else None
            if report is not None:
                assert report["files"][0]["bad_lines"][0]["line"] == 1
                assert report["first"].startswith("2026-11-28")
            else:
                assert f"{path}:1: time " in out and "period:     2026-11-28T10:00:00.000Z" in out


class TestJsonLines:
    def test_fields_and_defaults(self, tmp_path):
        path = jsonl(tmp_path / "t.jsonl", [
            {"time": "2026-11-28T10:00:00Z", "ip": "203.0.113.7", "context": "public", "number": "0044", "ua": "x"},
            {"time": T0 + 1, "number": "1001"},
            failure(T0 + 2, profile="internal", host="198.51.100.1", type="INVITE", ua="sipcli"),
        ])
        assert events(path) == [
            called(T0, "203.0.113.7", "public", "0044", "x"),
            called(T0 + 1, None, "", "1001"),
            failed(T0 + 2, "192.0.2.77", "1000", "sipcli", "internal", "198.51.100.1", "INVITE"),
        ]

    def test_a_calls_account_uuid_and_duration(self, tmp_path):
        path = jsonl(tmp_path / "t.jsonl", [
            {"time": T0, "ip": "198.51.100.10", "context": "default", "number": "0088216000001",
             "account": "1003@pbx.example", "uuid": "c0ffee00-0000-4000-8000-000000000001", "duration": 1800},
            {"time": T0 + 1, "number": "1001", "duration": "12.5", "account": ""},  # text seconds; "" is none
        ])
        assert events(path) == [
            called(T0, "198.51.100.10", "default", "0088216000001", account="1003@pbx.example",
                   uuid="c0ffee00-0000-4000-8000-000000000001", duration=1800),
            called(T0 + 1, None, "", "1001", duration=12.5),
        ]

    @pytest.mark.parametrize("duration", [-1, "soon", "nan", "inf", True, [60]])
    def test_a_duration_that_is_not_seconds_is_a_bad_line(self, tmp_path, duration):
        trace = Trace(str(jsonl(tmp_path / "t.jsonl", [{"time": T0, "number": "1", "duration": duration}])))
        assert list(trace.read()) == [] and trace.bad == 1
        assert "duration" in trace.bad_lines[0].error

    def test_bad_lines_are_counted_with_their_numbers_and_skipped(self, tmp_path):
        path = tmp_path / "t.jsonl"
        path.write_text("\n".join([
            json.dumps(call(T0)),
            "not json",
            "",  # blank lines are not bad
            json.dumps({"ip": "203.0.113.7"}),
            json.dumps(call(T0, number=1001)),
            json.dumps({"time": T0, "kind": "invite"}),
            "[1, 2]",
            json.dumps(call(T0)) + " {}",
            "   " + json.dumps(call(T0 + 1)),  # leading blanks are fine
            json.dumps({"time": "last tuesday"}),
        ]) + "\n")
        trace = Trace(str(path))
        assert [e[0] for e in trace.read()] == [T0, T0 + 1]
        assert (trace.lines, trace.events, trace.bad) == (10, 2, 7)
        assert [b.line for b in trace.bad_lines] == [2, 4, 5, 6, 7, 8, 10]
        errors = [b.error for b in trace.bad_lines]
        assert errors[0].startswith("not JSON") and errors[1] == "missing time"
        assert "must be text" in errors[2] and "kind must be" in errors[3] and "JSON object" in errors[4]

    @pytest.mark.parametrize("key", ["destination", "Number", "src_ip", "knd"])
    def test_an_unknown_key_is_a_bad_line_naming_it(self, tmp_path, key):
        path = jsonl(tmp_path / "t.jsonl", [{"time": T0, "ip": "203.0.113.7", key: "0044"}, call(T0 + 1)])
        trace = Trace(str(path))
        assert [e[0] for e in trace.read()] == [T0 + 1]
        assert trace.bad_lines == [traces.BadLine(1, f"unknown key {key!r} (a trace's keys: {', '.join(traces.FIELDS)})")]

    def test_every_field_may_be_given_on_any_line(self, tmp_path):
        """Register-failure fields on a call (and the reverse) are known keys: not bad, not used."""
        path = jsonl(tmp_path / "t.jsonl", [dict.fromkeys(traces.FIELDS) | {"time": T0, "number": "1"}])
        assert events(path) == [called(T0, None, "", "1")]

    def test_only_the_first_bad_lines_are_kept_but_all_are_counted(self, tmp_path):
        path = tmp_path / "t.jsonl"
        path.write_text("garbage\n" * 100)
        trace = Trace(str(path))
        assert list(trace.read()) == []
        assert trace.bad == 100 and len(trace.bad_lines) == traces.MAX_BAD_SHOWN


class TestCsv:
    def test_a_header_names_the_columns_in_any_order(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text(
            "number,time,ip,context,ua,kind,user,profile\n"
            '"0044,1",2026-11-28T10:00:00Z,203.0.113.7,public,"a ""quoted"" ua",,,\n'
            ",1795860001,192.0.2.77,,friendly-scanner,register_failure,1000,internal\n"
        )
        assert events(path) == [
            called(T0, "203.0.113.7", "public", "0044,1", 'a "quoted" ua'),
            failed(T0 + 1, "192.0.2.77", "1000", "friendly-scanner", "internal", None, None),
        ]

    def test_account_uuid_and_duration_columns(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text("time,ip,context,number,account,uuid,duration\n"
                        "1795860000,198.51.100.10,default,0088216000001,1003@pbx.example,c0ffee,1800\n"
                        "1795860001,198.51.100.10,default,1001,,,\n")
        assert events(path) == [
            called(T0, "198.51.100.10", "default", "0088216000001", account="1003@pbx.example", uuid="c0ffee",
                   duration=1800),
            called(T0 + 1, "198.51.100.10", "default", "1001"),
        ]

    def test_without_a_header_the_documented_order_applies(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text("1795860000,call,203.0.113.7,public,0044,\n"
                        "1795860001,register_failure,192.0.2.77,,,sipcli,1000,internal,198.51.100.1,REGISTER\n")
        assert events(path) == [
            called(T0, "203.0.113.7", "public", "0044"),
            failed(T0 + 1, "192.0.2.77", "1000", "sipcli", "internal", "198.51.100.1", "REGISTER"),
        ]

    def test_columns_that_are_no_trace_field_are_ignored_and_named_in_the_report(self, tmp_path, run_cli):
        path = tmp_path / "t.csv"
        path.write_text("Time,caller_id_name,IP,number,billsec,\n1795860000,Bob,203.0.113.7,0044,12,\n")
        trace = Trace(str(path))
        assert list(trace.read()) == [called(T0, "203.0.113.7", "", "0044")]
        assert trace.ignored_columns == ("caller_id_name", "billsec")
        code, out, _ = run_cli("replay", str(path))
        assert f"input:      {path} (csv): 2 lines, 1 attempts; columns ignored: caller_id_name,billsec" in out
        code, out, _ = run_cli("replay", "--json", str(path))
        assert json.loads(out)["files"][0]["ignored_columns"] == ["caller_id_name", "billsec"]

    @pytest.mark.parametrize("header, error", [
        ("time,ip,destination,foo", "the header has no number column, so no call can be read "
                                    "(columns: time,ip,destination,foo; a file of register failures only needs "
                                    "a kind column)"),
        ("time,ip,number,ip", "the header names the ip column twice"),
    ])
    def test_a_header_that_cannot_be_read_refuses_the_file_at_it_naming_why(self, tmp_path, run_cli, header, error):
        path = tmp_path / "t.csv"
        path.write_text(f"{header}\n1795860000,203.0.113.7,0044,x\n")
        trace = Trace(str(path))
        assert list(trace.read()) == [] and trace.bad_lines == [traces.BadLine(1, error)]
        code, out, err = run_cli("replay", str(path))
        assert code == command.NOT_A_TRACE and out == ""
        assert err.splitlines()[1:] == [f"  {path}:1: {error}"]

    def test_without_a_number_column_register_failures_are_read_and_calls_are_bad_lines(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text("time,kind,ip,user\n1795860000,register_failure,192.0.2.77,1000\n1795860001,,192.0.2.77,\n")
        trace = Trace(str(path))
        assert list(trace.read()) == [failed(T0, "192.0.2.77", "1000", None, None, None, None)]
        assert trace.bad_lines == [traces.BadLine(3, "a call needs a number: the header (line 1) has no number column")]

    def test_bad_rows_are_counted_with_their_line_numbers(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text("time,ip,number\n"
                        "1795860000,203.0.113.7,0044\n"
                        "1795860000,203.0.113.7\n"
                        "\n"
                        "soon,203.0.113.7,0044\n"
                        '1795860001,"203.0.113.7\nstill the same row",0044\n'
                        "1795860002,203.0.113.8,1\n")
        trace = Trace(str(path))
        assert [e[0] for e in trace.read()] == [T0, T0 + 1, T0 + 2]
        assert [(b.line, b.error.split(" ")[0]) for b in trace.bad_lines] == [(3, "2"), (5, "time")]
        assert trace.lines == 8


class TestFreeSwitchLog:
    def test_the_sample_log(self, utc):
        trace = Trace(str(SAMPLE_LOG))
        first, transferred = "8398b0ce-8012-4f1e-b466-92022bf4471c", "5f0e7a3c-1111-4a2b-9c3d-0123456789ab"
        assert list(trace.read()) == [
            # 1.10.12: uuid, CPU idle, "receiving invite" at INFO with call-id; it lasts until its Hangup line
            called(T0 + 1.25, "203.0.113.7", "public", "0044207946000", uuid=first, duration=UNTIL_HANGUP),
            ended(T0 + 1.26, first),
            # one call, two dialplan hunts (public transfers to default): the screen runs in both
            called(T0 + 2.01, "198.51.100.200", "public", "1000", uuid=transferred, duration=UNTIL_HANGUP),
            called(T0 + 2.03, "198.51.100.200", "default", "1000", uuid=transferred, duration=UNTIL_HANGUP),
            # 1.6: no CPU column, invite at DEBUG without call-id; IPv6 source; a hostile display name
            called(T0 + 3.5, "2001:db8::bad", "public", "011972595123", uuid="a0a0a0a0-2222-4b2b-8c3c-abcdefabcdef",
                   duration=UNTIL_HANGUP),
            # a call-id that repeats "receiving invite from" cannot move the address
            called(T0 + 4.1, "203.0.113.50", "public", "+4420", uuid="b1b1b1b1-3333-4c3c-9d4d-bcdefabcdefa",
                   duration=UNTIL_HANGUP),
            # lines without uuids: paired with the latest invite; no uuid, so no known end
            called(T0 + 5.01, "198.51.100.10", "default", "1001"),
            # auth failures; a challenge is not one; "Can't find user" and the failure line right after
            # it from the same address are one attempt (one 403, one sofia::register_failure)
            failed(T0 + 6, "192.0.2.77", "1000", None, "internal", "198.51.100.1", "REGISTER"),
            failed(T0 + 6.5, "192.0.2.78", "] from ip 1.2.3.4", None, "internal", "", "INVITE"),
        ]
        assert (trace.format, trace.lines, trace.events) == ("fslog", 27, 8)
        assert [b.line for b in trace.bad_lines] == [25, 26]

    def test_a_dialplan_line_without_its_invite_line_has_no_address(self, tmp_path, utc):
        path = tmp_path / "freeswitch.log"
        path.write_text("2026-11-28 10:00:00.000000 [INFO] mod_dialplan_xml.c:639 Processing a <b>->0044 in context public\n")
        assert events(path) == [called(T0, None, "public", "0044")]

    def test_a_calls_end_is_its_hangup_line_whoever_hung_up(self, tmp_path, utc):
        call_id = "8398b0ce-8012-4f1e-b466-92022bf4471c"
        path = tmp_path / "freeswitch.log"
        path.write_text(
            f"{call_id} 2026-11-28 10:00:00.000000 97.53% [INFO] mod_dialplan_xml.c:639 Processing a <b>->1001 "
            "in context default\n"
            f"{call_id} 2026-11-28 10:00:30.000000 97.53% [NOTICE] switch_channel.c:3933 Callstate Change ACTIVE -> "
            "HANGUP\n"
            f"{call_id} 2026-11-28 10:05:00.500000 97.53% [NOTICE] sofia.c:1075 Hangup sofia/internal/1000@198.51.100.1 "
            "[CS_EXCHANGE_MEDIA] [NORMAL_CLEARING]\n"
            # another module's text that says Hangup, and a Hangup line with no uuid: neither ends a call
            f"{call_id} 2026-11-28 10:05:01.000000 97.53% [INFO] mod_lua.cpp:203 Hangup requested by the script\n"
            "2026-11-28 10:05:02.000000 97.53% [NOTICE] mod_dptools.c:1 Hangup sofia/x [CS_EXECUTE] [NORMAL_CLEARING]\n"
        )
        trace = Trace(str(path))
        assert list(trace.read()) == [called(T0, None, "default", "1001", uuid=call_id, duration=UNTIL_HANGUP),
                                      ended(T0 + 300.5, call_id)]
        assert (trace.events, trace.bad) == (1, 0)  # a hang-up is not an attempt

    def test_timestamps_are_local_time(self, tmp_path, monkeypatch):
        path = tmp_path / "freeswitch.log"
        path.write_text("2026-11-28 11:00:00.000000 [INFO] mod_dialplan_xml.c:639 Processing a <b>->1 in context public\n")
        monkeypatch.setenv("TZ", "CET-1")
        time.tzset()
        try:
            assert events(path)[0][0] == T0
        finally:
            monkeypatch.undo()
            time.tzset()


class TestCdr:
    """mod_cdr_csv's Master.csv, as its shipped templates write it (no header, no escaping)."""

    UUID = "0a1b2c3d-0000-4000-8000-000000000001"
    # the vanilla cdr_csv.conf.xml's "example" template: 15 fields
    EXAMPLE = ('"Office 1003","1003","0088216000001","default","2026-11-28 10:00:00","2026-11-28 10:00:05",'
               '"2026-11-28 10:30:00","1800","1795","NORMAL_CLEARING","' + UUID + '","","1003","PCMA","PCMA"\n')
    # mod_cdr_csv's built-in "default": the first 13, a space before accountcode; an unanswered call
    DEFAULT = ('"","4455","0044207946000","public","2026-11-28 10:00:01","","2026-11-28 10:00:01","0","0",'
               '"CALL_REJECTED","' + UUID[:-1] + '2",""' + ', ""\n')

    def test_both_shipped_templates(self, tmp_path, utc):
        path = tmp_path / "Master.csv"
        path.write_text(self.EXAMPLE + self.DEFAULT)
        trace = Trace(str(path))
        assert list(trace.read()) == [
            # no source address in a CDR; the accountcode is the account
            called(T0, None, "default", "0088216000001", account="1003", uuid=self.UUID, duration=1800),
            called(T0 + 1, None, "public", "0044207946000", uuid=self.UUID[:-1] + "2", duration=0),
        ]
        assert (trace.format, trace.events, trace.bad) == ("cdr", 2, 0)

    def test_by_content_whatever_the_name_and_gzipped(self, tmp_path, utc):
        path = tmp_path / "Master.csv.2026-11-28-10-00-00.gz"  # rotated by mod_cdr_csv, then compressed
        path.write_bytes(gzip.compress(self.EXAMPLE.encode()))
        trace = Trace(str(path))
        assert [e[4] for e in trace.read()] == ["0088216000001"] and trace.format == "cdr"
        assert traces.detect_format("export.csv", "time,ip,number") == "csv"
        assert traces.detect_format("cdr.log", self.EXAMPLE) == "fslog"  # an extension that says otherwise wins

    def test_a_callers_name_with_quotes_or_commas_cannot_move_the_fields(self, tmp_path, utc):
        lines = [self.EXAMPLE.replace("Office 1003", name, 1)
                 for name in ('Bob "the" Builder', "Smith, John", 'x","y","z', '"', 'a", "b')]
        lines.append(self.DEFAULT.replace('""', '"a","b","c"', 1))  # the default template, three names' worth
        path = tmp_path / "Master.csv"
        path.write_text("".join(lines))
        trace = Trace(str(path))
        read = list(trace.read())
        assert [(e[3], e[4], e[7], e[9]) for e in read] == [("default", "0088216000001", "1003", 1800)] * 5 + [
            ("public", "0044207946000", None, 0)]
        assert trace.bad == 0

    def test_broken_lines_are_bad_lines_with_their_numbers(self, tmp_path, utc):
        path = tmp_path / "Master.csv"
        path.write_text(self.EXAMPLE + self.EXAMPLE.replace("Office 1003", "Bob\nSmith")  # a name over two lines
                        + "\n" + self.EXAMPLE.replace("2026-11-28 10:30:00", "soon") + self.EXAMPLE)
        trace = Trace(str(path))
        assert len(list(trace.read())) == 2 and trace.bad == 3
        assert [b.line for b in trace.bad_lines] == [2, 3, 5]
        assert trace.bad_lines[0].error.startswith("not a CDR line")
        assert trace.bad_lines[2].error.startswith("15 quoted fields without start, answer and end stamps")

    def test_times_are_local_and_the_duration_is_end_minus_start_when_missing(self, tmp_path, monkeypatch):
        path = tmp_path / "Master.csv"
        path.write_text(self.EXAMPLE.replace("10:", "11:").replace('"1800"', '""'))
        monkeypatch.setenv("TZ", "CET-1")
        time.tzset()
        try:
            ((when, *_, duration),) = events(path)
        finally:
            monkeypatch.undo()
            time.tzset()
        assert (when, duration) == (T0, 1800)

    def test_calls_are_read_in_the_order_they_started(self, tmp_path, utc):
        # mod_cdr_csv writes a CDR when the call ends: the long call that started first comes last
        short = self.EXAMPLE.replace("10:00:00", "10:10:00").replace("10:00:05", "10:10:05").replace(
            "10:30:00", "10:11:00").replace('"1800"', '"60"')
        path = tmp_path / "Master.csv"
        path.write_text(short + self.EXAMPLE)
        assert [e[0] - T0 for e in events(path)] == [0, 600]

    def test_chosen_with_format_cdr(self, tmp_path, run_cli, utc):
        path = tmp_path / "calls.txt"
        path.write_text(self.EXAMPLE * 3)
        report = json.loads(run_cli("replay", str(path), "--format", "cdr", "--json")[1])
        assert report["files"][0]["format"] == "cdr" and report["calls"] == 3
        # the built-in defaults deny 00: offences without a source address write no ban line
        assert report["ban_lines"] == {"no valid source address": 3}


class TestFiles:
    def test_gzip_is_read_transparently_whatever_the_name(self, tmp_path):
        plain = jsonl(tmp_path / "t.jsonl", [call(T0), call(T0 + 1)])
        packed = tmp_path / "t.data"
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        trace = Trace(str(packed))
        assert list(trace.read()) == events(plain) and trace.format == "jsonl"  # from the content

    def test_a_cut_gzip_file_keeps_what_was_read_and_reports_a_bad_line(self, tmp_path):
        data = gzip.compress("".join(json.dumps(call(T0 + i)) + "\n" for i in range(2000)).encode())
        path = tmp_path / "t.jsonl.gz"
        path.write_bytes(data[: len(data) // 2])
        trace = Trace(str(path))
        got = list(trace.read())
        assert 0 < len(got) < 2000 and trace.bad == 1
        assert "cut or corrupt" in trace.bad_lines[0].error

    @pytest.mark.parametrize("name, first, fmt", [
        ("a.jsonl", "x", "jsonl"), ("a.ndjson.gz", "x", "jsonl"), ("a.csv", "{", "csv"), ("freeswitch.log", "{", "fslog"),
        ("trace", '{"time": 1}', "jsonl"), ("freeswitch.log.1", "2026-11-28 10:00:00.000100 [INFO] x.c:1 y", "fslog"),
        ("export.txt", "time,ip,number", "csv"),
        ("console.txt", "8398b0ce-8012-4f1e-b466-92022bf4471c 2026-11-28 10:00:00.000100 97.53% [INFO] x.c:1 y", "fslog"),
    ])
    def test_format_by_extension_else_by_content(self, name, first, fmt):
        assert traces.detect_format(name, first) == fmt


# -- the replay: decisions, counts, fail2ban ----------------------------------------------


class TestReport:
    def test_counts_by_reason_context_and_address(self, tmp_path):
        report = replay_of([
            call(T0, number="0044123"),
            call(T0 + 1, number="+44123"),
            call(T0 + 2, number="1234567890123"),
            call(T0 + 3, number="1001", context="default", ip="198.51.100.10"),
            call(T0 + 4, number="0049", context="default", ip="198.51.100.10"),
            call(T0 + 5, number=None, ip="2001:db8::1"),
            failure(T0 + 6),
            failure(T0 + 7),
        ], tmp_path)
        assert (report.calls, report.accepted, report.rejected, report.register_failures) == (6, 1, 5, 2)
        assert dict(report.by_reason) == {"deny_prefix": 3, "too_long": 1, "empty_number": 1, "register_failure": 2}
        assert report.by_context == (("public", 4), ("default", 1))
        assert dict(report.ban_lines) == {"banned": 7}
        assert [(o.address, o.offences) for o in report.offenders] == [
            ("203.0.113.7", 3), ("192.0.2.77", 2), ("198.51.100.10", 1), ("2001:db8::1", 1)]
        assert report.offenders[0].reasons == (("deny_prefix", 2), ("too_long", 1))
        assert (report.first, report.last) == (T0, T0 + 7)
        assert report.bans == ()

    def test_offences_without_a_ban_line_are_counted_by_why_and_never_feed_fail2ban(self, tmp_path):
        config = compile_config({"trusted_networks": ["198.51.100.0/24"],
                                 "contexts": {"lab": {"monitor": True}, "quiet": {"ban": False}}}, None)
        records = [call(T0 + i, ip="198.51.100.7") for i in range(6)]
        records += [call(T0 + i, ip="203.0.113.7", context="lab") for i in range(6)]
        records += [call(T0 + i, ip="203.0.113.8", context="quiet") for i in range(6)]
        records += [call(T0 + i, ip="not-an-ip") for i in range(6)]
        report = replay_of(records, tmp_path, config=config)
        assert dict(report.ban_lines) == {"trusted network": 6, "monitor": 6, "ban lines off": 6,
                                          "no valid source address": 6}
        assert (report.rejected, report.monitored) == (18, 6)
        assert report.bans == ()

    def test_an_ipv4_mapped_address_is_the_ipv4_address(self, tmp_path):
        report = replay_of([call(T0, ip="::ffff:203.0.113.7"), call(T0 + 1, ip="203.0.113.7")], tmp_path)
        assert [(o.address, o.offences) for o in report.offenders] == [("203.0.113.7", 2)]


class TestFail2banWindow:
    """maxretry 5 within findtime 180 s, bantime 1 day (the shipped jail)."""

    def bans(self, tmp_path, times, jail=JAIL, ip="203.0.113.7"):
        report = replay_of([call(T0 + t, ip=ip) for t in times], tmp_path, jail=jail)
        return [(b.address, b.at - T0) for b in report.bans], report

    def test_five_failures_exactly_findtime_apart_end_to_end_ban(self, tmp_path):
        assert self.bans(tmp_path, [0, 45, 90, 135, 180])[0] == [("203.0.113.7", 180)]

    def test_one_second_beyond_findtime_does_not(self, tmp_path):
        assert self.bans(tmp_path, [0, 45, 90, 135, 181])[0] == []

    def test_the_window_slides(self, tmp_path):
        # at 181 the failure at 0 has left the window; at 200 the five since 100 are within 180 s
        assert self.bans(tmp_path, [0, 100, 150, 170, 181, 200])[0] == [("203.0.113.7", 200)]
        # at 280 the failure at 100 is exactly findtime old and still counts; at 290 it is out
        assert self.bans(tmp_path, [0, 100, 150, 170, 280, 290])[0] == []
        assert self.bans(tmp_path, [0, 100, 150, 170, 270, 280])[0] == [("203.0.113.7", 280)]

    def test_four_failures_never_ban(self, tmp_path):
        bans, report = self.bans(tmp_path, [0, 1, 2, 3])
        assert bans == [] and report.offenders[0].offences == 4

    def test_attempts_while_banned_are_stopped_and_do_not_count(self, tmp_path):
        day = 86400
        times = [0, 1, 2, 3, 4] + [5, 6, 7, 8, 9] + [day + 4] + [day + 10, day + 11, day + 12, day + 13]
        bans, report = self.bans(tmp_path, times)
        # banned at 4 until day + 4: the five in between are dropped at the firewall; at day + 4
        # exactly the ban is over and counting starts again from zero: the fifth failure is day + 13
        assert bans == [("203.0.113.7", 4), ("203.0.113.7", day + 13)]
        assert report.stopped == 5 and report.offenders[0].stopped == 5 and report.offenders[0].bans == 2

    def test_accepted_calls_from_a_banned_address_are_stopped_too(self, tmp_path):
        records = [call(T0 + i) for i in range(5)] + [call(T0 + 10, number="1001")]
        report = replay_of(records, tmp_path)
        assert report.stopped == 1

    def test_register_failures_count_toward_the_ban(self, tmp_path):
        records = [call(T0, ip="192.0.2.77"), call(T0 + 1, ip="192.0.2.77")] + [failure(T0 + i) for i in (2, 3, 4)]
        assert [b.at for b in replay_of(records, tmp_path).bans] == [T0 + 4]

    def test_input_order_does_not_matter(self, tmp_path):
        assert self.bans(tmp_path, [180, 90, 0, 135, 45])[0] == [("203.0.113.7", 180)]

    def test_bantime_minus_one_is_for_ever(self, tmp_path):
        jail = Jail(maxretry=2, findtime=10, bantime=float("inf"))
        bans, report = self.bans(tmp_path, [0, 1, 10 ** 7, 10 ** 7 + 1], jail=jail)
        assert bans == [("203.0.113.7", 1)] and report.stopped == 2

    def test_addresses_in_ignoreip_are_never_banned(self, tmp_path):
        jail = Jail(maxretry=2, findtime=10, bantime=60, ignore=(ipaddress.ip_network("203.0.113.0/24"),))
        bans, report = self.bans(tmp_path, [0, 1, 2], jail=jail)
        assert bans == [] and report.ignored_by_jail == ("203.0.113.7",)


class TestJail:
    def test_the_shipped_jail(self):
        jail = replay.shipped_jail()
        assert (jail.maxretry, jail.findtime, jail.bantime) == (5, 180, 86400)
        assert jail.source.endswith(os.path.join("fail2ban", "jail.d", "fs-guard.conf"))

    def test_without_the_shipped_jail_the_same_values_are_built_in(self, monkeypatch):
        def missing(*_):
            raise bundle.BundleMissing("gone")
        monkeypatch.setattr(bundle, "path", missing)
        assert replay.shipped_jail() == Jail()

    def test_fail2ban_time_units_a_local_override_and_fail2ban_defaults(self, tmp_path):
        (tmp_path / "j.conf").write_text("[DEFAULT]\nbantime = 1h\n[fs-guard]\nmaxretry = 3\nfindtime = 1m30s\n"
                                         "ignoreip = 127.0.0.1/8 ::1 pbx.example.com\n")
        (tmp_path / "j.local").write_text("[fs-guard]\nmaxretry = 4\n")
        jail = replay.load_jail(str(tmp_path / "j.conf"))
        assert (jail.maxretry, jail.findtime, jail.bantime) == (4, 90, 3600)
        assert [str(n) for n in jail.ignore] == ["127.0.0.0/8", "::1/128"]
        (tmp_path / "k.conf").write_text("[fs-guard]\nbantime = -1\n")
        jail = replay.load_jail(str(tmp_path / "k.conf"))
        assert (jail.maxretry, jail.findtime, jail.bantime) == (5, 600, float("inf"))

    @pytest.mark.parametrize("text, error", [
        ("[other]\nmaxretry = 5\n", "no [fs-guard] section (name the jail file that has one, "
                                     "e.g. /etc/fail2ban/jail.d/fs-guard.conf)"),
        ("[fs-guard]\nmaxretry = many\n", "maxretry 'many' is not a positive whole number"),
        ("[fs-guard]\nfindtime = soon\n", "'soon' is not a time (seconds, or a number with s, m, h, d or w)"),
        ("no section", "line 1: text before any [section]: not a fail2ban jail file"),
        ("[fs-guard]\nmaxretry = 3\njunk\n", "line 3: neither [section] nor 'key = value'"),
        ("[fs-guard]\nmaxretry = 3\nmaxretry = 4\n", "line 3: maxretry given twice in [fs-guard] (remove one)"),
        ("[fs-guard]\n[fs-guard]\n", "line 2: section [fs-guard] given twice (remove one)"),
    ])
    def test_a_bad_jail_is_one_line_naming_the_file_and_what_is_wrong(self, tmp_path, text, error):
        (tmp_path / "j.conf").write_text(text)
        with pytest.raises(JailError) as caught:
            replay.load_jail(str(tmp_path / "j.conf"))
        assert str(caught.value) == f"{tmp_path / 'j.conf'}: {error}"

    def test_a_missing_or_binary_jail_is_one_line_not_python_exception_text(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0)])
        (tmp_path / "ls").write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff" * 10)
        (tmp_path / "j.conf").write_text("[fs-guard]\n")
        (tmp_path / "j.local").write_bytes(b"\xd0\xff")
        for path, error in [(tmp_path / "missing.conf", "cannot read: No such file or directory"),
                            (tmp_path / "ls", "is not a text file (fail2ban jail files are UTF-8 text)"),
                            (tmp_path / "j.local", "is not a text file (fail2ban jail files are UTF-8 text)")]:
            jail = tmp_path / "j.conf" if path.suffix == ".local" else path
            assert run_cli("replay", str(trace), "--jail", str(jail)) == (2, "", f"fs-guard: jail {path}: {error}\n")


# -- the screen's own decisions -------------------------------------------------------------

SCREEN_CONFIG = {
    "allowed_characters": "0123456789+",
    "deny_prefix": ["00", "+", "011"],
    "deny_user_agent": ["sipvicious", "friendly-scanner"],
    "trusted_networks": ["192.0.2.0/24"],
    "contexts": {
        "default": {"destination_number_max_len": 16, "allow_prefix": ["1", "0"]},
        "lab": {"monitor": True},
        "quiet": {"ban": False},
    },
}
SCREEN_CASES = [  # (number, context, source address, user agent)
    ("1001", "default", "198.51.100.10", "Yealink SIP-T46S"),
    ("0044123456", "public", "203.0.113.7", "friendly-scanner"),
    ("+4420794600", "public", "203.0.113.7", None),
    ("01144123", "public", "203.0.113.7", None),
    ("1234567890123", "public", "::ffff:203.0.113.8", None),
    ("1234567890123", "default", "203.0.113.8", None),
    ("", "public", "203.0.113.9", None),
    (None, "public", "203.0.113.9", None),
    ("12a", "public", "2001:db8::1", None),
    ("1001", "public", "203.0.113.10", "SIPVicious-scan 0.3"),
    ("2001", "default", "203.0.113.14", None),
    ("0049", "default", "192.0.2.10", None),
    ("0049", "lab", "203.0.113.11", None),
    ("0049", "quiet", "203.0.113.12", None),
    ("0049", "public", "not-an-ip", None),
    ("0049", "public", None, None),
    ("0049", "", "203.0.113.15", None),
    ('00"] ip[6.6.6.6]\nx', "public", "203.0.113.13", 'ua\x00"\u00e9'),
    ("1001", "public", "203.0.113.16", "x" * 70000),
]


class TestSameAsTheScreen:
    def test_every_decision_and_ban_line_is_the_screens(self, call, ban_log, write_config, tmp_path, run_cli):
        write_config(SCREEN_CONFIG)
        sessions = [call(number, context=context, ip=ip, ua=ua) for number, context, ip, ua in SCREEN_CASES]
        screen_lines = ban_log.lines()
        trace = jsonl(tmp_path / "trace.jsonl", [
            {"time": T0 + i, "ip": ip, "context": context, "number": number, "ua": ua}
            for i, (number, context, ip, ua) in enumerate(SCREEN_CASES)
        ])
        out_path = tmp_path / "would-ban.log"
        code, out, _ = run_cli("replay", str(trace), "--ban-log", str(out_path), "--json")
        assert code == 0
        report = json.loads(out)
        replay_lines = out_path.read_text(encoding="ascii").splitlines()
        assert len(screen_lines) == 11
        assert [line.split(" ", 1)[1] for line in replay_lines] == [line.split(" ", 1)[1] for line in screen_lines]
        rejected = sum(s.hangupCause() == "CALL_REJECTED" for s in sessions)
        stats = state.STATS.snapshot()
        assert report["rejected"] == rejected == stats["calls_rejected"]
        assert report["monitor_would_reject"] == stats.get("monitor_would_reject", 0) == 1
        assert report["accepted"] == stats["calls_accepted"]
        assert report["ban_lines"]["trusted network"] == stats["not_banned_trusted"] == 1
        assert report["ban_lines"]["no valid source address"] == stats["not_banned_bad_address"] == 2

    def test_each_call_alone_gets_the_screens_verdict(self, call, write_config, tmp_path):
        write_config(SCREEN_CONFIG)
        config = state.CONFIG.current()
        for number, context, ip, ua in SCREEN_CASES:
            session = call(number, context=context, ip=ip, ua=ua)
            report = replay_of([{"time": T0, "ip": ip, "context": context, "number": number, "ua": ua}],
                               tmp_path, config=config)
            screened = "rejected" if session.hangupCause() == "CALL_REJECTED" else "passed"
            replayed = "rejected" if report.rejected else "passed"
            assert (number, context, screened) == (number, context, replayed)

    def test_register_failure_lines_are_the_hooks(self, ban_log, write_config, tmp_path):
        write_config({"trusted_networks": ["198.51.100.0/24"]})
        cases = [("203.0.113.7", "1000", "friendly-scanner", "REGISTER"), ("::ffff:192.0.2.5", "1001", None, "INVITE"),
                 ("198.51.100.3", "1002", "x", "REGISTER"), ("garbage", "1003", "y", "REGISTER"),
                 ("2001:db8::7", 'a"] ip[6.6.6.6]', "z\n", "REGISTER")]
        for ip, user, ua, kind in cases:
            event = freeswitch.Event("CUSTOM", "sofia::register_failure")
            for name, value in [("profile-name", "internal"), ("to-user", user), ("to-host", "198.51.100.1"),
                                ("network-ip", ip), ("user-agent", ua), ("registration-type", kind)]:
                if value is not None:
                    event.addHeader(name, value)
            sofia_events.handle(event)
        hook_lines = ban_log.lines()
        out = io.StringIO()
        report = replay_of([failure(T0 + i, ip=ip, user=user, ua=ua, profile="internal", host="198.51.100.1", type=kind)
                            for i, (ip, user, ua, kind) in enumerate(cases)],
                           tmp_path, config=state.CONFIG.current(), ban_log=out)
        assert [line.split(" ", 1)[1] for line in out.getvalue().splitlines()] == [
            line.split(" ", 1)[1] for line in hook_lines]
        assert len(hook_lines) == 3 and report.register_failures == 5

    def test_ban_log_lines_carry_the_traces_times(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0 + 0.25, ua="friendly-scanner"), failure(T0 + 1, ua="sipcli")])
        out = tmp_path / "b.log"
        assert run_cli("replay", str(trace), "--ban-log", str(out))[0] == 0
        assert out.read_text().splitlines() == [
            line("203.0.113.7", "deny_prefix", call_fields("public", "0044123456", "friendly-scanner"), now=T0 + 0.25),
            line("192.0.2.77", "register_failure", registration_fields(None, "1000", None, "sipcli", ""), now=T0 + 1),
        ]
        assert out.read_text().startswith("2026-11-28T10:00:00.250+00:00 ip[203.0.113.7] reason=deny_prefix ")


# -- the command ------------------------------------------------------------------------------


class TestCommand:
    def test_json_report(self, tmp_path, run_cli, utc):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0 + i) for i in range(5)] + [call(T0 + 9, number="1001")], "oops\n")
        code, out, err = run_cli("replay", str(trace), str(SAMPLE_LOG), "--json")
        assert code == 0 and err == ""
        report = json.loads(out)
        assert [(f["format"], f["lines"], f["events"], f["bad"]) for f in report["files"]] == [
            ("jsonl", 7, 6, 1), ("fslog", 27, 8, 2)]
        assert report["files"][0]["bad_lines"] == [{"line": 7, "error": report["files"][0]["bad_lines"][0]["error"]}]
        assert (report["calls"], report["accepted"], report["rejected"], report["register_failures"]) == (12, 5, 7, 2)
        assert report["offences_by_reason"] == {"deny_prefix": 6, "register_failure": 2, "too_long": 1}
        assert report["rejected_by_context"] == {"public": 7}
        # 203.0.113.7: the trace's offences at +0..+4 s and the log's at +1.25 s: the fifth is at +3 s
        assert report["bans"] == [{"address": "203.0.113.7", "at": "2026-11-28T10:00:03.000Z",
                                   "until": "2026-11-29T10:00:03.000Z", "failures": 5}]
        assert report["stopped_by_firewall"] == 2  # the offence at +4 s and the accepted call at +9 s
        assert report["top_offenders"][0] == {"address": "203.0.113.7", "attempts": 7, "offences": 6,
                                              "reasons": {"deny_prefix": 5, "too_long": 1}, "bans": 1, "stopped": 2}
        assert report["jail"]["maxretry"] == 5 and report["first"] == "2026-11-28T10:00:00.000Z"

    def test_text_report(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0 + i) for i in range(5)], "oops\n")
        code, out, _ = run_cli("replay", str(trace))
        assert code == 0
        assert "calls:                      5   accepted 0, rejected 5" in out
        assert "fail2ban would ban 1 address (1 ban):" in out
        assert "2026-11-28T10:00:04.000Z  203.0.113.7" in out
        assert f"{trace}:6: not JSON" in out

    def test_progress_only_on_a_terminal(self, tmp_path, run_cli, monkeypatch):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0 + i) for i in range(50)])
        assert run_cli("replay", str(trace)).err == ""

        class Terminal(io.StringIO):
            def isatty(self):
                return True

        terminal = Terminal()
        monkeypatch.setattr(traces, "PROGRESS_EVERY", 16)
        monkeypatch.setattr(sys, "stderr", terminal)
        assert cli.main(["replay", str(trace)]) == 0
        assert "t.jsonl: 48 lines" in terminal.getvalue() and terminal.getvalue().endswith("\r\x1b[K")

    def test_errors(self, tmp_path, run_cli, write_config, ban_log):
        assert run_cli("replay", str(tmp_path / "missing.jsonl"))[0] == 2
        (tmp_path / "j.conf").write_text("[other]\n")
        trace = jsonl(tmp_path / "t.jsonl", [call(T0)])
        code, _, err = run_cli("replay", str(trace), "--jail", str(tmp_path / "j.conf"))
        assert code == 2 and "[fs-guard]" in err
        code, _, err = run_cli("replay", str(trace), "--ban-log", str(ban_log.path))
        assert code == 2 and "refusing" in err and not ban_log.path.exists()
        write_config({"denny_prefix": ["00"]})
        code, _, err = run_cli("replay", str(trace))
        assert code == 2 and "denny_prefix" in err

    def test_top_0_lists_no_address_and_a_negative_top_is_a_usage_error(self, tmp_path, capsys, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0, ip="203.0.113.1"), call(T0, ip="203.0.113.2")])
        report = json.loads(run_cli("replay", str(trace), "--json", "--top", "0")[1])
        assert report["top_offenders"] == [] and report["rejected"] == 2
        assert len(json.loads(run_cli("replay", str(trace), "--json", "--top", "1")[1])["top_offenders"]) == 1
        for top, error in (("-1", "argument --top: -1 is negative (0 lists no address)"),
                           ("x", "argument --top: 'x' is not a whole number")):
            with pytest.raises(SystemExit) as stopped:
                cli.main(["replay", str(trace), "--top", top])
            err = capsys.readouterr().err
            assert stopped.value.code == 2 and err.startswith("usage: ") and err.endswith(f"fs-guard: error: {error}\n")

    def test_a_ban_log_that_cannot_be_written_is_refused_before_replaying(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0)])
        target = tmp_path / "no-such-dir" / "would-ban.log"
        assert run_cli("replay", str(trace), "--ban-log", str(target)) == (
            2, "", f"fs-guard: cannot write --ban-log {target}: No such file or directory (create the directory first)\n")
        assert run_cli("replay", str(trace), "--ban-log", str(tmp_path)) == (
            2, "", f"fs-guard: cannot write --ban-log {tmp_path}: Is a directory\n")

    def test_the_configuration_is_the_screens(self, tmp_path, run_cli, write_config):
        write_config({"deny_prefix": ["9"]})
        trace = jsonl(tmp_path / "t.jsonl", [call(T0, number="0044"), call(T0, number="900")])
        report = json.loads(run_cli("replay", str(trace), "--json")[1])
        assert report["offences_by_reason"] == {"deny_prefix": 1} and report["config"].endswith("fs_guard.json")


class TestNotATrace:
    """A file with no attempt (or, as JSON Lines or CSV, more bad lines than attempts) is no all-clear."""

    QUIET_LOG = ("2026-11-28 10:00:00.000100 97.53% [NOTICE] mod_logfile.c:217 New log started.\n"
                 "2026-11-28 10:00:01.000000 97.53% [DEBUG] sofia.c:10554 verifying acl \"domains\" for ip/port 203.0.113.7:0.\n")
    DIALPLAN = "2026-11-28 10:00:02.000000 [INFO] mod_dialplan_xml.c:639 Processing a <b>->0044 in context public\n"

    @pytest.fixture
    def binary(self, tmp_path):
        path = tmp_path / "ls"
        path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40)
        return path

    @pytest.mark.parametrize("fmt", [None, "jsonl", "csv", "fslog"])
    def test_a_binary_file_exits_3_with_one_line_naming_it_its_bad_lines_and_no_report(self, binary, run_cli, fmt):
        code, out, err = run_cli("replay", str(binary), *(["--format", fmt] if fmt else []))
        assert (code, out) == (command.NOT_A_TRACE, "")
        refusal, *bad = err.splitlines()
        assert refusal.startswith(f"fs-guard: {binary}: ")
        assert "no call or registration attempt found (read as " in refusal
        assert refusal.endswith("not a trace; see fs-guard replay --help for the formats")
        assert len(bad) <= command.REFUSED_SHOWN + 1
        assert all(line.startswith(f"  {binary}:") and line.isprintable() for line in bad)

    def test_a_freeswitch_log_is_a_trace_once_it_holds_one_attempt_whatever_else_it_holds(self, tmp_path, run_cli):
        log = tmp_path / "freeswitch.log"
        log.write_text(self.QUIET_LOG * 50)
        code, out, err = run_cli("replay", str(log))
        assert (code, out) == (3, "") and "no call or registration attempt found (read as fslog)" in err
        log.write_text(self.QUIET_LOG * 50 + self.DIALPLAN)
        assert run_cli("replay", str(log))[0] == 0

    def test_a_refused_file_is_followed_by_its_first_bad_lines_and_why(self, tmp_path, run_cli):
        path = tmp_path / "t.jsonl"
        path.write_text("".join(json.dumps({"time": T0 + n, "destination": "00"}) + "\n" for n in range(8)))
        code, out, err = run_cli("replay", str(path))
        assert code == command.NOT_A_TRACE and out == ""
        shown = err.splitlines()[1:]
        assert len(shown) == command.REFUSED_SHOWN + 1
        assert shown[0] == f"  {path}:1: unknown key 'destination' (a trace's keys: {', '.join(traces.FIELDS)})"
        assert shown[-1] == f"  {path}: ... and {8 - command.REFUSED_SHOWN} more"

    def test_json_lines_with_more_bad_lines_than_attempts_is_not_a_trace(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0)], "oops\noops\n")
        code, out, err = run_cli("replay", str(trace))
        assert (code, out) == (3, "") and "more bad lines (2) than attempts (1) (read as jsonl)" in err
        jsonl(trace, [call(T0), call(T0 + 1)], "oops\noops\n")
        assert run_cli("replay", str(trace))[0] == 0

    def test_an_empty_file_and_dev_null_are_empty_not_missing(self, tmp_path, run_cli):
        (tmp_path / "empty.csv").write_text("")
        for path in (str(tmp_path / "empty.csv"), os.devnull):
            assert run_cli("replay", path) == (3, "", f"fs-guard: {path}: empty: not a trace\n")

    def test_a_directory_is_a_directory_not_missing(self, tmp_path, run_cli):
        code, out, err = run_cli("replay", str(tmp_path))
        assert (code, out) == (2, "") and err.startswith(f"fs-guard: {tmp_path}: is a directory; name the trace files")
        assert "no such file" not in err

    def test_a_pipe_is_read(self, tmp_path, run_cli):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0)])
        os.mkfifo(tmp_path / "pipe")
        writer = subprocess.Popen(["sh", "-c", 'exec cat "$1" > "$2"', "sh", str(trace), str(tmp_path / "pipe")])
        try:
            code, out, _ = run_cli("replay", str(tmp_path / "pipe"))
        finally:
            writer.kill()
            writer.wait()
        assert code == 0 and "calls:                      1" in out

    def test_with_several_files_the_report_covers_the_traces_and_names_the_others(self, tmp_path, run_cli, binary):
        trace = jsonl(tmp_path / "t.jsonl", [call(T0 + i) for i in range(5)])
        code, out, err = run_cli("replay", str(trace), str(binary), "--format", "jsonl")
        assert code == 3 and "fail2ban would ban 1 address" in out
        assert f"input:      {binary} (jsonl): " in out and "NOT A TRACE (no call or registration attempt found)" in out
        assert err.startswith(f"fs-guard: {binary}: no call or registration attempt found")
        assert all(line.startswith(f"  {binary}:") for line in err.splitlines()[1:])
        code, out, _ = run_cli("replay", str(trace), str(binary), "--format", "jsonl", "--json")
        assert code == 3
        assert [f["not_a_trace"] for f in json.loads(out)["files"]] == [None, "no call or registration attempt found"]

    def test_the_exit_status_and_the_rule_are_in_the_help(self, capsys):
        with pytest.raises(SystemExit):
            cli.main(["replay", "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "3 a file held no trace" in text and "more bad lines than attempts" in text


class TestDemo:
    def test_demo_replays_the_bundled_trace_on_the_demo_configuration(self, run_cli, write_config):
        write_config({"deny_prefix": ["9"]})  # a located configuration does not change the demo
        code, out, _ = run_cli("demo", "--json")
        assert code == 0
        report = json.loads(out)
        assert report["config"] == command.DEMO_CONFIG and report["files"][0]["path"] == command.BUNDLED_TRACE
        assert report["files"][0]["bad"] == 0 and 3000 <= report["events"] <= 5000
        assert set(report["offences_by_reason"]) == {"too_long", "deny_prefix", "scanner_user_agent",
                                                     "register_failure", "denied_number_type"}
        # The office's calls all pass; in default, only the hacked phone's premium-rate numbers are rejected.
        assert report["rejected_by_context"] == {"public": report["rejected"] - 40, "default": 40}
        assert report["offences_by_reason"]["denied_number_type"] == 40
        assert report["banned_addresses"] == 8 and report["stopped_by_firewall"] > 1000
        banned = {ban["address"] for ban in report["bans"]}
        assert "203.0.113.160" in banned  # where the hacked phone's account was used from
        assert "203.0.113.45" not in banned  # the slow scanner stays under maxretry in findtime
        assert "198.51.100.23" not in banned  # the phone with a stale password
        assert json.loads(run_cli("replay", "--json")[1]) == report

    def test_the_demo_shows_the_stolen_accounts_caught_by_the_shipped_limits_and_nobody_else(self, run_cli):
        report = json.loads(run_cli("demo", "--json")[1])["limits"]
        caught = {limit["name"]: {key["key"] for key in limit["critical_keys"]} for limit in report["limits"]}
        assert caught == {"ip-call-rate": set(),
                          "account-call-rate": {"1003@pbx.example"},
                          "account-concurrent": {"1003@pbx.example"},
                          "account-international-fanout": {"1003@pbx.example"},
                          "account-premium-networks": {"1003@pbx.example/00882"},
                          "account-country-fanout": {"1008@pbx.example"},  # eight countries in twenty minutes
                          "high-risk-destinations": set()}  # warnings only: monitor, never reject
        frauds = ("1003@", "1008@", "203.0.113.170")
        for limit in report["limits"]:
            assert limit["rejected"] == 0 and limit["alerted"] == limit["hits"]["critical"]  # alert mode
            for metric, peaks in limit["peaks"].items():
                # every other key (the office's other accounts, the trunk) stays at or below the warning
                assert all(entry["count"] <= peaks["warning"] for entry in peaks["top"]
                           if not entry["key"].startswith(frauds)), (limit["name"], metric)
        high_risk = next(limit for limit in report["limits"] if limit["name"] == "high-risk-destinations")
        assert high_risk["hits"] == {"warning": 8, "critical": 0}  # each fan-out call to a listed country
        assert [entry["key"] for entry in high_risk["peaks"]["calls"]["top"]] == ["203.0.113.170"]
        assert report["without_end"] == 0 and report["out_of_order"] == 0

    def test_the_demo_reports_destinations_by_country_and_type(self, run_cli):
        report = json.loads(run_cli("demo", "--json")[1])["destinations"]
        countries = {row["name"]: row for row in report["top_countries"]}
        assert countries["GB"]["reasons"]["denied_number_type"] == 40
        types = {row["name"]: row for row in report["number_types"]}
        assert types["premium_rate"]["accepted"] == 0
        assert countries["001"]["accepted"] == 80  # the stolen account's satellite numbers: no country rule stops them

    def test_the_demo_text_report_names_the_stolen_account(self, run_cli):
        out = run_cli("demo")[1]
        assert "rules:      " + command.DEMO_CONFIG in out
        assert "account-premium-networks       1003@pbx.example/00882       2026-11-28T01:30:" in out

    def test_the_demo_configuration_is_the_shipped_one_for_an_office_that_calls_abroad(self):
        shipped = json.loads(bundle.read(bundle.FREESWITCH, "fs_guard.json"))["fail2ban"]
        demo = json.loads(Path(command.DEMO_CONFIG).read_text())["fail2ban"]
        assert demo["limits"] == shipped["limits"]  # one source of truth: the shipped example limits
        assert demo["contexts"]["default"] == {"deny_prefix": ["+", "011"], "destination_number_max_len": 16}
        # Only where the office is (the demo's is in London) and its default context differ.
        assert {key: value for key, value in demo.items() if key not in ("contexts", "dialling")} == \
            {key: value for key, value in shipped.items() if key not in ("contexts", "dialling")}
        assert (demo["dialling"], shipped["dialling"]) == ({"region": "GB"}, {"region": "US"})
        assert demo["contexts"]["public"] == shipped["contexts"]["public"]

    def test_the_bundled_trace_uses_documentation_addresses_only(self):
        networks = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]
        addresses = {event[2] for event in Trace(command.BUNDLED_TRACE).read()}
        assert addresses and all(any(ipaddress.ip_address(a) in n for n in networks) for a in addresses)

    def test_the_generator_makes_the_bundled_trace_byte_for_byte(self, tmp_path):
        out = tmp_path / "trace.jsonl.gz"
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_attack_trace.py"), "-o", str(out)],
                       check=True, capture_output=True)
        assert out.read_bytes() == Path(command.BUNDLED_TRACE).read_bytes()

    def test_the_generator_writes_the_same_attempts_as_csv_freeswitch_log_and_cdr(self, tmp_path, utc):
        script = str(ROOT / "scripts" / "make_attack_trace.py")
        for fmt, name in (("csv", "t.csv"), ("fslog", "freeswitch.log"), ("cdr", "Master.csv")):
            subprocess.run([sys.executable, script, "--format", fmt, "-o", str(tmp_path / name)],
                           check=True, capture_output=True, env=dict(os.environ, TZ="UTC"))
        as_json = [e for e in Trace(command.BUNDLED_TRACE).read()]
        as_csv = [e for e in Trace(str(tmp_path / "t.csv")).read()]
        as_log = [e for e in Trace(str(tmp_path / "freeswitch.log")).read()]
        cdr = Trace(str(tmp_path / "Master.csv"))
        as_cdr = list(cdr.read())
        assert as_csv == as_json
        attempts = [e for e in as_log if e[1] != END]
        assert [e[1:5] for e in attempts] == [e[1:5] for e in as_json]
        assert all(abs(a[0] - b[0]) < 0.001 for a, b in zip(attempts, as_json))
        # every call of the log ends, at its start plus its duration
        calls = {e[8]: e[0] for e in attempts}
        assert {e[8]: round(e[0] - calls[e[8]]) for e in as_log if e[1] == END} == {
            e[8]: round(j[9]) for e, j in zip(attempts, as_json) if e[1] == CALL}
        # the CDR: calls only (a register failure has no channel), whole seconds, the user id as accountcode
        assert cdr.format == "cdr" and cdr.bad == 0
        assert sorted((int(e[0]), e[3], e[4], e[7], e[9]) for e in as_cdr) == sorted(
            (int(e[0]), e[3], e[4], e[7] and e[7].split("@")[0], e[9]) for e in as_json if e[1] == CALL)
