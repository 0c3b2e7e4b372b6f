"""fs_guard.screen as mod_python3 runs it: import, reload, handler(session, args)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import fsctl
import pytest
from modpython import run_app

from fs_guard.runtime import screening, state


def test_an_accepted_call_is_not_hung_up_and_writes_nothing(call, ban_log):
    session = call("1001", context="default")
    assert session.hangupCause() == "NONE" and session.ready()
    assert ban_log.lines() == []
    assert state.STATS.snapshot()["calls_accepted"] == 1


def test_a_rejected_call_is_hung_up_with_call_rejected(call):
    assert call("0044123456").hangupCause() == "CALL_REJECTED"


def test_a_rejected_call_writes_one_ban_line_and_one_console_line(call, ban_log):
    call("0044123456", ip="203.0.113.7", ua="friendly-scanner")
    [line] = ban_log.lines()
    assert line.endswith(' ip[203.0.113.7] reason=deny_prefix context=public dest="0044123456" ua="friendly-scanner"')
    [console] = fsctl.log_lines("warning")
    assert console.startswith("fs-guard: rejected reason=deny_prefix ") and console.endswith("(banned)\n")


def test_each_reason_reaches_the_ban_log(call, ban_log, write_config):
    write_config({
        "allowed_characters": "0123456789+",
        "allow_prefix": ["1", "00"],
        "deny_prefix": ["00"],
        "deny_user_agent": ["sipvicious"],
    })
    for number, ua in [("", None), ("1" * 13, None), ("1x", None), ("0049", None), ("2001", None), ("1001", "SIPVicious")]:
        assert call(number, ua=ua).hangupCause() == "CALL_REJECTED"
    reasons = [line.split(" reason=")[1].split(" ")[0] for line in ban_log.lines()]
    assert reasons == ["empty_number", "too_long", "bad_characters", "deny_prefix", "not_allowed_prefix", "scanner_user_agent"]


def test_a_missing_destination_number_is_rejected(call):
    assert call(None).hangupCause() == "CALL_REJECTED"


def test_the_module_is_reloaded_on_every_call_and_state_survives(call):
    call("1001")
    first = sys.modules["fs_guard.screen"]
    call("1002")
    assert sys.modules["fs_guard.screen"] is first  # reload re-executes in place
    assert state.STATS.snapshot()["calls_accepted"] == 2


class TestRuleSets:
    def test_the_channel_context_picks_its_override(self, call, write_config):
        write_config({"contexts": {"default": {"deny_prefix": ["9"]}}})
        assert call("9001", context="default").hangupCause() == "CALL_REJECTED"
        assert call("9001", context="public").hangupCause() == "NONE"

    def test_args_name_the_rule_set_instead_of_the_context(self, call, write_config, ban_log):
        write_config({"contexts": {"strict": {"allow_prefix": ["1"]}}})
        assert call("2001", context="default", args="strict").hangupCause() == "CALL_REJECTED"
        assert " context=strict " in ban_log.lines()[0]

    def test_an_unknown_rule_set_uses_the_top_level_rules(self, call):
        assert call("0044", args="nosuch").hangupCause() == "CALL_REJECTED"
        assert call("1001", args="nosuch").hangupCause() == "NONE"


class TestSourceAddress:
    def test_network_addr_is_used_when_sip_network_ip_is_missing(self, call, ban_log):
        call("0044", ip=None, network_addr="198.51.100.4")
        assert " ip[198.51.100.4] " in ban_log.lines()[0]

    def test_sip_headers_are_never_the_banned_address(self, call, ban_log):
        call("0044", ip="203.0.113.7", sip_from_host="198.51.100.66", sip_contact_host="198.51.100.67",
             sip_via_host="198.51.100.68", sip_received_ip=None)
        [line] = ban_log.lines()
        assert " ip[203.0.113.7] " in line and "198.51.100.6" not in line

    @pytest.mark.parametrize("bad", [None, "", "not-an-ip", "1.2.3.4.5", "ip[1.2.3.4]", "x" * 65536, "fe80::1%eth0"])
    def test_a_missing_or_garbage_address_rejects_the_call_without_a_ban_line(self, call, ban_log, bad):
        assert call("0044", ip=bad).hangupCause() == "CALL_REJECTED"
        assert ban_log.lines() == []
        assert "(no valid source address)" in fsctl.log_lines("warning")[0]

    def test_an_ipv6_address_is_banned_in_compressed_form(self, call, ban_log):
        call("0044", ip="2001:DB8:0:0::7")
        assert " ip[2001:db8::7] " in ban_log.lines()[0]

    def test_an_ipv4_mapped_ipv6_address_is_banned_as_ipv4(self, call, ban_log):
        call("0044", ip="::ffff:192.0.2.55")
        assert " ip[192.0.2.55] " in ban_log.lines()[0]


class TestHostileInput:
    @pytest.mark.parametrize("number", [
        "0" * 65536,
        "00\n2026-11-25T10:00:00.000+00:00 ip[198.51.100.9] reason=deny_prefix",
        "00ip[198.51.100.9]",
        "+\udcff\x00\x1b[31m",
        "00\u202e\u2028",
    ])
    def test_hostile_numbers_are_rejected_with_one_whole_escaped_line(self, call, ban_log, number):
        session = call(number, ua='x" ip[198.51.100.9] \n')
        assert session.hangupCause() == "CALL_REJECTED"
        [line] = ban_log.lines()
        assert line.count("ip[") == 1 and " ip[203.0.113.7] " in line
        assert line.isascii() and line.isprintable()
        for console in fsctl.log_lines():
            assert console.count("\n") == 1 and "ip[198" not in console


class TestRollout:
    def test_monitor_mode_rejects_nothing_and_writes_no_ban_line(self, call, write_config, ban_log):
        write_config({"monitor": True})
        assert call("0044").hangupCause() == "NONE"
        assert ban_log.lines() == []
        [console] = fsctl.log_lines("notice")[-1:]
        assert console.startswith("fs-guard: would reject reason=deny_prefix ")
        assert state.STATS.snapshot()["monitor_would_reject"] == 1

    def test_monitor_mode_can_be_set_per_context(self, call, write_config):
        write_config({"contexts": {"default": {"monitor": True}}})
        assert call("0044", context="default").hangupCause() == "NONE"
        assert call("0044", context="public").hangupCause() == "CALL_REJECTED"

    def test_a_context_with_ban_lines_off_rejects_without_a_ban_line(self, call, write_config, ban_log):
        write_config({"contexts": {"default": {"ban": False}}})
        assert call("0044", context="default").hangupCause() == "CALL_REJECTED"
        assert ban_log.lines() == []
        call("0044", context="public")
        assert len(ban_log.lines()) == 1

    @pytest.mark.parametrize("ip", ["192.0.2.10", "10.1.2.3", "2001:db8:1::5"])
    def test_trusted_networks_are_rejected_but_never_banned(self, call, write_config, ban_log, ip):
        write_config({"trusted_networks": ["192.0.2.10/32", "10.0.0.0/8", "2001:db8:1::/48"]})
        assert call("0044", ip=ip).hangupCause() == "CALL_REJECTED"
        assert ban_log.lines() == []
        assert "(trusted network)" in fsctl.log_lines("warning")[0]

    @pytest.mark.parametrize("ip", ["192.0.2.11", "2001:db8:2::5"])
    def test_addresses_outside_trusted_networks_are_banned(self, call, write_config, ban_log, ip):
        write_config({"trusted_networks": ["192.0.2.10/32", "2001:db8:1::/48"]})
        call("0044", ip=ip)
        assert len(ban_log.lines()) == 1


class TestConfigWhileRunning:
    def test_a_config_change_applies_to_the_next_call(self, call, write_config):
        path = write_config({"deny_prefix": ["7"]})
        assert call("0044").hangupCause() == "NONE"
        write_config({"deny_prefix": ["00"]})
        os.utime(path, ns=(5, 5))
        assert call("0044").hangupCause() == "CALL_REJECTED"

    def test_a_corrupted_config_keeps_the_last_good_rules_for_calls(self, call, write_config):
        path = write_config({"deny_prefix": ["7"]})
        assert call("7001").hangupCause() == "CALL_REJECTED"
        path.write_text('{"fail2ban": {"deny_prefix": [')
        assert call("7001").hangupCause() == "CALL_REJECTED"
        path.unlink()
        assert call("7001").hangupCause() == "CALL_REJECTED"
        assert call("0044").hangupCause() == "NONE"
        assert os.path.exists(path) is False


class TestInternalErrors:
    def test_an_exception_in_the_decision_rejects_the_call_and_is_logged(self, call, mocker, ban_log):
        mocker.patch.object(screening, "decide", side_effect=RuntimeError("boom\nip[1.2.3.4]"))
        session = call("1001")
        assert session.hangupCause() == "CALL_REJECTED"
        [error] = fsctl.log_lines("err")
        assert "internal error, call rejected: RuntimeError: boom\\nip\\x5b1.2.3.4\\x5d" in error
        assert ban_log.lines() == []
        assert state.STATS.snapshot()["rejected.internal_error"] == 1

    def test_a_failure_after_the_hang_up_counts_the_call_once(self, call, mocker):
        mocker.patch("fs_guard.runtime.penalty.impose", side_effect=OSError("boom"))
        assert call("0044").hangupCause() == "CALL_REJECTED"
        counts = state.STATS.snapshot()
        assert counts["calls_rejected"] == 1 and counts["rejected.deny_prefix"] == 1
        assert "rejected.internal_error" not in counts and counts["errors"] == 1

    def test_on_error_accept_lets_the_call_through(self, call, mocker, write_config):
        write_config({"on_error": "accept"})
        mocker.patch.object(screening, "decide", side_effect=RuntimeError("boom"))
        assert call("0044").hangupCause() == "NONE"
        assert "let through (on_error=accept)" in fsctl.log_lines("err")[0]

    def test_a_failing_session_api_still_rejects(self, mocker):
        session = fsctl.call_session(destination_number="1001")
        mocker.patch.object(session, "getVariable", side_effect=UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"))
        run_app("fs_guard.screen", session)
        assert session.hangupCause() == "CALL_REJECTED"

    def test_errors_are_logged_at_most_once_a_second(self, call, mocker):
        mocker.patch.object(screening, "decide", side_effect=RuntimeError("boom"))
        for _ in range(20):
            call("1001")
        assert len(fsctl.log_lines("err")) == 1
        assert state.STATS.snapshot()["errors"] == 20


def test_16_threads_calling_at_once_get_every_decision_right_and_every_line_whole(ban_log, write_config):
    write_config({"deny_prefix": ["00", "+"], "destination_number_max_len": 12})
    per_thread = 300
    sessions = {}
    barrier = threading.Barrier(16)

    def caller(n):
        barrier.wait()
        for i in range(per_thread):
            number = f"00{n:02d}{i:04d}" if i % 2 else f"1{n:02d}{i:04d}"
            session = fsctl.call_session(destination_number=number, context="public",
                                         sip_network_ip=f"198.51.100.{n}", sip_user_agent="ua" * n)
            run_app("fs_guard.screen", session)
            sessions[(n, i)] = session

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (_, i), session in sessions.items():
        assert session.hangupCause() == ("CALL_REJECTED" if i % 2 else "NONE")
    lines = ban_log.lines()
    assert len(lines) == 16 * per_thread // 2
    expected = {
        f' ip[198.51.100.{n}] reason=deny_prefix context=public dest="00{n:02d}{i:04d}" ua="{"ua" * n}"'
        for n in range(16) for i in range(1, per_thread, 2)
    }
    assert {line[29:] for line in lines} == expected
    counts = state.STATS.snapshot()
    assert counts["calls_accepted"] == counts["calls_rejected"] == 16 * per_thread // 2


def test_the_first_call_works_under_freeswitchs_recursion_limit_of_240(tmp_path):
    """Inside FreeSWITCH the first call imports jsonschema and validates the file with a
    recursion limit of 240; a fresh process shows that fits."""
    (tmp_path / "fs_guard.json").write_text(json.dumps({"fail2ban": {"deny_prefix": ["00"], "contexts": {"x": {}}}}))
    script = (
        "import sys, threading; sys.setrecursionlimit(240)\n"
        "import fsctl\n"
        f"fsctl.reset({{'conf_dir': {str(tmp_path)!r}, 'log_dir': {str(tmp_path)!r}}})\n"
        "from modpython import run_app\n"
        "def call():\n"
        "    session = fsctl.call_session(destination_number='0044', context='public', sip_network_ip='192.0.2.1')\n"
        "    run_app('fs_guard.screen', session)\n"
        "    from fs_guard.runtime import state\n"
        "    print(session.hangupCause(), state.CONFIG.state.config.source, fsctl.log_lines('err'))\n"
        "thread = threading.Thread(target=call); thread.start(); thread.join()\n"
    )
    fakes = str(Path(__file__).parent / "fakes")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": fakes})
    assert result.stdout.strip() == f"CALL_REJECTED {tmp_path / 'fs_guard.json'} []", result.stderr
