"""The metrics endpoint the event hook serves, and ``python fs_guard.status prometheus``.

Calls go through the real ``fs_guard.screen`` and events through the real hook, as mod_python3
runs them (tests/fakes); the endpoint is scraped over real HTTP and parsed with
prometheus_client's own parser. tests/test_prometheus.py scrapes it with a real Prometheus.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.error
import urllib.request
from typing import Dict, FrozenSet, Tuple

import fsctl
import modpython
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis_support import free_port

import fs_guard.runtime
from fs_guard import __version__
from fs_guard.runtime import config as config_module
from fs_guard.runtime import metrics_endpoint, sofia_events, stats
from fs_guard.runtime.config import ConfigError, MetricsSettings, load_config, parse_listen

Samples = Dict[Tuple[str, FrozenSet[Tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by (name, labels)."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode("utf-8")


def answers(port: int) -> bool:
    try:
        scrape(port)
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


def reachable(family: int, address: str, port: int) -> bool:
    try:
        with socket.socket(family) as probe:
            return probe.connect_ex((address, port)) == 0
    except OSError:  # no such address family on this host
        return False


def status_prometheus() -> str:
    return modpython.run_api("fs_guard.status prometheus")


def without_prometheus_client(monkeypatch) -> None:
    """Make prometheus_client look not installed (a None in sys.modules is what import and
    find_spec see for a missing package)."""
    for name in [name for name in sys.modules if name.split(".")[0] == "prometheus_client"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)


def register_failure(ip: str = "203.0.113.50", user: str = "1000") -> None:
    fsctl.fire("sofia::register_failure", {"network-ip": ip, "to-user": user, "to-host": "pbx.example",
                                           "profile-name": "internal", "registration-type": "REGISTER"})


@pytest.fixture(autouse=True)
def short_slices(monkeypatch):
    monkeypatch.setattr(sofia_events, "SLICE_MS", 20)
    monkeypatch.setattr(metrics_endpoint, "LOOK_EVERY", 0.02)
    yield
    fsctl.stop_running()
    assert modpython.unload(wait=5.0) == []


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def serving(write_config, port):
    """A configuration with ``metrics`` on ``port``, the hook running and the endpoint answering."""

    def start(section=None):
        write_config({**(section or {}), "metrics": {"listen": f"127.0.0.1:{port}"}})
        modpython.run_startup("fs_guard.events")
        fsctl.wait_until(lambda: answers(port))
        return port

    return start


class TestTheSetting:
    def test_listen_takes_host_and_port_bracketed_ipv6_localhost_or_a_bare_port(self):
        assert parse_listen("127.0.0.1:15248") == MetricsSettings("127.0.0.1", 15248)
        assert parse_listen("[::1]:9000") == MetricsSettings("::1", 9000)
        assert parse_listen("localhost:9000") == MetricsSettings("127.0.0.1", 9000)
        assert parse_listen("9000") == MetricsSettings("127.0.0.1", 9000)
        assert parse_listen("0.0.0.0:9000").url == "http://0.0.0.0:9000/metrics"
        assert parse_listen("[::1]:9000").url == "http://[::1]:9000/metrics"

    @pytest.mark.parametrize("listen", ["pbx.example:9000", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:",
                                        "127.0.0.1:http", "::1:9000x", "[fe80::1%eth0]:9000", ""])
    def test_anything_else_is_not_a_listen_address(self, listen):
        assert parse_listen(listen) is None

    def test_without_listen_it_serves_on_loopback_by_default(self, write_config):
        config = load_config(str(write_config({"metrics": {}})))
        assert config.metrics == MetricsSettings("127.0.0.1", 15248)
        assert load_config(str(write_config({}))).metrics is None

    def test_a_bad_listen_is_a_configuration_error_naming_the_field(self, write_config):
        with pytest.raises(ConfigError) as error:
            load_config(str(write_config({"metrics": {"listen": "pbx.example:9000"}})))
        assert error.value.errors == ("fail2ban.metrics.listen: 'pbx.example:9000' is not HOST:PORT (an IP address "
                                      "and a port, e.g. 127.0.0.1:15248)",)

    def test_an_unknown_key_in_metrics_is_an_error(self, write_config):
        with pytest.raises(ConfigError) as error:
            load_config(str(write_config({"metrics": {"lisen": "127.0.0.1:9000"}})))
        assert error.value.errors == ("fail2ban.metrics.lisen: unknown key",)

    def test_without_prometheus_client_the_setting_is_an_error_naming_the_pip_install(self, write_config,
                                                                                     monkeypatch):
        without_prometheus_client(monkeypatch)
        with pytest.raises(ConfigError) as error:
            load_config(str(write_config({"metrics": {}})))
        assert error.value.errors == ("fail2ban.metrics: needs the prometheus_client library, which is not "
                                      "installed: pip install 'fs-guard[metrics]' (for FreeSWITCH, from the source "
                                      "directory: fs-guard install --package '.[metrics]')",)


class TestTheEndpoint:
    def test_the_hook_serves_prometheus_text_on_loopback_at_metrics(self, serving, call):
        port = serving()
        call("0044123456")
        text = scrape(port)
        samples = parse(text)
        assert value(samples, "fs_guard_build_info", version=__version__,
                     python=".".join(map(str, sys.version_info[:3]))) == 1
        assert value(samples, "fs_guard_calls_rejected_total", context="public", reason="deny_prefix") == 1
        assert value(samples, "fs_guard_event_hook_up") == 1
        assert f"fs-guard: metrics endpoint serving http://127.0.0.1:{port}/metrics\n" in fsctl.log_lines("notice")

    def test_it_listens_on_the_configured_address_only(self, serving):
        port = serving()
        assert reachable(socket.AF_INET, "127.0.0.1", port)
        assert not reachable(socket.AF_INET6, "::1", port)  # 127.0.0.1 only, not every address

    def test_it_stops_with_the_hook(self, serving):
        port = serving()
        fsctl.stop_running()
        assert modpython.unload(wait=5.0) == []
        assert not answers(port)
        assert "fs-guard: metrics endpoint stopped\n" in fsctl.log_lines("notice")

    def test_the_hook_still_returns_within_2_s_of_shutdown(self, serving):
        serving()
        fsctl.stop_running()
        assert modpython.unload(wait=2.0) == []

    def test_a_changed_listen_moves_it_without_a_restart(self, serving, write_config):
        port = serving()
        moved = free_port()
        write_config({"metrics": {"listen": f"127.0.0.1:{moved}"}})
        fsctl.wait_until(lambda: answers(moved))
        assert not answers(port)

    def test_removing_the_setting_stops_it_and_adding_it_back_starts_it(self, serving, write_config):
        port = serving()
        write_config({})
        fsctl.wait_until(lambda: not answers(port))
        write_config({"metrics": {"listen": f"127.0.0.1:{port}"}})
        fsctl.wait_until(lambda: answers(port))

    def test_it_starts_with_the_hook_before_any_call_loads_the_configuration(self, serving):
        assert "fs_guard_calls_screened_total" in scrape(serving())

    def test_a_port_in_use_is_one_console_error_and_the_hook_goes_on(self, write_config, port, ban_log):
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen(1)
            write_config({"metrics": {"listen": f"127.0.0.1:{port}"}})
            modpython.run_startup("fs_guard.events")
            fsctl.wait_until(lambda: fsctl.log_lines("err"))
            register_failure()
            fsctl.wait_until(lambda: ban_log.lines())
            [error] = fsctl.log_lines("err")
        assert error == (f"fs-guard: metrics endpoint not started: cannot listen on 127.0.0.1:{port}: Address "
                         "already in use (is another program using that port? choose another with "
                         "fail2ban.metrics.listen); the hook goes on without it and tries again every 30 s\n")
        assert "reason=register_failure" in ban_log.lines()[0]

    def test_it_tries_again_quietly_and_starts_once_the_port_is_free(self, write_config, port, monkeypatch):
        monkeypatch.setattr(metrics_endpoint, "RETRY", 0.05)
        attempts = []
        bind = metrics_endpoint._server
        monkeypatch.setattr(metrics_endpoint, "_server", lambda *args: attempts.append(1) or bind(*args))
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", port))
            squatter.listen(1)
            write_config({"metrics": {"listen": f"127.0.0.1:{port}"}})
            modpython.run_startup("fs_guard.events")
            fsctl.wait_until(lambda: len(attempts) >= 3)
        fsctl.wait_until(lambda: answers(port))
        assert len(fsctl.log_lines("err")) == 1  # the retries said nothing more

    def test_an_address_the_host_does_not_have_is_a_console_error(self, write_config, port):
        write_config({"metrics": {"listen": f"192.0.2.1:{port}"}})  # TEST-NET-1: on no interface
        modpython.run_startup("fs_guard.events")
        fsctl.wait_until(lambda: fsctl.log_lines("err"))
        assert "cannot listen on 192.0.2.1:" in fsctl.log_lines("err")[0]


class TestTheNumbers:
    def test_status_prometheus_prints_what_the_endpoint_serves(self, serving, call):
        port = serving()
        call("0044123456")
        call("12345")
        register_failure()
        fsctl.wait_until(fsctl.idle)
        assert parse(status_prometheus()) == parse(scrape(port))

    def test_status_prometheus_works_without_the_hook_or_a_metrics_setting(self, call):
        call("0044123456")
        samples = parse(status_prometheus())
        assert value(samples, "fs_guard_calls_rejected_total", context="public", reason="deny_prefix") == 1
        assert value(samples, "fs_guard_event_hook_up") == 0

    def test_status_prometheus_without_prometheus_client_names_the_pip_install(self, monkeypatch):
        without_prometheus_client(monkeypatch)
        monkeypatch.delitem(sys.modules, "fs_guard.runtime.metrics", raising=False)
        monkeypatch.delattr(fs_guard.runtime, "metrics", raising=False)
        assert status_prometheus() == ("-ERR prometheus_client is not installed: pip install 'fs-guard[metrics]' (for "
                                       "FreeSWITCH, from the source directory: fs-guard install --package '.[metrics]')\n")

    def test_json_and_prometheus_together_print_the_usage(self):
        assert modpython.run_api("fs_guard.status json prometheus").startswith("-ERR usage:")

    def test_calls_are_counted_by_context_and_reason_and_monitor_mode_apart(self, write_config, call):
        write_config({"contexts": {"trial": {"monitor": True}}})
        call("0044123456", context="public")
        call("0044123456", context="public")
        call("12345", context="default")
        call("0044123456", context="trial")
        call("1" * 20, context="trial")
        samples = parse(status_prometheus())
        assert value(samples, "fs_guard_calls_rejected_total", context="public", reason="deny_prefix") == 2
        assert value(samples, "fs_guard_calls_accepted_total", context="default") == 1
        assert value(samples, "fs_guard_calls_would_reject_total", context="trial", reason="deny_prefix") == 1
        assert value(samples, "fs_guard_calls_would_reject_total", context="trial", reason="too_long") == 1
        assert {context: value(samples, "fs_guard_calls_screened_total", context=context)
                for context in ("public", "default", "trial")} == {"public": 2, "default": 1, "trial": 2}

    def test_the_totals_status_shows_are_the_sums_of_the_series(self, write_config, call):
        write_config({"contexts": {"trial": {"monitor": True}}})
        for number, context in (("0044", "public"), ("12345", "public"), ("0044", "trial"), ("", "default")):
            call(number, context=context)
        counters = json.loads(modpython.run_api("fs_guard.status json"))["counters"]
        samples = parse(status_prometheus())

        def total(name: str, **labels: str) -> float:
            return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)

        assert counters["calls_screened"] == total("fs_guard_calls_screened_total") == 4
        assert counters["calls_accepted"] == total("fs_guard_calls_accepted_total") == 1
        assert counters["calls_rejected"] == total("fs_guard_calls_rejected_total") == 2
        assert counters["rejected.empty_number"] == total("fs_guard_calls_rejected_total", reason="empty_number") == 1
        assert counters["monitor_would_reject"] == total("fs_guard_calls_would_reject_total") == 1

    def test_register_failures_scanners_and_offences_not_banned(self, serving):
        port = serving({"deny_user_agent": ["friendly-scanner"], "trusted_networks": ["10.0.0.0/8"]})
        register_failure("203.0.113.9")
        register_failure("10.1.2.3")
        register_failure("not an address")
        fsctl.fire("sofia::pre_register", {"network-ip": "203.0.113.10", "user-agent": "friendly-scanner"})
        fsctl.wait_until(fsctl.idle)
        samples = parse(scrape(port))
        assert value(samples, "fs_guard_register_failures_total") == 3
        assert value(samples, "fs_guard_scanner_registrations_total") == 1
        assert value(samples, "fs_guard_ban_lines_written_total") == 2
        assert value(samples, "fs_guard_offences_not_banned_total", why="trusted_network") == 1
        assert value(samples, "fs_guard_offences_not_banned_total", why="bad_address") == 1
        assert value(samples, "fs_guard_events_malformed_total") == 1

    def test_limit_hits_by_limit_and_level_and_blocked_keys_by_limit(self, write_config, call):
        write_config({"limits": [{"name": "burst", "by": "source_ip", "window": 60, "calls": {"warning": 1, "critical": 2},
                                  "action": "reject", "block_for": 600}]})
        for _ in range(4):
            call("12345", ip="198.51.100.7")
        samples = parse(status_prometheus())
        counters = json.loads(modpython.run_api("fs_guard.status json"))["counters"]
        # The 2nd call is over the warning threshold, the 3rd over the critical one (blocked), the 4th blocked.
        assert value(samples, "fs_guard_limit_hits_total", limit="burst", level="warning") == 1
        assert value(samples, "fs_guard_limit_hits_total", limit="burst", level="critical") == 1
        assert counters["limit.burst.warning"] == counters["limit.burst.critical"] == 1
        assert value(samples, "fs_guard_limit_blocked_keys", limit="burst", by="source_ip") == 1
        assert value(samples, "fs_guard_limit_blocked_calls_total") == 1
        assert value(samples, "fs_guard_calls_rejected_total", context="public", reason="limit") == 2
        assert value(samples, "fs_guard_limit_keys_tracked") == 1
        assert value(samples, "fs_guard_limit_keys_max") == 100_000

    def test_rejects_by_destination_country_are_what_status_shows(self, write_config, call):
        """Rules and limits count the country of a classified number they reject; monitor mode,
        emergency and accepted calls do not."""
        write_config({"dialling": {"region": "GB"}, "deny_prefix": [], "destination_number_max_len": 16,
                      "deny_countries": ["CU"], "deny_number_types": ["premium_rate"],
                      "contexts": {"trial": {"monitor": True}},
                      "limits": [{"name": "burst", "by": "source_ip", "window": 60, "calls": {"critical": 1},
                                  "action": "reject"}]})
        call("09098790000", ip="203.0.113.1")  # GB premium rate: denied_number_type
        call("005378612345", ip="203.0.113.2")  # CU: denied_country
        call("005378612345", ip="203.0.113.3", context="trial")  # would reject: not counted
        call("999", ip="203.0.113.4")  # emergency: let through
        call("0033142685300", ip="198.51.100.7")  # FR: accepted, then rejected by the limit
        call("0033142685301", ip="198.51.100.7")
        samples = parse(status_prometheus())
        drawn = {dict(labels)["country"]: v for (name, labels), v in samples.items()
                 if name == "fs_guard_destination_calls_rejected_total"}
        assert drawn == {"GB": 1, "CU": 1, "FR": 1}
        shown = json.loads(modpython.run_api("fs_guard.status json"))["destinations"]["rejected_by_country"]
        assert drawn == shown

    def test_every_configured_limit_has_its_hit_series_from_zero(self, write_config):
        write_config({"limits": [{"name": "burst", "by": "source_ip", "window": 60, "calls": {"critical": 5}}]})
        samples = parse(status_prometheus())
        assert value(samples, "fs_guard_limit_hits_total", limit="burst", level="warning") == 0
        assert value(samples, "fs_guard_limit_hits_total", limit="burst", level="critical") == 0
        assert value(samples, "fs_guard_limit_blocked_keys", limit="burst", by="source_ip") == 0

    def test_a_bad_file_shows_the_config_invalid_and_counts_the_error(self, write_config, call):
        write_config({"deny_prefix": ["00"]})
        call("12345")
        loaded = value(parse(status_prometheus()), "fs_guard_config_last_success_timestamp_seconds")
        write_config({"denny_prefix": ["00"]})
        samples = parse(status_prometheus())
        assert value(samples, "fs_guard_config_valid") == 0
        assert value(samples, "fs_guard_config_loads_total") == 1
        assert value(samples, "fs_guard_config_load_errors_total") == 1
        assert value(samples, "fs_guard_config_last_success_timestamp_seconds") == loaded > 1_000_000_000
        write_config({"deny_prefix": ["0"]})
        samples = parse(status_prometheus())
        assert value(samples, "fs_guard_config_valid") == 1
        assert value(samples, "fs_guard_config_loads_total") == 2

    def test_with_the_built_in_defaults_the_last_load_time_is_zero(self):
        samples = parse(status_prometheus())
        assert value(samples, "fs_guard_config_last_success_timestamp_seconds") == 0
        assert value(samples, "fs_guard_config_valid") == 1

    def test_no_label_value_is_ever_an_address_a_number_or_an_account(self, write_config, call):
        write_config({"dialling": {"region": "GB"}, "deny_countries": ["CU"],
                      "limits": [{"name": "accounts", "by": "account", "window": 60, "calls": {"critical": 1},
                                  "action": "reject"}]})
        call("0044987654", ip="198.51.100.77")
        for _ in range(3):
            call("55501234", ip="198.51.100.78", sip_authorized="true", user_name="1001", domain_name="pbx.example")
        text = status_prometheus()
        for secret in ("198.51.100", "987654", "55501234", "1001@", "pbx.example"):
            assert secret not in text
        labels = {name for family in text_string_to_metric_families(text) for sample in family.samples
                  for name in sample.labels}
        assert labels <= {"context", "reason", "why", "limit", "level", "by", "country", "version", "python"}
        assert "country" in labels

    def test_contexts_beyond_the_bound_are_counted_as_other(self, call, monkeypatch):
        monkeypatch.setattr(stats, "MAX_CONTEXTS", 3)
        for index in range(6):
            call("12345", context=f"ctx{index}")
        samples = parse(status_prometheus())
        contexts = {dict(labels)["context"]: v for (name, labels), v in samples.items()
                    if name == "fs_guard_calls_accepted_total"}
        assert contexts == {"ctx0": 1, "ctx1": 1, "ctx2": 1, "(other)": 3}

    def test_metric_names_follow_prometheus_conventions(self):
        for family in text_string_to_metric_families(status_prometheus()):
            assert family.name.startswith("fs_guard_")
            if family.type == "counter":
                assert all(sample.name.endswith("_total") for sample in family.samples)
            assert not family.name.endswith(("_ms", "_milliseconds", "_count"))

