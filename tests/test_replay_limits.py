"""fs-guard replay with fraud limits: the screen's counting on the trace's own clock, and the
report an operator picks thresholds from."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional

import fsctl
from modpython import run_app

from fs_guard.offline.replay import Jail, Replay
from fs_guard.offline.traces import Trace
from fs_guard.runtime import state
from fs_guard.runtime.banlog import line
from fs_guard.runtime.config import parse_config
from fs_guard.runtime.offence import limit_fields

T0 = 1795860000.0  # 2026-11-28T10:00:00Z
JAIL = Jail(maxretry=5, findtime=180.0, bantime=86400.0)
TRUNK = "198.51.100.200"
OFFICE = "1001@pbx.example"


def config(*limits: Dict[str, Any], **section: Any):
    return parse_config(json.dumps({"fail2ban": {"deny_prefix": ["9"], "destination_number_max_len": 16,
                                                 "limits": list(limits), **section}}), "t.json")


def limit(name: str, by: str = "account", **spec: Any) -> Dict[str, Any]:
    return {"name": name, "by": by, **spec}


def attempt(at: float, number: str = "1002", context: str = "default", ip: Optional[str] = "198.51.100.10",
         account: Optional[str] = OFFICE, **more: Any) -> Dict[str, Any]:
    record = {"time": T0 + at, "ip": ip, "context": context, "number": number, "account": account, **more}
    return {key: value for key, value in record.items() if value is not None}


def write(path: Path, records: List[Dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def replay(tmp_path: Path, records: List[Dict[str, Any]], conf, name: str = "trace.jsonl"):
    """The report, and the ban lines replay would have written."""
    out = io.StringIO()
    engine = Replay(conf, JAIL, out)
    trace = Trace(str(write(tmp_path / name, records)))
    engine.feed(trace.read())
    return engine.report([trace]), out.getvalue().splitlines()


def verdicts(tmp_path: Path, records: List[Dict[str, Any]], conf) -> List[str]:
    """Each call's fate, in order: ``accept`` or the reason it was rejected."""
    engine = Replay(conf, JAIL)
    seen: Counter = Counter()
    fates = []
    for event in Trace(str(write(tmp_path / "trace.jsonl", records))).read():
        accepted = engine.accepted
        engine.feed([event])
        reasons = Counter(dict(engine.report().by_reason))
        fates.append("accept" if engine.accepted > accepted else next(iter(reasons - seen)))
        seen = reasons
    return fates


def summary(report, name: str):
    (found,) = [s for s in report.limits.limits if s.limit.name == name]
    return found


# -- time, transfers, concurrency ---------------------------------------------------------


class TestTraceTime:
    def test_windows_are_counted_on_the_traces_own_times_to_the_edge(self, tmp_path):
        conf = config(limit("ip-rate", by="source_ip", window=60, calls={"critical": 2}, action="reject"))
        report, ban_lines = replay(tmp_path, [
            attempt(0, ip="203.0.113.9"), attempt(30, ip="203.0.113.9"),
            attempt(59.999, ip="203.0.113.9"),  # three in (-0.001, 59.999]: rejected
            attempt(60, ip="203.0.113.9"),  # the call at 0 is exactly 60 s old: out of the window
            attempt(60, ip="203.0.113.9"),  # 30, 60, 60: rejected
        ], conf)
        assert (report.accepted, report.rejected, dict(report.by_reason)) == (3, 2, {"limit": 2})
        fields = limit_fields("ip-rate", "default", "1002", None)
        assert ban_lines == [line("203.0.113.9", "limit", fields, now=T0 + 59.999),
                             line("203.0.113.9", "limit", fields, now=T0 + 60)]

    def test_the_wall_clock_plays_no_part(self, tmp_path, monkeypatch):
        conf = config(limit("rate", window=60, calls={"critical": 1}, action="reject"))
        monkeypatch.setattr(time, "time", lambda: T0 + 10 ** 6)  # a month later: windows are the trace's
        assert verdicts(tmp_path, [attempt(0), attempt(1), attempt(61)], conf) == ["accept", "limit", "accept"]

    def test_only_calls_the_rules_accept_are_counted(self, tmp_path):
        conf = config(limit("rate", window=60, calls={"critical": 1}, action="reject"))
        assert verdicts(tmp_path, [attempt(0, number="900"), attempt(1), attempt(2, number="901"), attempt(3)], conf) == [
            "deny_prefix", "accept", "deny_prefix", "limit"]


class TestTransfer:
    def test_a_call_screened_again_after_a_transfer_counts_once_per_limit_by_its_uuid(self, tmp_path):
        conf = config(limit("rate", window=60, calls={"critical": 1}, action="reject"),
                      limit("default-only", contexts=["default"], window=60, calls={"critical": 1}, action="reject"))
        uuid = "5f0e7a3c-1111-4a2b-9c3d-0123456789ab"
        transferred = [attempt(0, number="1000", context="public", uuid=uuid), attempt(0.02, number="1000", uuid=uuid)]
        # "rate" counted it in public and skips it in default; "default-only" counts it there once
        assert verdicts(tmp_path, transferred, conf) == ["accept", "accept"]
        # two different calls: the second is the second call of the account
        assert verdicts(tmp_path, [attempt(0, number="1000", context="public"), attempt(0.02, number="1000")], conf) == [
            "accept", "limit"]


class TestConcurrency:
    LIMIT = limit("up", concurrent={"critical": 1}, action="reject")

    def test_a_call_holds_its_slot_until_its_start_plus_its_duration(self, tmp_path):
        report, _ = replay(tmp_path, [
            attempt(0, duration=60),
            attempt(30, duration=10),  # the first is up: 2 > 1
            attempt(60, duration=10),  # the first ended at 60: released before this call
            attempt(65, duration=10),  # the one at 60 is up
        ], config(self.LIMIT))
        assert verdicts(tmp_path, [attempt(0, duration=60), attempt(30, duration=10), attempt(60, duration=10),
                                   attempt(65, duration=10)], config(self.LIMIT)) == ["accept", "limit", "accept", "limit"]
        assert (report.limits.with_end, report.limits.without_end) == (4, 0)

    def test_a_call_without_a_known_end_is_not_counted_and_the_report_says_so(self, tmp_path, run_cli):
        records = [attempt(0, duration=600), attempt(1), attempt(2)]
        assert verdicts(tmp_path, records, config(self.LIMIT)) == ["accept", "accept", "accept"]
        report, _ = replay(tmp_path, records, config(self.LIMIT))
        assert (report.limits.with_end, report.limits.without_end) == (1, 2)
        conf_path = tmp_path / "c.json"
        conf_path.write_text(json.dumps({"fail2ban": {"limits": [self.LIMIT]}}))
        out = run_cli("replay", str(tmp_path / "trace.jsonl"), "--config", str(conf_path))[1]
        assert "2 calls had no known end (no duration; no uuid in a freeswitch.log): not counted toward concurrent" in out

    def test_in_a_freeswitch_log_a_call_ends_at_its_hangup_line(self, tmp_path, monkeypatch):
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        log = tmp_path / "freeswitch.log"
        lines = []
        for n, (start, end) in enumerate([("10:00:00", "10:05:00"), ("10:01:00", "10:01:05"), ("10:05:00", None)]):
            uuid = f"8398b0ce-8012-4f1e-b466-92022bf4471{n}"
            lines.append(f"{uuid} 2026-11-28 {start}.000000 97.53% [INFO] sofia.c:10460 sofia/external/1@x "
                         f"receiving invite from 203.0.113.7:5060 version: 1.10.12\n")
            lines.append(f"{uuid} 2026-11-28 {start}.000000 97.53% [INFO] mod_dialplan_xml.c:639 Processing 1 <1>->100"
                         f"{n} in context public\n")
            if end:
                lines.append(f"{uuid} 2026-11-28 {end}.000000 97.53% [NOTICE] sofia.c:1075 Hangup sofia/external/1@x "
                             "[CS_EXCHANGE_MEDIA] [NORMAL_CLEARING]\n")
        log.write_text("".join(sorted(lines, key=lambda text: text.split(" ")[2])))
        try:
            engine = Replay(config(limit("up", by="source_ip", concurrent={"critical": 1}, action="reject")), JAIL)
            trace = Trace(str(log))
            engine.feed(trace.read())
            report = engine.report([trace])
        finally:
            monkeypatch.undo()
            time.tzset()
        # the second call comes while the first is up; the third after the first's Hangup line
        assert (report.accepted, report.rejected, report.limits.with_end) == (2, 1, 3)


# -- several files, time order ------------------------------------------------------------------


class TestOrder:
    LIMIT = limit("rate", by="source_ip", window=60, calls={"critical": 2}, action="reject")

    def test_files_are_merged_in_time_order(self, tmp_path, run_cli):
        records = [attempt(t, ip="203.0.113.9") for t in (0, 10, 20, 70, 80, 90, 100)]
        write(tmp_path / "a.jsonl", records[0::2])  # 0, 20, 80, 100
        write(tmp_path / "b.jsonl", records[1::2])  # 10, 70, 90
        write(tmp_path / "all.jsonl", records)
        (tmp_path / "c.json").write_text(json.dumps({"fail2ban": {"deny_prefix": [], "limits": [self.LIMIT]}}))
        merged = json.loads(run_cli("replay", str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
                                "--config", str(tmp_path / "c.json"), "--json")[1])
        whole = json.loads(run_cli("replay", str(tmp_path / "all.jsonl"), "--config", str(tmp_path / "c.json"),
                               "--json")[1])
        # 20 (after 0, 10), 90 and 100 (after 70, 80: 20 was rejected, so it never counted)
        assert merged["rejected"] == whole["rejected"] == 3
        assert merged["limits"] == whole["limits"] and merged["limits"]["out_of_order"] == 0

    def test_calls_that_go_back_in_time_are_counted_and_decided_at_their_own_time(self, tmp_path, run_cli):
        records = [attempt(0, ip="203.0.113.9"), attempt(100, ip="203.0.113.9"), attempt(99.5, ip="203.0.113.9"),
                   attempt(50, ip="203.0.113.9")]
        report, _ = replay(tmp_path, records, config(self.LIMIT))
        assert report.limits.out_of_order == 1  # 99.5 is within a second of 100; 50 is not
        (tmp_path / "c.json").write_text(json.dumps({"fail2ban": {"deny_prefix": [], "limits": [self.LIMIT]}}))
        out = run_cli("replay", str(tmp_path / "trace.jsonl"), "--config", str(tmp_path / "c.json"))[1]
        assert "1 calls came more than 1 s after a later one (input out of time order)" in out


# -- the report ----------------------------------------------------------------------------------------------


class TestReport:
    LIMITS = [
        limit("ip-rate", by="source_ip", contexts=["public"], window=60, calls={"warning": 1, "critical": 2},
              action="reject"),
        limit("fanout", by="account_prefix", prefixes=["00882"], window=3600, distinct_numbers={"warning": 1,
              "critical": 2}, action="reject", block_for=600),
        limit("acct-rate", window=60, calls={"warning": 2, "critical": 3}),
    ]
    RECORDS = [
        attempt(0, number="4420", context="public", ip=TRUNK, account=None),
        attempt(1, number="4421", context="public", ip=TRUNK, account=None),  # 2 > 1: warning
        attempt(2, number="4422", context="public", ip=TRUNK, account=None),  # 3 > 2: rejected, a ban line
        attempt(10, number="0088216000001", ip="203.0.113.150", account="1003@pbx.example"),
        attempt(11, number="0088216000002", ip="203.0.113.150", account="1003@pbx.example"),  # fan-out warning
        attempt(12, number="0088216000003", ip="203.0.113.150", account="1003@pbx.example"),  # critical: blocked
        attempt(13, number="1001", ip="203.0.113.150", account="1003@pbx.example"),  # rejected by the block
        attempt(20, number="1002"), attempt(21, number="1003"), attempt(22, number="1004"), attempt(23, number="1005"),
    ]

    def test_per_limit_hits_rejections_critical_keys_blocks_and_peaks(self, tmp_path):
        report, _ = replay(tmp_path, self.RECORDS, config(*self.LIMITS))
        assert (report.limits.screened, report.limits.rejected) == (11, 3)
        ip, fanout, rate = (summary(report, name) for name in ("ip-rate", "fanout", "acct-rate"))
        assert (ip.warning, ip.critical, ip.rejected, ip.alerted) == (1, 1, 1, 0)
        assert (fanout.warning, fanout.critical, fanout.rejected, fanout.blocked_calls) == (1, 1, 2, 1)
        assert [(b.identity, b.key, b.at - T0, b.until - T0) for b in fanout.blocks] == [
            ("account:1003@pbx.example", "1003@pbx.example/00882", 12, 612)]
        # acct-rate is an alert: its critical hit (the 4th call of 1001 in 60 s) lets the call through
        # (and its warning when 1003's third call, rejected by fanout, was its third in 60 s)
        assert (rate.warning, rate.critical, rate.rejected, rate.alerted) == (2, 1, 0, 1)
        assert [(k.key, k.first - T0, k.peak) for k in rate.critical_keys] == [(OFFICE, 23, (("calls", 4),))]
        # peaks: every key's highest count, the call included, highest first
        (peaks,) = rate.peaks
        assert (peaks.metric, peaks.highest, peaks.top) == ("calls", 4, ((OFFICE, 4), ("1003@pbx.example", 3)))
        assert summary(report, "ip-rate").peaks[0].top == ((TRUNK, 3),)

    def test_the_text_report(self, tmp_path, run_cli):
        write(tmp_path / "trace.jsonl", self.RECORDS)
        (tmp_path / "c.json").write_text(json.dumps({"fail2ban": {"deny_prefix": ["9"], "destination_number_max_len": 16,
                                                                 "limits": self.LIMITS}}))
        out = run_cli("replay", str(tmp_path / "trace.jsonl"), "--config", str(tmp_path / "c.json"))[1]
        section = out[out.index("fraud limits"):].splitlines()
        assert section[:5] == [
            "fraud limits, on the traces' own times: 11 calls screened (the rules accepted them, in a context with limits), 3 rejected",
            "  limit                          action   warning critical rejected  alerted",
            "  ip-rate                        reject         1        1        1        0",
            "  fanout                         reject         1        1        2        0",
            "  acct-rate                      alert          2        1        0        1",
        ]
        assert "  ip-rate                        198.51.100.200               2026-11-28T10:00:02.000Z  calls 3" in out
        assert ("  fanout                         account:1003@pbx.example     2026-11-28T10:00:12.000Z until "
                "2026-11-28T10:10:12.000Z") in out
        assert ("  acct-rate                      calls in 60 s > 2/3                   "
                "1001@pbx.example 4 (critical), 1003@pbx.example 3 (warning)") in out
        assert "offences by reason:\n  limit                            3\n" in out

    def test_the_json_report(self, tmp_path, run_cli):
        write(tmp_path / "trace.jsonl", self.RECORDS)
        (tmp_path / "c.json").write_text(json.dumps({"fail2ban": {"deny_prefix": ["9"], "destination_number_max_len": 16,
                                                                 "limits": self.LIMITS}}))
        report = json.loads(run_cli("replay", str(tmp_path / "trace.jsonl"), "--config", str(tmp_path / "c.json"),
                                "--json")[1])
        limits = report["limits"]
        assert (limits["screened"], limits["rejected"], limits["with_account"], limits["with_address"]) == (11, 3, 8, 11)
        fanout = limits["limits"][1]
        assert fanout == {
            "name": "fanout", "by": "account_prefix", "action": "reject",
            "description": "by account_prefix to 00882; distinct numbers in 3600 s: warning > 1, critical > 2; "
                           "reject, block 600 s, ban lines off",
            "hits": {"warning": 1, "critical": 1}, "rejected": 2, "blocked_calls": 1, "alerted": 0,
            "blocks": [{"identity": "account:1003@pbx.example", "key": "1003@pbx.example/00882",
                        "at": "2026-11-28T10:00:12.000Z", "until": "2026-11-28T10:10:12.000Z"}],
            "critical_keys": [{"key": "1003@pbx.example/00882", "first": "2026-11-28T10:00:12.000Z",
                               "peak": {"distinct_numbers": 3}}],
            "critical_key_count": 1,
            "peaks": {"distinct_numbers": {"warning": 1, "critical": 2, "highest": 3, "cap": 9,
                                           "top": [{"key": "1003@pbx.example/00882", "count": 3}]}},
        }
        # an account limit writes no ban line unless asked; a source_ip one does, and it counts for fail2ban
        assert report["ban_lines"] == {"banned": 1, "ban lines off": 2}
        assert report["offences_by_reason"] == {"limit": 3}

    def test_a_peak_the_tally_stopped_counting_at_reads_at_least(self, tmp_path, run_cli):
        # counts above four times the highest threshold are not kept: 30 numbers peak at 4 x 5 + 1
        write(tmp_path / "trace.jsonl", [attempt(n, number=f"00882160000{n:02d}") for n in range(30)])
        (tmp_path / "c.json").write_text(json.dumps({"fail2ban": {"deny_prefix": [], "destination_number_max_len": 16,
                                                                 "limits": [limit("fanout", window=3600,
                                                                                  distinct_numbers={"critical": 5})]}}))
        out = run_cli("replay", str(tmp_path / "trace.jsonl"), "--config", str(tmp_path / "c.json"))[1]
        assert "distinct_numbers in 3600 s > -/5      1001@pbx.example 21+ (critical)" in out

    def test_without_limits_there_is_no_limits_section(self, tmp_path, run_cli):
        write(tmp_path / "trace.jsonl", self.RECORDS)
        code, out, _ = run_cli("replay", str(tmp_path / "trace.jsonl"))
        assert code == 0 and "fraud limits" not in out
        assert json.loads(run_cli("replay", str(tmp_path / "trace.jsonl"), "--json")[1])["limits"] is None

    def test_monitor_mode_alerts_and_never_rejects(self, tmp_path):
        conf = config(limit("rate", window=60, calls={"critical": 1}, action="reject", block_for=60),
                      contexts={"lab": {"monitor": True}})
        report, _ = replay(tmp_path, [attempt(t, context="lab") for t in range(3)], conf)
        rate = summary(report, "rate")
        assert (report.rejected, rate.critical, rate.rejected, rate.alerted, rate.blocks) == (0, 2, 0, 2, ())

    def test_limit_ban_lines_count_toward_fail2ban(self, tmp_path):
        conf = config(limit("ip-rate", by="source_ip", window=60, calls={"critical": 1}, action="reject"))
        report, _ = replay(tmp_path, [attempt(t, ip="203.0.113.9") for t in range(7)], conf)
        assert report.rejected == 6 and [(b.address, b.at - T0) for b in report.bans] == [("203.0.113.9", 5)]


# -- the same decisions as the live screen ---------------------------------------------------------------------


LIVE_LIMITS = [
    limit("ip-rate", by="source_ip", contexts=["public"], window=60, calls={"warning": 2, "critical": 3},
          action="reject"),
    limit("acct-rate", window=60, calls={"warning": 2, "critical": 4}),
    limit("premium", by="account_prefix", prefixes=["00882"], window=3600, distinct_numbers={"warning": 1,
          "critical": 2}, action="reject", block_for=600, ban=True),
    limit("acct-up", concurrent={"critical": 2}, action="reject"),  # after premium: it rejects first
]
# (seconds, context, number, source address, account, duration); "transfer" screens the
# previous call again in the default context, as transfer(1000 XML default) does.
LIVE_CALLS = [
    (0, "public", "4420001", TRUNK, None, 30),
    (1, "public", "4420002", TRUNK, None, 30),
    (2, "public", "4420003", TRUNK, None, 30),  # ip-rate warning
    (3, "public", "4420004", TRUNK, None, 30),  # ip-rate critical: rejected, ban line
    (4, "public", "900", TRUNK, None, 0),  # the static rules first
    (64, "public", "4420005", TRUNK, None, 30),  # the window moved on
    (10, "default", "1002", "198.51.100.10", OFFICE, 100),
    (11, "default", "1003", "198.51.100.10", OFFICE, 100),
    (12, "default", "1004", "198.51.100.10", OFFICE, 100),  # three up: acct-up rejects; acct-rate warning
    (111, "default", "1005", "198.51.100.10", OFFICE, 100),  # the calls at 10 and 11 have ended
    (200, "default", "0088216000001", "203.0.113.150", "1003@pbx.example", 600),
    (201, "default", "0088216000002", "203.0.113.150", "1003@pbx.example", 600),  # premium warning
    (202, "default", "0088216000003", "203.0.113.150", "1003@pbx.example", 600),  # critical: a block
    (203, "default", "1001", "203.0.113.150", "1003@pbx.example", 60),  # the account is blocked
    (204, "public", "4420006", "203.0.113.150", "1003@pbx.example", 60),  # in every context
    (803, "default", "1001", "203.0.113.150", "1003@pbx.example", 60),  # the block is over
    (900, "public", "1000", "198.51.100.11", "1002@pbx.example", 300),
    (900.5, "transfer", "1000", "198.51.100.11", "1002@pbx.example", 300),  # counted once per limit
    (901, "default", "1001", "198.51.100.11", "1002@pbx.example", 300),  # two up, the transferred one once
    (902, "default", "1003", "198.51.100.11", "1002@pbx.example", 300),  # three: acct-up rejects
    (1000, "lab", "1001", "198.51.100.12", "1004@pbx.example", 60),
    (1001, "lab", "1002", "198.51.100.12", "1004@pbx.example", 60),
    (1002, "lab", "1003", "198.51.100.12", "1004@pbx.example", 60),  # monitor mode: alerted, not rejected
]


def test_replay_decides_every_call_as_the_live_screen_does(tmp_path, write_config, call, hook, ban_log, monkeypatch):
    write_config({"deny_prefix": ["9"], "destination_number_max_len": 16, "limits": LIVE_LIMITS,
                  "contexts": {"lab": {"monitor": True}}})
    now = [T0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    live: List[str] = []
    up: List[Any] = []  # (end, session)
    records: List[Dict[str, Any]] = []
    session = None
    before = state.STATS.snapshot()
    for at, context, number, ip, account, duration in sorted(LIVE_CALLS):
        now[0] = T0 + at
        for end, ended in [item for item in up if item[0] <= at]:
            fsctl.hang_up(ended)  # CHANNEL_HANGUP_COMPLETE: the hook frees its slots
            up.remove((end, ended))
        fsctl.wait_until(fsctl.idle)
        variables = {"sip_authorized": "true", "user_name": account.split("@")[0],
                     "domain_name": account.split("@")[1]} if account else {}
        if context == "transfer":
            session.setVariable("context", "default")
            run_app("fs_guard.screen", session)
            context = "default"
        else:
            session = call(number, context=context, ip=ip, **variables)
            up.append((at + duration, session))
        after = state.STATS.snapshot()
        rejected = [name.split(".", 1)[1] for name in after if name.startswith("rejected.")
                    and after[name] != before.get(name, 0)]
        live.append(rejected[0] if rejected else "accept")
        before = after
        records.append(attempt(at, number=number, context=context, ip=ip, account=account, uuid=session.uuid,
                            duration=duration))
    conf = state.CONFIG.current()
    assert verdicts(tmp_path, records, conf) == live
    assert live == ["accept", "accept", "accept", "limit", "deny_prefix", "accept", "accept", "limit", "accept",
                    "accept", "accept", "accept", "limit", "limit", "limit", "accept", "accept", "accept", "accept",
                    "limit", "accept", "accept", "accept"]
    report, replay_lines = replay(tmp_path, records, conf)
    counters = state.STATS.snapshot()
    for s in report.limits.limits:
        assert (s.limit.name, s.warning, s.critical) == (
            s.limit.name, counters.get(f"limit.{s.limit.name}.warning", 0),
            counters.get(f"limit.{s.limit.name}.critical", 0))
    assert sum(s.blocked_calls for s in report.limits.limits) == counters["limit_blocked_calls"] == 2
    assert replay_lines == ban_log.lines()  # the same ban lines, with the same times



def test_the_report_says_what_a_cdr_or_a_freeswitch_log_cannot_show(tmp_path, run_cli, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    (tmp_path / "c.json").write_text(json.dumps({"fail2ban": {"deny_prefix": [], "limits": [
        limit("ip-rate", by="source_ip", window=60, calls={"critical": 5}),
        limit("acct-rate", window=60, calls={"critical": 5})]}}))
    (tmp_path / "Master.csv").write_text('"","1003","1002","default","2026-11-28 10:00:00","","2026-11-28 10:01:00",'
                                         '"60","0","NORMAL_CLEARING","0a1b","","1003","PCMA","PCMA"\n')
    (tmp_path / "freeswitch.log").write_text(
        "2026-11-28 10:00:00.000000 [INFO] sofia.c:10460 sofia/internal/1003@x receiving invite from "
        "198.51.100.10:5060 version: 1.10.12\n"
        "2026-11-28 10:00:00.010000 [INFO] mod_dialplan_xml.c:639 Processing 1003 <1003>->1002 in context default\n")
    try:
        cdr = run_cli("replay", str(tmp_path / "Master.csv"), "--config", str(tmp_path / "c.json"))[1]
        log = run_cli("replay", str(tmp_path / "freeswitch.log"), "--config", str(tmp_path / "c.json"))[1]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "no call had a source address (a CDR has none): source_ip limits counted nothing" in cdr
    assert "no call had an account" not in cdr
    assert "no call had an account (a freeswitch.log names none): account limits counted nothing" in log
