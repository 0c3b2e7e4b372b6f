"""fs_guard.events as mod_python3 runs it: runtime(args) in a startup-script thread."""

from __future__ import annotations

import threading
from typing import Dict, Optional, Tuple

import freeswitch
import fsctl
import modpython
import pytest

from fs_guard.runtime import penalty, sofia_events, state
from fs_guard.runtime.ratelimit import RateLimiter

Event = Tuple[str, Dict[str, Optional[str]]]
SHUTDOWN_BOUND = 2.0  # seconds: the bound, the only timed assertion here


def register_failure(ip: Optional[str] = "203.0.113.7", *, user="1000", host="192.0.2.1",
                     ua: Optional[str] = "friendly-scanner", type="REGISTER", **more) -> Event:
    """sofia::register_failure as mod_sofia fires it (sofia_reg.c); profile-name comes twice."""
    headers = {"profile-name": "internal", "to-user": user, "to-host": host, "network-ip": ip,
               "user-agent": ua, "network-port": "5060", "registration-type": type}
    headers.update(more)
    return "sofia::register_failure", headers


def pre_register(ip: Optional[str] = "203.0.113.9", *, ua: Optional[str] = "friendly-scanner", user="1001") -> Event:
    """sofia::pre_register: a REGISTER (or INVITE) that came without credentials."""
    return "sofia::pre_register", {
        "profile-name": "external", "from-user": user, "from-host": "192.0.2.1", "call-id": "abc@198.51.100.1",
        "to-user": user, "to-host": "192.0.2.1", "network-ip": ip, "network-port": "5080", "user-agent": ua,
    }


class Hook:
    """The startup script running in its own thread, fed through the fake EventConsumer."""

    def __init__(self, data: str = "fs_guard.events") -> None:
        self.thread = modpython.run_startup(data)
        fsctl.wait_until(fsctl.idle)

    def feed(self, *events: Event) -> None:
        """Fire the events and wait until the hook has handled every one of them."""
        for subclass, headers in events:
            fsctl.fire(subclass, headers)
        fsctl.wait_until(fsctl.idle)

    def shut_down(self) -> None:
        fsctl.stop_running()
        assert self.thread.join(SHUTDOWN_BOUND), "runtime() still running 2 s after running() turned false"


@pytest.fixture
def hook():
    return Hook()


@pytest.fixture(autouse=True)
def no_runtime_left_behind(request, monkeypatch):
    """Ends every runtime() a test started; short pop slices keep that fast, except in
    TestLifecycle, which proves the 2-second bound with the shipped slice."""
    if request.cls is not TestLifecycle:
        monkeypatch.setattr(sofia_events, "SLICE_MS", 20)
    yield
    assert modpython.unload(wait=5.0) == [], "a runtime() thread did not end"


def counters():
    return state.STATS.snapshot()


class TestEachEventKind:
    def test_a_register_failure_writes_one_ban_line_with_reason_register_failure(self, hook, ban_log):
        hook.feed(register_failure())
        [line] = ban_log.lines()
        assert line.endswith(
            ' ip[203.0.113.7] reason=register_failure profile=internal'
            ' user="1000" host="192.0.2.1" ua="friendly-scanner" type="REGISTER"'
        )
        assert counters()["register_failures"] == 1 and counters()["ban_lines_written"] == 1

    def test_a_failed_invite_is_a_register_failure_with_type_invite(self, hook, ban_log):
        hook.feed(register_failure(user="0044123456", type="INVITE"))
        [line] = ban_log.lines()
        assert 'reason=register_failure' in line and line.endswith('user="0044123456" host="192.0.2.1" ua="friendly-scanner" type="INVITE"')

    def test_a_pre_register_from_a_scanner_user_agent_writes_scanner_user_agent(self, hook, ban_log, write_config):
        write_config({"deny_user_agent": ["friendly-scanner"]})
        hook.feed(pre_register(ua="Friendly-Scanner/1.0"))
        [line] = ban_log.lines()
        assert line.endswith(
            ' ip[203.0.113.9] reason=scanner_user_agent profile=external'
            ' user="1001" host="192.0.2.1" ua="Friendly-Scanner/1.0"'
        )
        assert counters()["scanner_registrations"] == 1

    def test_a_pre_register_from_an_ordinary_phone_writes_nothing(self, hook, ban_log, write_config):
        write_config({"deny_user_agent": ["friendly-scanner"]})
        hook.feed(pre_register(ua="Yealink SIP-T46S"), pre_register(ua=None))
        assert ban_log.lines() == []

    def test_without_deny_user_agent_no_pre_register_is_an_offence(self, hook, ban_log):
        hook.feed(pre_register(ua="friendly-scanner"))
        assert ban_log.lines() == []

    def test_events_that_are_not_failures_write_nothing(self, hook, ban_log):
        _, headers = register_failure()
        for subclass in ("sofia::register", "sofia::register_attempt", "sofia::unregister", "sofia::expire"):
            fsctl.fire(subclass, headers)
        freeswitch.Event("HEARTBEAT").fire()
        hook.feed()
        assert ban_log.lines() == []
        assert counters().get("register_failures", 0) == 0


class TestSameRulesAsTheScreen:
    def test_a_trusted_network_writes_no_ban_line(self, hook, ban_log, write_config):
        write_config({"trusted_networks": ["203.0.113.0/24"]})
        hook.feed(register_failure("203.0.113.7"), register_failure("198.51.100.1"))
        [line] = ban_log.lines()
        assert " ip[198.51.100.1] " in line
        assert counters()["not_banned_trusted"] == 1
        assert any(msg.endswith("(trusted network)\n") for msg in fsctl.log_lines("warning"))

    def test_monitor_mode_logs_what_would_be_banned_and_writes_nothing(self, hook, ban_log, write_config):
        write_config({"monitor": True})
        hook.feed(register_failure())
        assert ban_log.lines() == []
        [notice] = [m for m in fsctl.log_lines("notice") if "reason=register_failure" in m]
        assert notice.startswith("fs-guard: would reject reason=register_failure ip=203.0.113.7 ") and "(monitor)" in notice

    def test_ban_false_writes_no_ban_line(self, hook, ban_log, write_config):
        write_config({"ban": False})
        hook.feed(register_failure())
        assert ban_log.lines() == []

    def test_the_top_level_rules_apply_not_a_context_override(self, hook, ban_log, write_config):
        write_config({"contexts": {"public": {"monitor": True}, "default": {"ban": False}}})
        hook.feed(register_failure())
        assert len(ban_log.lines()) == 1

    def test_a_changed_config_takes_effect_on_the_next_event(self, hook, ban_log, write_config):
        hook.feed(pre_register(ua="sipvicious"))
        write_config({"deny_user_agent": ["SIPVicious"]})
        hook.feed(pre_register(ua="sipvicious"))
        write_config({"monitor": True, "deny_user_agent": ["SIPVicious"]})
        hook.feed(pre_register(ua="sipvicious"))
        assert [" reason=scanner_user_agent " in line for line in ban_log.lines()] == [True]

    def test_the_ban_log_named_in_the_config_is_used(self, hook, write_config, tmp_path):
        write_config({"filename": str(tmp_path / "other.log")})
        hook.feed(register_failure())
        assert (tmp_path / "other.log").read_text().count("\n") == 1

    def test_network_text_is_escaped_so_a_line_stays_one_line_with_one_ip(self, hook, ban_log):
        hook.feed(register_failure(user='1000"\n2026 ip[192.0.2.66]', host="\x00\x1b[31m", ua="é\r\nip[6.6.6.6]"))
        [line] = ban_log.lines()
        assert line.count("ip[") == 1 and " ip[203.0.113.7] " in line
        assert 'user="1000\\"\\n2026 ip\\x5b192.0.2.66\\x5d"' in line


class TestTheAddressIsOnlyNetworkIp:
    def test_other_headers_that_look_like_addresses_are_never_banned(self, hook, ban_log):
        hook.feed(register_failure(ip=None, host="198.51.100.66", contact="sip:1000@198.51.100.67",
                                   **{"X-Forwarded-For": "198.51.100.68", "network-port": "198.51.100.69"}))
        assert ban_log.lines() == []

    def test_an_ipv4_mapped_ipv6_address_is_written_as_ipv4(self, hook, ban_log):
        hook.feed(register_failure("::ffff:203.0.113.8"))
        [line] = ban_log.lines()
        assert " ip[203.0.113.8] " in line


class TestMalformedEvents:
    BAD_ADDRESSES = [None, "", "not-an-ip", "ip[192.0.2.1]", "203.0.113.7 198.51.100.1", "999.1.1.1", "fe80::1%eth0"]

    def test_a_missing_empty_or_garbage_address_writes_no_line_and_counts_as_malformed(self, hook, ban_log):
        hook.feed(*(register_failure(ip) for ip in self.BAD_ADDRESSES))
        assert ban_log.lines() == []
        assert counters()["events_malformed"] == len(self.BAD_ADDRESSES)
        assert counters()["register_failures"] == len(self.BAD_ADDRESSES)

    def test_an_event_with_only_its_address_still_writes_a_line(self, hook, ban_log):
        hook.feed(("sofia::register_failure", {"network-ip": "203.0.113.7"}))
        [line] = ban_log.lines()
        assert line.endswith(' ip[203.0.113.7] reason=register_failure profile="" user="" host="" ua="" type=""')

    def test_an_event_with_no_headers_at_all_does_not_stop_the_loop(self, hook, ban_log):
        hook.feed(("sofia::register_failure", {}), register_failure())
        assert len(ban_log.lines()) == 1
        assert counters()["events_malformed"] == 1

    def test_a_64_kib_user_agent_is_cut_and_the_loop_goes_on(self, hook, ban_log, write_config):
        write_config({"deny_user_agent": ["friendly-scanner"]})
        huge = "A" * 65536
        hook.feed(register_failure(ua=huge), pre_register(ua=huge + "friendly-scanner"), register_failure("198.51.100.1"))
        first, second, third = ban_log.lines()
        assert first.endswith(f'ua="{"A" * 256}..." type="REGISTER"')
        assert " reason=scanner_user_agent " in second and len(second) < 1024
        assert " ip[198.51.100.1] " in third

    def test_an_exception_inside_is_logged_rate_limited_and_the_loop_goes_on(self, hook, ban_log, monkeypatch):
        real_impose = penalty.impose

        def report(config, rules, reason, source_ip, fields):
            if source_ip == "192.0.2.66":
                raise RuntimeError("boom")
            return real_impose(config, rules, reason, source_ip, fields)

        monkeypatch.setattr(penalty, "impose", report)
        monkeypatch.setattr(state, "ERROR_REPORTS", RateLimiter(3600.0))
        hook.feed(*[register_failure("192.0.2.66")] * 3, register_failure("198.51.100.1"))
        [line] = ban_log.lines()
        assert " ip[198.51.100.1] " in line
        assert counters()["errors"] == 3 and counters()["events_dropped"] == 3
        [error] = fsctl.log_lines("err")  # rate-limited
        assert error.startswith("fs-guard: register-failure hook error: RuntimeError: boom at ")
        assert hook.thread.alive


class TestLifecycle:
    def test_it_returns_within_2_s_once_running_turns_false(self, hook):
        hook.shut_down()
        assert fsctl.consumers() == []
        assert fsctl.log_lines("notice")[-1] == "fs-guard: register-failure hook stopped (0 queued events dropped)\n"

    def test_it_returns_within_2_s_of_an_injected_system_exit(self, hook):
        hook.thread.inject_system_exit()
        assert hook.thread.join(SHUTDOWN_BOUND), "runtime() still running 2 s after SystemExit"
        assert fsctl.consumers() == []
        assert fsctl.log_lines("err") == []  # mod_python3 ignores SystemExit; nothing else went wrong

    def test_after_a_system_exit_a_new_runtime_takes_over(self, hook, ban_log):
        hook.thread.inject_system_exit()
        assert hook.thread.join(SHUTDOWN_BOUND)
        Hook().feed(register_failure())
        assert len(ban_log.lines()) == 1

    def test_unloading_mod_python3_ends_the_hook(self, hook):
        assert modpython.unload(wait=SHUTDOWN_BOUND) == []

    def test_the_status_of_the_hook_follows_its_life(self, hook):
        assert sofia_events.started_at() is not None
        hook.shut_down()
        assert sofia_events.started_at() is None

    def test_startup_script_arguments_are_accepted_and_ignored(self, ban_log):
        Hook("fs_guard.events some words").feed(register_failure())
        assert len(ban_log.lines()) == 1

    def test_events_still_queued_at_shutdown_count_as_dropped(self, hook, ban_log, monkeypatch):
        busy, release = threading.Event(), threading.Event()
        real_handle = sofia_events.handle

        def slow_handle(event):
            busy.set()
            release.wait(10)
            real_handle(event)

        monkeypatch.setattr(sofia_events, "handle", slow_handle)
        for _ in range(5):
            fsctl.fire(*register_failure())
        assert busy.wait(10)
        fsctl.stop_running()
        release.set()
        assert hook.thread.join(SHUTDOWN_BOUND)
        assert len(ban_log.lines()) == 1 and counters()["events_dropped"] == 4
        assert fsctl.log_lines("notice")[-1] == "fs-guard: register-failure hook stopped (4 queued events dropped)\n"


class TestASecondRuntime:
    def test_a_second_runtime_returns_at_once_and_lines_are_not_doubled(self, hook, ban_log):
        second = modpython.run_startup("fs_guard.events")  # pyrun: re-imports and reloads fs_guard.events
        assert second.join(SHUTDOWN_BOUND)
        assert len(fsctl.consumers()) == 1
        hook.feed(register_failure(), register_failure("198.51.100.1"))
        assert len(ban_log.lines()) == 2
        assert "fs-guard: register-failure hook already running; this runtime() returns\n" in fsctl.log_lines("warning")

    def test_many_runtimes_started_at_once_run_exactly_one_hook(self, hook, ban_log):
        others = [modpython.run_startup("fs_guard.events") for _ in range(8)]
        assert all(other.join(SHUTDOWN_BOUND) for other in others)
        hook.feed(register_failure())
        assert len(ban_log.lines()) == 1

    def test_once_the_first_has_stopped_a_new_runtime_starts(self, hook, ban_log):
        hook.shut_down()
        fsctl.start_running()  # FreeSWITCH up again
        Hook().feed(register_failure())
        assert len(ban_log.lines()) == 1


class TestThroughput:
    def test_20000_queued_events_are_all_drained_into_the_log_with_none_lost(self, hook, ban_log):
        count = 20_000
        addresses = [f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}" for i in range(count)]
        hook.feed(*(register_failure(ip) for ip in addresses))
        lines = ban_log.lines()
        assert len(lines) == count
        assert sorted(line.split(" ip[", 1)[1].split("]", 1)[0] for line in lines) == sorted(addresses)
        assert all(line.endswith('type="REGISTER"') and line.count(" reason=register_failure ") == 1 for line in lines)
        snapshot = counters()
        assert snapshot["register_failures"] == snapshot["ban_lines_written"] == count
        assert snapshot.get("events_dropped", 0) == 0 and snapshot.get("errors", 0) == 0
        assert fsctl.dropped() == 0
