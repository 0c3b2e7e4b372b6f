"""fs_guard.status as fs_cli runs it: ``python fs_guard.status [reload] [json]``."""

from __future__ import annotations

import json
import sys
import threading

import fsctl
import freeswitch
import modpython
import pytest
from modpython import run_api

from fs_guard.runtime import sofia_events, state


def status(args: str = "") -> str:
    return run_api("fs_guard.status" + (f" {args}" if args else ""))


def status_json(args: str = "") -> dict:
    return json.loads(status(f"{args} json".strip()))


def line_of(text: str, label: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(label)]
    return line


@pytest.fixture(autouse=True)
def no_runtime_left_behind(monkeypatch):
    monkeypatch.setattr(sofia_events, "SLICE_MS", 20)
    yield
    assert modpython.unload(wait=5.0) == []


class TestTheReport:
    def test_it_names_the_config_file_in_force_and_when_it_was_loaded(self, write_config):
        path = write_config({"deny_prefix": ["00"]})
        text = status()
        assert line_of(text, "config:").startswith(f"config:         {path}, loaded at 20")
        assert line_of(text, "last error:") == "last error:     none"
        data = status_json()["config"]
        assert data["file"] == data["path"] == str(path) and data["loaded_at"].endswith("+00:00")

    def test_fs_guard_config_naming_no_file_is_the_last_error(self, tmp_path):
        typo = str(tmp_path / "typo.json")
        freeswitch.setGlobalVariable("fs_guard_config", typo)
        assert line_of(status(), "last error:").startswith(
            f"last error:     {typo}: no such file (named by the FreeSWITCH global variable fs_guard_config); "
            "keeping the built-in configuration")
        assert status_json()["config"]["file"] is None

    def test_with_no_file_it_shows_the_built_in_defaults_and_where_it_looks(self, fs_dirs):
        conf, _ = fs_dirs
        assert line_of(status(), "config:") == f"config:         built-in defaults (no good file at {conf / 'fs_guard.json'})"
        assert status_json()["config"]["file"] is None

    def test_a_bad_file_shows_the_last_error_and_the_last_good_config_stays(self, write_config, call):
        path = write_config({"deny_prefix": ["00"]})
        status()
        write_config({"denny_prefix": ["00"]})
        text = status()
        assert line_of(text, "config:").startswith(f"config:         {path}, loaded at ")
        error = line_of(text, "last error:")
        assert "fail2ban.denny_prefix: unknown key" in error and "keeping the last good configuration at 20" in error
        assert call("0044123456").hangupCause() == "CALL_REJECTED"
        assert "fail2ban.denny_prefix: unknown key" in status_json()["config"]["last_error"]

    def test_control_characters_in_an_error_are_escaped_so_it_stays_one_line(self, write_config):
        write_config({"a\nb\x1b[2J": 1})
        error = line_of(status(), "last error:")
        assert "a\\nb\\x1b\\x5b2J" in error

    def test_it_shows_the_ban_log_in_use(self, write_config, tmp_path):
        write_config({"filename": str(tmp_path / "bans.log")})
        assert line_of(status(), "ban log:") == f"ban log:        {tmp_path / 'bans.log'}"

    def test_it_shows_whether_the_register_failure_hook_runs(self):
        assert line_of(status(), "register hook:").endswith("not running (startup-script in python.conf.xml)")
        modpython.run_startup("fs_guard.events")
        fsctl.wait_until(fsctl.idle)
        assert line_of(status(), "register hook:").startswith("register hook:  running since 20")
        assert status_json()["register_failure_hook"]["running"] is True

    def test_the_module_is_reloaded_on_every_command_and_counters_survive(self, call):
        call("0044123456")
        status()
        first = sys.modules["fs_guard.status"]
        assert status_json()["counters"]["calls_rejected"] == 1
        assert sys.modules["fs_guard.status"] is first  # reloaded in place; the state lives elsewhere

    def test_an_unknown_word_prints_the_usage(self):
        usage = "-ERR usage: python fs_guard.status [reload] [json | prometheus] | unblock KEY [json]\n"
        assert status("relaod") == usage
        assert status("unblock") == status("unblock a b") == status("json unblock a") == usage


class TestCounters:
    def test_it_counts_calls_by_reason_ban_lines_and_register_failures(self, call):
        call("1001")
        call("0044123456")
        call("0044123457")
        call("1" * 20)
        modpython.run_startup("fs_guard.events")
        fsctl.wait_until(fsctl.idle)
        fsctl.fire("sofia::register_failure", {"network-ip": "203.0.113.7", "profile-name": "internal"})
        fsctl.fire("sofia::register_failure", {"network-ip": "garbage"})
        fsctl.wait_until(fsctl.idle)
        counters = status_json()["counters"]
        assert counters == {
            "calls_screened": 4,
            "calls_accepted": 1,
            "calls_rejected": 3,
            "rejected.deny_prefix": 2,
            "rejected.too_long": 1,
            "monitor_would_reject": 0,
            "ban_lines_written": 4,
            "ban_log_errors": 0,
            "not_banned_trusted": 0,
            "not_banned_bad_address": 1,
            "register_failures": 2,
            "scanner_registrations": 0,
            "events_malformed": 1,
            "events_dropped": 0,
            "errors": 0,
            "config_wait_timeouts": 0,
            "config_loads": 0,
            "config_load_errors": 0,
        }
        text = status()
        assert "\n  rejected.deny_prefix    2\n" in text and "\n  register_failures       2\n" in text

    def test_the_text_and_the_json_report_the_same_counters(self, call):
        call("0044123456")
        text, data = status(), status_json()
        shown = dict(line.split() for line in text.split("counters since ", 1)[1].splitlines()[1:])
        assert {name: int(value) for name, value in shown.items()} == data["counters"]
        assert text.splitlines()[-len(shown) - 1] == f"counters since {data['counters_since']}:"

    def test_counters_are_exact_under_16_threads(self, call, ban_log):
        threads, rounds = 16, 25
        modpython.run_startup("fs_guard.events")
        fsctl.wait_until(fsctl.idle)
        start = threading.Barrier(threads)
        reports = []

        def worker(index: int) -> None:
            start.wait()
            for n in range(rounds):
                call("1001" if n % 2 else "0044123456", ip=f"198.51.100.{index}")
                fsctl.fire("sofia::register_failure", {"network-ip": f"203.0.113.{index}", "profile-name": "internal"})
                reports.append(status_json())

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        fsctl.wait_until(fsctl.idle)
        total, rejected = threads * rounds, threads * ((rounds + 1) // 2)
        counters = status_json()["counters"]
        assert counters["calls_screened"] == total
        assert counters["calls_accepted"] == total - rejected
        assert counters["calls_rejected"] == counters["rejected.deny_prefix"] == rejected
        assert counters["register_failures"] == total
        assert counters["ban_lines_written"] == len(ban_log.lines()) == rejected + total
        assert len(reports) == total and all(r["counters"]["calls_screened"] <= total for r in reports)


class TestReload:
    def test_reload_reads_the_file_again_and_reports_ok(self, write_config, tmp_path):
        write_config({"deny_prefix": ["00"]})
        status()
        other = tmp_path / "other.json"
        other.write_text(json.dumps({"fail2ban": {"deny_prefix": ["9"]}}))
        freeswitch.setGlobalVariable("fs_guard_config", str(other))
        assert status_json()["config"]["file"] != str(other)  # without reload the file in use is kept
        text = status("reload")
        assert text.splitlines()[:2] == ["fs-guard 0.1.0", "reload: ok"]
        assert line_of(text, "config:").startswith(f"config:         {other}, loaded at ")
        assert state.CONFIG.current().base.deny.prefixes == frozenset({"9"})

    def test_reload_of_a_bad_file_reports_the_failure_and_keeps_the_last_good(self, write_config):
        write_config({"deny_prefix": ["00"]})
        status()
        write_config(text="{not json")
        text = status("reload")
        assert line_of(text, "reload:").startswith("reload: FAILED: ") and "not valid JSON" in text
        assert state.CONFIG.current().base.deny.prefixes == frozenset({"00"})

    def test_reload_json_reports_the_result_in_the_json(self, write_config):
        write_config({})
        data = status_json("reload")
        assert data["reload"] == {"ok": True, "error": None}
        assert data["config"]["last_error"] is None

    def test_reload_with_no_file_says_so(self, fs_dirs):
        data = status_json("reload")
        assert data["reload"]["ok"] is False and "missing" in data["reload"]["error"]


OFFICE = {"sip_authorized": "true", "user_name": "1001", "domain_name": "pbx.example"}


class TestLimits:
    """What an operator wants to see of the fraud limits, like Kamailio's pike.top and
    OpenSIPS's fraud_detection: each limit's hottest keys now, and what is blocked."""

    def test_without_limits_it_says_none(self):
        assert "\nlimits:         none\n" in status()
        assert status_json()["limits"]["limits"] == []

    def test_each_limit_shows_its_rule_and_its_hottest_keys_now(self, write_config, call):
        write_config({"deny_prefix": [], "limits": [
            {"name": "ip-rate", "by": "source_ip", "window": 60, "calls": {"warning": 5, "critical": 10}},
            {"name": "fanout", "by": "account", "window": 600, "distinct_numbers": {"critical": 4}},
        ]})
        for n in range(6):
            call(f"10{n % 3}", ip="203.0.113.5", **OFFICE)
        for n in range(2):
            call("100", ip="203.0.113.6")
        text = status()
        assert "  ip-rate: by source_ip; calls in 60 s: warning > 5, critical > 10; alert, ban lines on\n" \
               "    hottest: 203.0.113.5 calls 6 | 203.0.113.6 calls 2\n" in text
        assert "    hottest: 1001@pbx.example distinct_numbers 3\n" in text
        data = status_json()["limits"]
        assert data["tracked_keys"] == 3 and data["max_keys"] == 100_000 and data["evicted_keys"] == 0
        assert data["limits"][0]["hottest"] == [{"key": "203.0.113.5", "calls": 6}, {"key": "203.0.113.6", "calls": 2}]
        assert "limits:         2 (3 keys tracked of 100,000, 0 evicted; 0 calls up)" in text

    def test_concurrent_limits_without_the_hook_say_they_are_not_counted(self, write_config):
        write_config({"limits": [{"name": "up", "by": "account", "concurrent": {"critical": 2}}]})
        assert "concurrent calls are NOT counted: the fs_guard.events startup-script is not running" in status()
        assert status_json()["limits"]["concurrent_calls_counted"] is False

    def test_blocked_keys_are_listed_with_time_left_and_unblock_lifts_the_block(self, write_config, call):
        write_config({"deny_prefix": [], "limits": [
            {"name": "rate", "by": "account", "window": 60, "calls": {"critical": 1}, "action": "reject",
             "block_for": 600}]})
        call("1", **OFFICE)
        assert call("2", **OFFICE).hangupCause() == "CALL_REJECTED"
        assert call("3", **OFFICE).hangupCause() == "CALL_REJECTED"
        text = status()
        assert line_of(text, "blocked:") == "blocked:        1"
        assert line_of(text, "  account:1001@pbx.example").startswith(
            "  account:1001@pbx.example by rate, 600 s left (until 20")
        answer = status("unblock 1001@pbx.example")
        assert answer.splitlines()[1] == "unblock 1001@pbx.example: lifted rate on account:1001@pbx.example"
        assert line_of(answer, "blocked:") == "blocked:        none"
        assert call("4", **OFFICE).hangupCause() == "NONE"  # unblocked, and its count starts again
        assert status_json("unblock 1001@pbx.example")["unblock"] == {"key": "1001@pbx.example", "lifted": []}
        assert status("unblock 203.0.113.99").splitlines()[1] == "unblock 203.0.113.99: no block on that key"
