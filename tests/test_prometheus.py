"""A real Prometheus (Debian's) scrapes fs-guard running in the fake FreeSWITCH, and the shipped
alert rules and Grafana dashboard run against what it scraped.

The node under watch is driven as FreeSWITCH drives it: calls through the real ``fs_guard.screen``,
register failures and scanner registrations through the real event hook, a real Redis for the
cluster. Prometheus listens on 127.0.0.1 on a free port with a private data directory, scrapes
every second, and every wait is bounded (prometheus_support.WAIT).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List

import fsctl
import modpython
import pytest
from prometheus_support import PrometheusServer, need_prometheus
from redis_support import RedisServer, free_port, need_redis

import fs_guard
from fs_guard.runtime import metrics_endpoint, sofia_events

pytestmark = pytest.mark.prometheus

MONITORING = Path(fs_guard.__file__).parent / "monitoring"
RULES = MONITORING / "fs-guard-alerts.yml"
DASHBOARD = MONITORING / "fs-guard-dashboard.json"
RULES_TESTS = Path(__file__).parent / "data" / "prometheus" / "fs-guard-alerts.test.yml"
#: What each counter of ``fs_guard.status`` is in Prometheus (the rest: see ``series_of``).
SERIES = {
    "calls_screened": "sum(fs_guard_calls_screened_total)",
    "calls_accepted": "sum(fs_guard_calls_accepted_total)",
    "calls_rejected": "sum(fs_guard_calls_rejected_total)",
    "monitor_would_reject": "sum(fs_guard_calls_would_reject_total)",
    "ban_lines_written": "fs_guard_ban_lines_written_total",
    "ban_log_errors": "fs_guard_ban_log_write_errors_total",
    "not_banned_trusted": 'fs_guard_offences_not_banned_total{why="trusted_network"}',
    "not_banned_bad_address": 'fs_guard_offences_not_banned_total{why="bad_address"}',
    "register_failures": "fs_guard_register_failures_total",
    "scanner_registrations": "fs_guard_scanner_registrations_total",
    "events_malformed": "fs_guard_events_malformed_total",
    "events_dropped": "fs_guard_events_dropped_total",
    "errors": "fs_guard_internal_errors_total",
    "limit_blocked_calls": "fs_guard_limit_blocked_calls_total",
    "config_wait_timeouts": "fs_guard_config_wait_timeouts_total",
    "config_loads": "fs_guard_config_loads_total",
    "config_load_errors": "fs_guard_config_load_errors_total",
}


def series_of(counter: str) -> str:
    if counter in SERIES:
        return SERIES[counter]
    if counter.startswith("rejected."):
        return f'sum(fs_guard_calls_rejected_total{{reason="{counter.split(".", 1)[1]}"}})'
    limit = re.fullmatch(r"limit\.(.+)\.(warning|critical)", counter)
    if limit:
        return f'fs_guard_limit_hits_total{{limit="{limit.group(1)}",level="{limit.group(2)}"}}'
    return f"fs_guard_{counter}_total"  # the cluster's own counters, served under their own names


def status() -> dict:
    return json.loads(modpython.run_api("fs_guard.status json"))


def fire_register_failure(ip: str) -> None:
    fsctl.fire("sofia::register_failure", {"network-ip": ip, "to-user": "1000", "to-host": "pbx.example",
                                           "profile-name": "internal", "registration-type": "REGISTER"})


@pytest.fixture
def watched(tmp_path, write_config, call, monkeypatch) -> Iterator[PrometheusServer]:
    """A node with a cluster and limits, scraped by a real Prometheus loaded with the shipped rules,
    driven through calls and events once Prometheus has scraped it; returns when Prometheus has
    scraped the node's final counts."""
    binaries = need_prometheus()
    redis = RedisServer(need_redis(), tmp_path / "redis").start()
    monkeypatch.setattr(sofia_events, "SLICE_MS", 20)
    monkeypatch.setattr(metrics_endpoint, "LOOK_EVERY", 0.02)
    port = free_port()
    write_config({
        "deny_user_agent": ["friendly-scanner"],
        "dialling": {"region": "GB"},
        "deny_countries": ["CU"],  # a destination rule: every number is classified
        "trusted_networks": ["10.0.0.0/8"],
        "contexts": {"trial": {"monitor": True}},
        "limits": [{"name": "burst", "by": "source_ip", "window": 60, "calls": {"warning": 1, "critical": 2},
                    "action": "reject", "block_for": 600}],
        "cluster": {"url": redis.url, "node": "fs1"},
        "metrics": {"listen": f"127.0.0.1:{port}"},
    })
    prometheus = PrometheusServer(binaries["prometheus"], tmp_path / "prometheus", [f"127.0.0.1:{port}"],
                                  rules=RULES).start()
    modpython.run_startup("fs_guard.events")
    try:
        fsctl.wait_until(lambda: status()["cluster"]["state"] == "up", timeout=10)
        prometheus.wait_until(lambda: prometheus.scalar('up{job="fs-guard"}') == 1, "a first scrape of the node")
        for number, context in (("0044123456", "public"), ("0044123457", "public"), ("1" * 20, "public"),
                                ("12345", "default"), ("12346", "default"), ("0044123456", "trial")):
            call(number, context=context, ip="203.0.113.20")
        for _ in range(4):
            call("5551234", context="default", ip="198.51.100.7")
        for ip in ("203.0.113.30", "10.1.2.3", "garbage"):
            fire_register_failure(ip)
        fsctl.fire("sofia::pre_register", {"network-ip": "203.0.113.31", "user-agent": "friendly-scanner"})
        fsctl.wait_until(fsctl.idle)
        final = status()["counters"]
        prometheus.wait_until(lambda: all(prometheus.scalar(SERIES[name]) == final[name] for name in
                                          ("calls_screened", "register_failures", "scanner_registrations")),
                              "a scrape of the final counts")
        prometheus.wait_until(lambda: prometheus.scalar("count_over_time(fs_guard_build_info[1m])") >= 3,
                              "three scrapes (rates need two samples)")
        yield prometheus
    finally:
        fsctl.stop_running()
        modpython.unload(wait=5.0)
        prometheus.stop()
        redis.stop()


class TestARealPrometheus:
    def test_every_counter_of_status_is_a_series_with_the_same_value(self, watched):
        [target] = watched.api("targets")["activeTargets"]
        assert (target["health"], target["lastError"], target["labels"]["job"]) == ("up", "", "fs-guard")
        data = status()
        counters = data["counters"]
        assert counters["calls_screened"] == 10 and counters["register_failures"] == 3
        assert counters["limit.burst.critical"] == 1 and counters["monitor_would_reject"] == 1
        seen = {name: watched.scalar(series_of(name)) for name in counters}
        assert seen == {name: float(count) for name, count in counters.items()}
        limits = data["limits"]
        assert watched.scalar("fs_guard_limit_keys_tracked") == limits["tracked_keys"] > 0
        assert watched.scalar("sum(fs_guard_limit_blocked_keys)") == len(limits["blocked"]) == 1
        assert watched.scalar("fs_guard_event_hook_up") == 1
        assert watched.scalar("fs_guard_config_valid") == 1
        # by context and reason
        assert watched.scalar('fs_guard_calls_rejected_total{context="public",reason="deny_prefix"}') == 2
        assert watched.scalar('fs_guard_calls_rejected_total{context="public",reason="too_long"}') == 1
        assert watched.scalar('fs_guard_calls_would_reject_total{context="trial",reason="deny_prefix"}') == 1
        assert watched.scalar('fs_guard_calls_screened_total{context="default"}') == 6
        # by destination country
        by_country = data["destinations"]["rejected_by_country"]
        assert by_country["GB"] >= 2  # the two 0044 numbers public rejects
        assert {country: watched.scalar(f'fs_guard_destination_calls_rejected_total{{country="{country}"}}')
                for country in by_country} == {country: float(count) for country, count in by_country.items()}
        assert watched.scalar("count(fs_guard_destination_calls_rejected_total)") == len(by_country)
        # the cluster
        assert data["cluster"]["state"] == "up" and watched.scalar("fs_guard_cluster_up") == 1
        assert 0 < watched.scalar("fs_guard_cluster_round_trip_seconds") < 1

    def test_the_shipped_rules_load_evaluate_and_a_critical_limit_hit_fires(self, watched):
        watched.wait_until(lambda: watched.query('ALERTS{alertname="FsGuardCriticalLimitHit",alertstate="firing"}'),
                           "the critical limit hit alert")
        [firing] = watched.query('ALERTS{alertname="FsGuardCriticalLimitHit",alertstate="firing"}')
        assert firing["metric"]["limit"] == "burst" and firing["metric"]["severity"] == "critical"
        rules = [rule for group in watched.api("rules")["groups"] for rule in group["rules"]]
        assert len(rules) == len(alert_names()) and all(rule["health"] == "ok" for rule in rules), rules
        assert not watched.query('ALERTS{alertname=~"FsGuardDown|FsGuardConfigInvalid|FsGuardClusterDown"}')

    def test_every_dashboard_query_returns_data(self, watched):
        queries = dashboard_queries()
        assert len(queries) >= 20
        empty = [expr for expr in queries if not watched.query(expr)]
        assert empty == []
        instances = watched.api("label/instance/values", **{"match[]": "fs_guard_build_info"})
        assert instances == [watched.api("targets")["activeTargets"][0]["labels"]["instance"]]


class TestTheShippedRules:
    def test_promtool_checks_the_rules_file(self):
        promtool = need_prometheus()["promtool"]
        result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(alert_names())} rules found" in result.stdout

    def test_promtool_unit_tests_fire_each_alert_and_only_when_due(self, tmp_path):
        promtool = need_prometheus()["promtool"]
        shutil.copy(RULES, tmp_path / RULES.name)
        shutil.copy(RULES_TESTS, tmp_path / RULES_TESTS.name)
        result = subprocess.run([promtool, "test", "rules", RULES_TESTS.name], capture_output=True, text=True,
                                timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_every_alert_has_a_unit_test(self):
        tested = set(re.findall(r"alertname: (\w+)", RULES_TESTS.read_text()))
        assert tested == set(alert_names())

    def test_the_rules_and_the_dashboard_ship_inside_the_package(self):
        setup = (Path(__file__).parent.parent / "setup.cfg").read_text()
        assert re.search(r"^fs_guard = .*\bmonitoring/\*", setup, re.M)
        assert RULES.is_file() and DASHBOARD.is_file()


def alert_names() -> List[str]:
    return re.findall(r"^\s+- alert: (\w+)$", RULES.read_text(), re.M)


def dashboard_queries() -> List[str]:
    """Every panel's query, with Grafana's variables as an import with every node selected sets them."""
    dashboard = json.loads(DASHBOARD.read_text())
    values: Dict[str, str] = {"$instance": ".*", "$__rate_interval": "1m"}
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in values.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"unknown variable in {target['expr']}"
            queries.append(expr)
    return queries
