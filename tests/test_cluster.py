"""Clusters: limits and bans shared by several FreeSWITCH nodes through a real Redis.

Each test that needs Redis starts Debian's redis-server of its own (tests/redis_support.py);
without it they skip, unless FS_GUARD_REQUIRE_REDIS=1 (CI) makes them fail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import select
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import freeswitch
import fsctl
import pytest
from modpython import run_api
from redis_support import RedisServer, SilentServer, free_port, need_redis

from fs_guard.runtime import state
from fs_guard.runtime.cluster import Cluster
from fs_guard.runtime.cluster.script import LUA
from fs_guard.runtime.config import ClusterSettings, ConfigError, parse_config
from fs_guard.runtime.limits import for_call
from fs_guard.runtime.rules import destination_of
from fs_guard.runtime.tally import Tally

TESTS = Path(__file__).parent
#: A node process finds the fake freeswitch module, and fs-guard even when it is not installed.
NODE_PATH = os.pathsep.join((str(TESTS / "fakes"), str(TESTS.parent)))
OFFICE = {"sip_authorized": "true", "user_name": "1001", "domain_name": "pbx.example"}


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(need_redis(), tmp_path / "redis").start()
    yield server
    server.stop()


def limit(name="l", by="account", **spec):
    return {"name": name, "by": by, **spec}


def section(url, *limits, node="a", timeout_ms=None, **more):
    cluster = {"url": url, "node": node}
    if timeout_ms is not None:
        cluster["timeout_ms"] = timeout_ms
    return {"deny_prefix": ["00"], "cluster": cluster, "limits": list(limits), **more}


def compiled(url, *limits, **more):
    return parse_config(json.dumps({"fail2ban": section(url, *limits, **more)}), "t.json")


#: A script that keeps Redis busy for 600 ms, as a slow disk or a long command would.
BUSY_600_MS = ("local t = redis.call('TIME') local start = t[1] * 1000000 + t[2] "
               "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] - start > 600000")


def cluster_status():
    return json.loads(run_api("fs_guard.status json"))["cluster"]


def wait_for_cluster(condition, timeout=20.0):
    fsctl.wait_until(lambda: condition(cluster_status()), timeout)


class TestSetting:
    def errors(self, cluster):
        with pytest.raises(ConfigError) as caught:
            parse_config(json.dumps({"fail2ban": {"cluster": cluster}}), "t.json")
        return caught.value.errors

    def test_the_url_is_required_and_unknown_keys_and_bad_values_are_errors(self):
        assert self.errors({}) == ("fail2ban.cluster: 'url' is a required property",)
        assert self.errors({"url": "redis://r:6379", "prefix": "x"}) == ("fail2ban.cluster.prefix: unknown key",)
        assert self.errors({"url": "http://r:6379"})[0].startswith(
            "fail2ban.cluster.url: 'http://r:6379' does not match")
        assert self.errors({"url": "redis://r", "timeout_ms": 0})[0].startswith(
            "fail2ban.cluster.timeout_ms: 0 is less")
        assert self.errors({"url": "redis://r", "node": "fs 1"})[0].startswith("fail2ban.cluster.node: 'fs 1'")

    def test_a_url_redis_py_would_refuse_or_misread_is_an_error_that_says_what_to_write(self):
        assert self.errors({"url": "redis://127.0.0.1:notaport/0"}) == (
            "fail2ban.cluster.url: 'redis://127.0.0.1:notaport/0': the port must be a number from 1 to 65535, "
            "as in redis://127.0.0.1:6379/0",)
        assert self.errors({"url": "redis://:s3cret@127.0.0.1:99999/0"}) == (
            "fail2ban.cluster.url: 'redis://:***@127.0.0.1:99999/0': the port must be a number from 1 to 65535, "
            "as in redis://127.0.0.1:6379/0",)
        # redis-py would take any of these databases as database 0, or refuse the URL
        for url in ("redis://r:6379/-1", "redis://r:6379/db1", "redis://r:6379/1/2", "redis://r?db=x",
                    "unix:///run/redis.sock?db=two"):
            assert self.errors({"url": url}) == (f"fail2ban.cluster.url: '{url}': the database must be a number "
                                                 "(0, 1, ...), as in redis://127.0.0.1:6379/0",), url
        assert self.errors({"url": "unix://"}) == (
            "fail2ban.cluster.url: 'unix://': the socket's path is missing, as in unix:///run/redis/redis.sock",)
        for url in ("redis://r", "redis://r:6379/", "rediss://u:p@[::1]:6380/15?db=3", "unix:///run/redis.sock?db=1"):
            assert parse_config(json.dumps({"fail2ban": {"cluster": {"url": url}}}), "t").cluster.url == url

    def test_defaults_the_host_name_the_key_prefix_and_100_ms(self):
        cluster = parse_config(json.dumps({"fail2ban": {"cluster": {"url": "rediss://r:6380/0"}}}), "t").cluster
        assert (cluster.node, cluster.key_prefix, cluster.timeout) == (os.uname().nodename, "fs-guard:", 0.1)

    def test_without_it_there_is_no_cluster(self):
        assert parse_config(json.dumps({"fail2ban": {}}), "t").cluster is None

    def test_the_url_is_shown_without_its_password(self):
        cluster = parse_config(json.dumps({"fail2ban": {"cluster": {
            "url": "rediss://fsguard:s3cret@redis.example:6380/2?ssl_cert_reqs=required"}}}), "t").cluster
        assert cluster.shown_url == "rediss://fsguard:***@redis.example:6380/2?ssl_cert_reqs=required"
        assert "s3cret" not in repr(cluster)
        unix = parse_config(json.dumps({"fail2ban": {"cluster": {"url": "unix:///run/redis.sock?password=pw"}}}),
                            "t").cluster
        assert unix.shown_url == "unix:///run/redis.sock?password=***"


# -- the script against Tally: same calls, same outcomes ---------------------------------------------------


def view(outcome):
    return ([(h.limit.name, h.key, h.metric, h.count, h.threshold, h.level) for h in outcome.hits],
            outcome.rejected_by and outcome.rejected_by.name, outcome.key,
            None if outcome.blocked_until is None else round(outcome.blocked_until, 4), outcome.counted)


class Twins:
    """The same calls through a Tally and through Redis (on the calls' own clock)."""

    def __init__(self, server, *limits, **settings):
        self.config = compiled(server.url, *limits, **settings)
        self.alone = Tally()
        self.cluster = Cluster(self.config.cluster, server_time=False)
        self.cluster.connect()
        assert self.cluster.health.state == "up"
        self.kept = Tally()  # the node's own tally beside Redis

    def call(self, number, at, *, ip="192.0.2.1", account="1001@pbx.example", call_id=None, context="default",
             enforce=True):
        rules = self.config.rules_for(context)
        destination = destination_of(rules, number, needed=True)  # None without a dialling region
        country = destination.region if destination is not None else ""
        found, identities = for_call(self.config.limits, context, number, ip, account, (), destination)
        expected = self.alone.count(self.config.limits, found, identities, call_id, number, at, enforce,
                                    country=country)
        got = self.cluster.count(self.kept, self.config.limits, found, identities, call_id, number, at, enforce,
                                 country=country)
        assert view(got) == view(expected), (number, at)
        return got

    def release(self, call_id):
        self.alone.release(call_id)
        self.kept.release(call_id)
        self.cluster.release(call_id)


@pytest.mark.redis
class TestSameAsTally:
    def test_window_edges(self, redis_server):
        twins = Twins(redis_server, limit(window=60, calls={"warning": 1, "critical": 2}, action="reject"))
        rejected = [twins.call(n, at).rejected_by is not None for n, at in
                    (("1", 1000.0), ("2", 1030.0), ("3", 1059.999), ("3", 1060.0), ("4", 1060.0))]
        assert rejected == [False, False, True, False, True]

    def test_distinct_numbers_and_a_number_seen_again(self, redis_server):
        twins = Twins(redis_server, limit(window=600, distinct_numbers={"critical": 3}, action="reject"))
        for n, number in enumerate(["1", "2", "1", "3", "2", "4", "4"]):
            twins.call(number, float(n))
        assert twins.call("4", 602.0).rejected_by is None

    def test_distinct_destination_countries(self, redis_server):
        twins = Twins(redis_server, limit(window=600, distinct_countries={"warning": 1, "critical": 2},
                                          action="reject", block_for=60), dialling={"region": "GB"},
                      deny_prefix=[], destination_number_max_len=20)
        numbers = ["0033142685300", "0033142685301", "1000", "004930123456", "02079460000", "0034912345678"]
        rejected = [twins.call(number, float(n)).rejected_by is not None for n, number in enumerate(numbers)]
        # France twice, an extension (no country), Germany; Great Britain is the third country.
        assert rejected == [False, False, False, False, True, True]

    def test_counts_above_four_times_the_highest_threshold_are_not_kept(self, redis_server):
        twins = Twins(redis_server, limit(window=3600, calls={"critical": 2}, distinct_numbers={"warning": 3}))
        for n in range(40):
            outcome = twins.call(str(n), float(n))
        assert {hit.metric: hit.count for hit in outcome.hits} == {"calls": 9, "distinct_numbers": 13}

    def test_concurrent_calls_until_released_or_expired(self, redis_server):
        twins = Twins(redis_server, limit(concurrent={"warning": 1, "critical": 2}, action="reject"),
                      limit_settings={"call_max_duration": 3600})
        assert [twins.call("1", float(n), call_id=f"c{n}").rejected_by is None for n in range(4)] == [
            True, True, False, False]
        twins.release("c0")
        assert twins.call("1", 10.0, call_id="c4").rejected_by is None
        assert twins.call("1", 3601.5, call_id="c5").rejected_by is None  # c1 and c4 expired

    def test_a_block_rejects_every_identity_of_the_call_until_it_ends(self, redis_server):
        twins = Twins(redis_server, limit("fanout", prefixes=["00"], window=600, distinct_numbers={"critical": 1},
                                          action="reject", block_for=3600),
                      limit("ip", by="source_ip", window=60, calls={"warning": 100}))
        twins.call("0088216001", 0.0)
        assert twins.call("0088216002", 1.0).blocked_until == 3601.0
        assert twins.call("1002", 2.0, ip="192.0.2.99").rejected_by is not None  # the account is blocked
        assert twins.call("1002", 3.0, account=None).rejected_by is None  # the address is not
        assert twins.call("1002", 3601.0).rejected_by is None

    def test_monitor_mode_counts_and_alerts_but_never_rejects(self, redis_server):
        twins = Twins(redis_server, limit(window=60, calls={"critical": 1}, action="reject", block_for=60))
        assert [twins.call("1", float(n), enforce=False).rejected_by for n in range(3)] == [None] * 3

    def test_a_thousand_random_calls_decide_alike(self, redis_server):
        twins = Twins(
            redis_server,
            limit("acct-rate", window=30, calls={"warning": 3, "critical": 6}, action="reject", block_for=20),
            limit("ip-fanout", by="source_ip", window=45, distinct_numbers={"warning": 2, "critical": 5}),
            limit("premium-up", by="account_prefix", prefixes=["009", "0088"], concurrent={"critical": 2},
                  action="reject"),
            limit("public-ip", by="source_ip", contexts=["public"], window=10, calls={"critical": 3},
                  concurrent={"warning": 1}, action="reject", block_for=5),
            limit_settings={"call_max_duration": 40})
        rng = random.Random(20261125)
        at, up = 1_800_000_000.0, []
        for n in range(1000):
            at += rng.choice((0.001, 0.25, 1.0, 2.5, 7.0))
            call_id = f"call{n}"
            outcome = twins.call(rng.choice(["0091", "0092", "00881", "1000", "1001", "0093"]), round(at, 3),
                                 ip=rng.choice(["192.0.2.1", "192.0.2.2", "2001:db8::1"]),
                                 account=rng.choice(["1001@pbx.example", "1002@pbx.example", None]),
                                 call_id=call_id, context=rng.choice(["public", "default"]),
                                 enforce=rng.random() > 0.1)
            if outcome.counted:
                up.append(call_id)
            if up and rng.random() < 0.4:
                twins.release(up.pop(rng.randrange(len(up))))


# -- faults ----------------------------------------------------------------------------------------------


def causes(call, count, number="100", **variables):
    """Hang-up causes of ``count`` calls of the office account ("NONE": let through)."""
    channel = {**OFFICE, **variables}
    return [call(number, context="default", **channel).hangupCause() for _ in range(count)]


@pytest.mark.redis
class TestFaults:
    def test_redis_killed_and_restarted_mid_run(self, redis_server, write_config, call, hook):
        write_config(section(redis_server.url, limit(window=3600, calls={"critical": 10}, action="reject"),
                             timeout_ms=200))
        wait_for_cluster(lambda c: c["state"] == "up")
        assert causes(call, 6) == ["NONE"] * 6
        assert redis_server.client().zcard("fs-guard:calls:l:account:1001@pbx.example") == 6
        redis_server.stop()
        # The node goes on alone, with its own counts: 4 more, never an 11th.
        assert causes(call, 6) == ["NONE"] * 4 + ["CALL_REJECTED"] * 2
        status = cluster_status()
        assert status["state"] == "down" and "Error" in status["last_error"]
        assert state.STATS.snapshot()["cluster_local_decisions"] == 6
        errors = [line for line in fsctl.log_lines("err") if "cluster" in line]
        assert len(errors) == 1 and "limits are decided with this node's own counts" in errors[0]
        assert not any("Traceback" in line for line in fsctl.log_lines())
        redis_server.start()  # empty: it kept nothing
        wait_for_cluster(lambda c: c["state"] == "up")
        # Redis lost the count; the node's own still rejects, and Redis counts again.
        assert causes(call, 1) == ["CALL_REJECTED"]
        assert causes(call, 3, user_name="1002") == ["NONE"] * 3
        assert redis_server.client().zcard("fs-guard:calls:l:account:1002@pbx.example") == 3
        assert any("answers; node a shares" in line for line in fsctl.log_lines("notice"))

    def test_hang_ups_and_ban_lines_while_redis_refuses_are_done_when_it_answers_again(
            self, redis_server, write_config, call, hook, ban_log):
        write_config(section(redis_server.url, limit("up", concurrent={"critical": 1}, action="reject"),
                             timeout_ms=200))
        wait_for_cluster(lambda c: c["ban_follower"]["reading_since"] is not None)
        first = call("100", context="default", **OFFICE)
        assert first.hangupCause() == "NONE"
        admin = redis_server.client()
        admin.config_set("requirepass", "changed")  # Redis keeps its data but refuses this node
        admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        fsctl.hang_up(first)
        assert call("0044123456", ip="203.0.113.7").hangupCause() == "CALL_REJECTED"
        wait_for_cluster(lambda c: c["state"] == "down" and c["waiting"] == {"releases": 1, "ban_lines": 1})
        admin.config_set("requirepass", "")
        wait_for_cluster(lambda c: c["state"] == "up" and c["waiting"] == {"releases": 0, "ban_lines": 0})
        assert admin.zcard("fs-guard:up:up:account:1001@pbx.example") == 0
        (shared,) = [fields for _, fields in admin.xrange("fs-guard:bans")]
        assert (shared[b"node"], shared[b"line"].decode()) == (b"a", ban_log.lines()[0])
        assert call("100", context="default", **OFFICE).hangupCause() == "NONE"

    def test_a_ban_line_added_twice_after_a_timeout_is_written_once(self, redis_server, write_config, call, ban_log):
        write_config(section(redis_server.url, timeout_ms=100))
        fsctl.wait_until(lambda: cluster_status()["state"] == "up")
        other = Cluster(ClusterSettings(redis_server.url, "fs-guard:", "b", 0.1))  # another node, reading
        other.connect()
        other.follower.join_group()
        busy = threading.Thread(target=redis_server.client().eval, args=(BUSY_600_MS, 0))
        busy.start()  # Redis is slow: requests wait, and are carried out afterwards
        time.sleep(0.1)
        assert call("0044123456", ip="203.0.113.7").hangupCause() == "CALL_REJECTED"
        assert state.CLUSTER.health.state == "down"  # the XADD timed out: it is kept to try again
        busy.join()
        fsctl.wait_until(lambda: state.CLUSTER.flush() or cluster_status()["waiting"]["ban_lines"] == 0)
        assert redis_server.client().xlen("fs-guard:bans") == 2  # carried out late, and tried again
        stop = threading.Event()
        for _ in range(4):
            other.follower.step(stop)
        other.close()
        assert [line.endswith(" node=a") for line in ban_log.lines()] == [False, True]

    def test_the_startup_script_connects_when_freeswitch_starts_before_any_call(self, redis_server, write_config):
        from modpython import run_startup, unload

        write_config(section(redis_server.url))
        run_startup("fs_guard.events")
        try:
            fsctl.wait_until(lambda: state.CLUSTER is not None and state.CLUSTER.health.state == "up")
            assert any("answers; node a shares its limits and bans" in line for line in fsctl.log_lines("notice"))
            assert redis_server.client().script_exists(hashlib.sha1(LUA.encode()).hexdigest()) == [True]
        finally:
            fsctl.stop_running()
            unload()

    def test_a_redis_that_never_answers_holds_a_call_at_most_the_timeout(self, write_config, call):
        need_redis()
        silent = SilentServer()
        try:
            write_config(section(silent.url, limit(window=3600, calls={"critical": 2}, action="reject"),
                                 timeout_ms=300))
            state.CONFIG.current()  # the configuration is loaded: what follows times Redis alone
            began = time.monotonic()
            assert causes(call, 1) == ["NONE"]  # waits for the first connection's answer, in vain: decided alone
            assert 0.29 <= time.monotonic() - began < 2 * 0.3 + 0.2  # connect, first answer: the timeout each at most
            assert state.CLUSTER.health.state == "down"
            fsctl.wait_until(lambda: state.CLUSTER.health.retry_in() == 0)
            began = time.monotonic()
            assert causes(call, 1) == ["NONE"]  # this one tries Redis again, waits the timeout, decides alone
            assert 0.29 <= time.monotonic() - began < 0.3 + 0.2
            began = time.monotonic()
            assert causes(call, 1) == ["CALL_REJECTED"]  # backing off: not even tried
            assert time.monotonic() - began < 0.1
            status = cluster_status()
            assert status["state"] == "down" and status["last_error"].startswith("TimeoutError")
            assert state.STATS.snapshot()["cluster_local_decisions"] == 3
        finally:
            silent.close()

    def test_nothing_listening_at_start_every_call_is_decided_alone_at_once(self, write_config, call):
        need_redis()
        write_config(section(f"redis://127.0.0.1:{free_port()}/0",
                             limit(window=3600, calls={"critical": 2}, action="reject")))
        began = time.monotonic()
        assert causes(call, 4) == ["NONE", "NONE", "CALL_REJECTED", "CALL_REJECTED"]
        assert time.monotonic() - began < 0.5
        fsctl.wait_until(lambda: cluster_status()["state"] == "down")
        assert "ConnectionError" in cluster_status()["last_error"]

    def test_a_database_this_redis_lacks_is_a_configuration_error_not_a_redis_fault(
            self, redis_server, write_config, call):
        url = redis_server.url[:-len("/0")] + "/99"
        write_config(section(url, limit(window=3600, calls={"critical": 1}, action="reject")))
        assert causes(call, 2) == ["NONE", "CALL_REJECTED"]  # decided with the node's own counts
        wait_for_cluster(lambda c: c["state"] == "misconfigured")
        text = run_api("fs_guard.status")
        assert "CONFIGURATION ERROR since" in text and "DOWN" not in text
        assert cluster_status()["last_error"] == (
            f"configuration error: fail2ban.cluster.url: '{url}': this Redis has no such database (it has 0 to 15 "
            "unless its 'databases' setting says more): name one it has")
        (error,) = [line for line in fsctl.log_lines("err") if "cluster" in line]
        assert error.startswith("fs-guard: cluster: configuration error: fail2ban.cluster.url: ")
        assert "failed" not in error and "answers again" not in error

    def test_a_url_redis_py_refuses_is_a_configuration_error_and_the_last_good_one_stays(
            self, redis_server, write_config, call):
        write_config(section(redis_server.url, limit(window=3600, calls={"critical": 1}, action="reject")))
        assert causes(call, 1) == ["NONE"]
        write_config(section("redis://127.0.0.1:notaport/0", limit(window=3600, calls={"critical": 5},
                                                                   action="reject")))
        assert causes(call, 1) == ["CALL_REJECTED"]  # the file in force before: critical > 1, in Redis
        assert "fail2ban.cluster.url: 'redis://127.0.0.1:notaport/0': the port must be a number" in \
            json.loads(run_api("fs_guard.status json"))["config"]["last_error"]
        assert cluster_status()["url"] == redis_server.url


# -- clocks: Redis's and the node's ---------------------------------------------------------------------

#: How far the node's clock is from Redis's in these tests: an hour either way. Redis runs on this
#: machine's clock, so the node's is shifted; a block time left in Redis's clock is off by this much.
SKEWS = pytest.mark.parametrize("skew", [3600.0, -3600.0], ids=["node-ahead", "node-behind"])
#: Slack for the real time that passes between reading the two clocks (a round trip, a thread switch).
SLACK = 5.0


@pytest.mark.redis
class TestClocks:
    @SKEWS
    def test_a_shared_block_ends_in_the_nodes_time_on_the_node_that_set_it_and_on_another(
            self, redis_server, skew):
        config = compiled(redis_server.url, limit(window=60, calls={"critical": 1}, action="reject",
                                                  block_for=600))
        found, identities = for_call(config.limits, "default", "100", "192.0.2.1", "1001@pbx.example")

        def node(name, node_clock_skew):
            cluster = Cluster(dataclasses.replace(config.cluster, node=name))
            cluster.connect()
            assert cluster.health.state == "up"
            tally = Tally()

            def count():
                now = time.time() + node_clock_skew
                return now, cluster.count(tally, config.limits, found, identities, None, "100", now)
            return tally, count

        setter, count = node("a", skew)
        assert count()[1].rejected_by is None
        now, outcome = count()  # the second call: rejected, and the key blocked for 600 s
        assert outcome.rejected_by is not None and outcome.blocked_until == pytest.approx(now + 600, abs=SLACK)
        (block,) = setter.blocks(now)
        assert block.until == outcome.blocked_until

        other, count = node("b", -skew)  # the other way off: the block comes from Redis alone
        now, outcome = count()
        assert outcome.rejected_by is not None and outcome.blocked_until == pytest.approx(now + 600, abs=SLACK)
        assert [b.until for b in other.blocks(now)] == [outcome.blocked_until]

    @SKEWS
    def test_status_and_the_alert_show_a_shared_block_in_the_nodes_time(
            self, redis_server, write_config, call, monkeypatch, skew):
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + skew)  # the node's clock, Redis's untouched
        write_config(section(redis_server.url, limit(window=60, calls={"critical": 1}, action="reject",
                                                     block_for=600)))
        fsctl.wait_until(lambda: cluster_status()["state"] == "up")
        alerts = freeswitch.EventConsumer("CUSTOM", "fs_guard::alert")
        try:
            assert causes(call, 2) == ["NONE", "CALL_REJECTED"]
            rejected_at = time.time()
            event = alerts.pop()
        finally:
            alerts.cleanup()
        assert float(event.getHeader("blocked-until")) == pytest.approx(rejected_at + 600, abs=SLACK)
        (block,) = json.loads(run_api("fs_guard.status json"))["limits"]["blocked"]
        assert block["identity"] == "account:1001@pbx.example"
        assert block["seconds_left"] == pytest.approx(600, abs=SLACK)
        until = datetime.fromisoformat(block["until"]).timestamp()
        assert until == pytest.approx(rejected_at + 600, abs=SLACK)
        (kept,) = state.TALLY.blocks(time.time())
        assert kept.until == pytest.approx(until, abs=0.001)
        assert causes(call, 1) == ["CALL_REJECTED"]  # the node's copy holds in its own time


# -- status and check-config -------------------------------------------------------------------------


@pytest.mark.redis
class TestStatusAndCheck:
    def test_status_shows_the_cluster_its_state_and_last_error(self, redis_server, write_config, hook):
        write_config(section("redis://:s3cret@127.0.0.1:%d/0" % redis_server.port, node="fs1"))
        text = run_api("fs_guard.status")
        assert f"cluster:        node fs1 via redis://:***@127.0.0.1:{redis_server.port}/0" in text
        assert "s3cret" not in text
        redis_server.client().config_set("requirepass", "s3cret")
        wait_for_cluster(lambda c: c["state"] == "up")
        text = run_api("fs_guard.status")
        assert "up since" in text  # the last error (a password refused before) stays shown, with its time
        wait_for_cluster(lambda c: c["ban_follower"]["reading_since"] is not None)
        assert "ban follower: reading other nodes' ban lines since" in run_api("fs_guard.status")
        redis_server.stop()
        wait_for_cluster(lambda c: c["state"] == "down")
        text = run_api("fs_guard.status")
        assert "DOWN since" in text and "limits decided with this node's own counts" in text
        assert "  last error:   ConnectionError" in text

    def test_check_config_pings_redis(self, redis_server, tmp_path):
        path = tmp_path / "fs_guard.json"
        path.write_text(json.dumps({"fail2ban": section(redis_server.url, node="fs1")}))
        result = _fs_guard("check-config", str(path))
        assert result.returncode == 0, result.stderr
        assert (f"cluster:       node fs1, {redis_server.url} (keys fs-guard:*, timeout 100 ms): OK, PING answered in"
                in result.stdout)
        redis_server.stop()
        result = _fs_guard("check-config", str(path))
        assert result.returncode == 1
        assert "NOT ANSWERING: ConnectionError" in result.stdout
        assert "the cluster's Redis does not answer" in result.stderr

    def test_check_config_says_what_to_change_for_a_bad_port_or_a_database_redis_lacks(self, redis_server, tmp_path):
        path = tmp_path / "fs_guard.json"
        for url, told in (
                ("redis://127.0.0.1:notaport/0", "fail2ban.cluster.url: 'redis://127.0.0.1:notaport/0': the port "
                                                 "must be a number from 1 to 65535"),
                (redis_server.url[:-len("/0")] + "/16", "this Redis has no such database (it has 0 to 15 unless "
                                                        "its 'databases' setting says more): name one it has"),
                (redis_server.url + "?socket_timeout=soon", "Invalid value for 'socket_timeout' in connection URL")):
            path.write_text(json.dumps({"fail2ban": section(url)}))
            result = _fs_guard("check-config", str(path))
            assert result.returncode == 2, (url, result.stdout, result.stderr)
            assert told in result.stderr and "does not answer" not in result.stderr + result.stdout

    def test_check_config_without_a_cluster_says_none(self, tmp_path):
        path = tmp_path / "fs_guard.json"
        path.write_text(json.dumps({"fail2ban": {}}))
        result = _fs_guard("check-config", str(path))
        assert result.returncode == 0 and "cluster:       none" in result.stdout

    def test_a_changed_cluster_setting_takes_effect_on_the_next_call(self, redis_server, write_config, call):
        rate = limit(window=60, calls={"critical": 100}, action="reject")
        write_config(section(f"redis://127.0.0.1:{free_port()}/0", rate))
        assert causes(call, 1) == ["NONE"]
        fsctl.wait_until(lambda: cluster_status()["state"] == "down")
        write_config(section(redis_server.url, rate, node="renamed"))
        assert causes(call, 1) == ["NONE"]  # waits for the new connection: counted in Redis
        assert cluster_status()["node"] == "renamed" and cluster_status()["state"] == "up"
        assert causes(call, 1) == ["NONE"]
        assert redis_server.client().zcard("fs-guard:calls:l:account:1001@pbx.example") == 2

    def test_unblock_lifts_the_shared_block_too(self, redis_server, write_config, call):
        write_config(section(redis_server.url, limit(window=60, calls={"critical": 1}, action="reject",
                                                     block_for=3600)))
        fsctl.wait_until(lambda: cluster_status()["state"] == "up")
        assert causes(call, 3) == ["NONE", "CALL_REJECTED", "CALL_REJECTED"]
        assert redis_server.client().exists("fs-guard:block:account:1001@pbx.example")
        assert "lifted l on account:1001@pbx.example" in run_api("fs_guard.status unblock 1001@pbx.example")
        assert not redis_server.client().keys("fs-guard:block:*")
        assert not redis_server.client().keys("fs-guard:calls:*")
        assert causes(call, 1) == ["NONE"]


def _fs_guard(*args):
    environment = {k: v for k, v in os.environ.items() if k != "FS_GUARD_CONFIG"}
    return subprocess.run([sys.executable, "-m", "fs_guard", *args], capture_output=True, text=True,
                          env=environment, timeout=60)


#: Put first in a fresh process: redis-py cannot be imported there, as after a plain ``pip install .``.
WITHOUT_REDIS_PY = (
    "import sys\n"
    "class NoRedis:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.partition('.')[0] == 'redis':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NoRedis())\n")
INSTALL_THE_EXTRA = ("redis-py is not installed: pip install 'fs-guard[cluster]' (for FreeSWITCH, from the source "
                     "directory: fs-guard install --package '.[cluster]')")


class TestWithoutRedisPy:
    def run(self, script, *args):
        result = subprocess.run([sys.executable, "-c", WITHOUT_REDIS_PY + script, *args], capture_output=True,
                                text=True, timeout=60, env={**os.environ, "PYTHONPATH": NODE_PATH,
                                                            "FS_GUARD_CONFIG": ""})
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def test_check_config_exits_2_and_names_the_extra_to_install(self, tmp_path):
        path = tmp_path / "fs_guard.json"
        path.write_text(json.dumps({"fail2ban": section("redis://127.0.0.1:6379/0")}))
        result = self.run("from fs_guard.offline.cli import main; sys.exit(main(sys.argv[1:]))",
                          "check-config", str(path))
        assert result.returncode == 2
        assert "CONFIGURATION ERROR" in result.stdout
        assert f"fs-guard: the cluster setting cannot work: {INSTALL_THE_EXTRA}" in result.stderr

    def test_the_node_decides_alone_and_status_and_console_say_what_to_install(self, tmp_path):
        (tmp_path / "fs_guard.json").write_text(json.dumps({"fail2ban": section(
            "redis://127.0.0.1:6379/0", limit(by="source_ip", window=3600, calls={"critical": 1}, action="reject"))}))
        result = self.run(
            "import json\n"
            "import fsctl\n"
            "fsctl.reset({'conf_dir': sys.argv[1], 'log_dir': sys.argv[1]})\n"
            "from modpython import run_api, run_app\n"
            "from fs_guard.runtime import state\n"
            "causes = []\n"
            "for _ in range(2):\n"
            "    session = fsctl.call_session(destination_number='1', context='public', sip_network_ip='192.0.2.1')\n"
            "    run_app('fs_guard.screen', session)\n"
            "    causes.append(session.hangupCause())\n"
            "fsctl.wait_until(lambda: state.CLUSTER.health.state != 'connecting')\n"
            "print(json.dumps([causes, run_api('fs_guard.status'), json.loads(run_api('fs_guard.status json')),"
            " fsctl.log_lines('err')]))\n", str(tmp_path))
        assert result.returncode == 0, result.stderr
        causes, text, status, errors = json.loads(result.stdout)
        assert causes == ["NONE", "CALL_REJECTED"]  # with the node's own counts
        assert "CONFIGURATION ERROR since" in text and "DOWN" not in text
        assert (status["cluster"]["state"], status["cluster"]["last_error"]) == (
            "misconfigured", f"configuration error: {INSTALL_THE_EXTRA}")
        assert errors == [f"fs-guard: cluster: configuration error: {INSTALL_THE_EXTRA}; limits are decided with this "
                          "node's own counts until it is fixed\n"]


@pytest.mark.redis
def test_freeswitch_imports_redis_only_with_a_cluster_and_connects_under_its_recursion_limit(tmp_path, redis_server):
    """Inside FreeSWITCH Python's recursion limit is 240: importing redis-py, connecting and
    counting a call in Redis fit in it (a fresh process shows it)."""
    script = (
        "import json, sys, threading; sys.setrecursionlimit(240)\n"
        "import fsctl\n"
        "fsctl.reset({'conf_dir': sys.argv[1], 'log_dir': sys.argv[1]})\n"
        "from modpython import run_app\n"
        "from fs_guard.runtime import state\n"
        "def call():\n"
        "    run_app('fs_guard.screen', fsctl.call_session(destination_number='1', context='public',"
        " sip_network_ip='192.0.2.1'))\n"
        "def calls():\n"
        "    call()\n"
        "    fsctl.wait_until(lambda: state.CLUSTER.health.state != 'connecting')\n"
        "    call()\n"
        "thread = threading.Thread(target=calls); thread.start(); thread.join()\n"
        "print(json.dumps([state.CLUSTER.health.state, state.CLUSTER.health.last_error, fsctl.log_lines('err'),"
        " sorted({name.split('.')[0] for name in sys.modules} & {'redis'})]))\n")
    (tmp_path / "fs_guard.json").write_text(json.dumps({"fail2ban": section(
        redis_server.url, limit(by="source_ip", window=60, calls={"critical": 5}))}))
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": NODE_PATH})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["up", None, [], ["redis"]]
    assert redis_server.client().zcard("fs-guard:calls:l:source_ip:192.0.2.1") == 2  # the first waited to connect


# -- two nodes, two processes, one Redis ----------------------------------------------------------------


class Node:
    """A node process (tests/cluster_node.py) with its own conf_dir and log_dir."""

    def __init__(self, root: Path, name: str, fail2ban: dict) -> None:
        self.name = name
        self.conf, self.logs = root / name / "conf", root / name / "log"
        self.conf.mkdir(parents=True)
        self.logs.mkdir(parents=True)
        (self.conf / "fs_guard.json").write_text(json.dumps({"fail2ban": fail2ban}))
        self.process = None

    def start(self, at_once: bool = False) -> "Node":
        """Start it; ``at_once``: it takes calls as soon as its startup script is started."""
        env = {k: v for k, v in os.environ.items() if k != "FS_GUARD_CONFIG"}
        self.process = subprocess.Popen([sys.executable, str(TESTS / "cluster_node.py"), str(self.conf),
                                         str(self.logs)] + (["at-once"] if at_once else []),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env={**env, "PYTHONPATH": NODE_PATH})
        assert self._answer() == {"ready": True}
        return self

    def send(self, **command) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def _answer(self, timeout: float = 60.0) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        assert ready, f"node {self.name} did not answer within {timeout} s"
        line = self.process.stdout.readline()
        assert line, f"node {self.name} exited ({self.process.wait()})"
        return json.loads(line)

    def ask(self, **command) -> dict:
        self.send(**command)
        return self._answer()

    def calls(self, count=1, **command) -> list:
        return self.ask(op="calls", count=count, **command)["causes"]

    def quit(self) -> dict:
        answer = self.ask(op="quit")
        self.process.wait(10)
        self.process.stdin.close()
        self.process.stdout.close()
        self.process = None
        return answer

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def ban_lines(self) -> list:
        path = self.logs / "fs-guard-ban.log"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def nodes(tmp_path, redis_server):
    """Start nodes named a, b, ... with the same configuration (their own node names)."""
    started = []

    def start(*limits, names=("a", "b"), at_once=(), **more):
        for name in names:
            node = Node(tmp_path, name, section(redis_server.url, *limits, node=name, **more))
            started.append(node.start(at_once=name in at_once))
        return started

    yield start
    for node in started:
        node.kill()


def wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still not true after {timeout} s"
        time.sleep(0.02)


@pytest.mark.redis
class TestTwoNodes:
    def test_calls_placed_at_once_on_two_nodes_are_counted_exactly(self, nodes):
        a, b = nodes(limit("acct", window=3600, calls={"critical": 40}, action="reject"),
                     limit("up", concurrent={"critical": 1000}, action="reject"))
        at = time.time() + 1.0
        for node in (a, b):
            node.send(op="calls", count=120, threads=4, at=at, number="10{n}", vars=OFFICE)
        results = [node._answer()["causes"] for node in (a, b)]
        accepted = sum(cause == "NONE" for node_causes in results for cause in node_causes)
        assert accepted == 40  # one node alone would let exactly this many through, no more, no fewer
        assert all(len(node_causes) == 120 and node_causes.count("NONE") > 0 for node_causes in results)
        assert all(node.ask(op="status")["counters"].get("cluster_local_decisions", 0) == 0 for node in (a, b))

    def test_a_node_sent_a_burst_right_after_it_starts_counts_it_in_redis(self, nodes, redis_server):
        """Calls that arrive while the node is still connecting wait for the connection (the
        startup script makes it when FreeSWITCH starts): none is decided on the node's own counts."""
        a, b = nodes(limit("ip", by="source_ip", window=3600, calls={"critical": 4}, action="reject"),
                     at_once=("b",))
        # Six calls in a row from one address: four on b right after it started, two on a.
        assert b.calls(4, ip="203.0.113.9") == ["NONE"] * 4
        assert a.calls(2, ip="203.0.113.9") == ["CALL_REJECTED"] * 2  # b's four are in the shared window
        assert redis_server.client().zcard("fs-guard:calls:ip:source_ip:203.0.113.9") == 4
        assert b.ask(op="status")["counters"].get("cluster_local_decisions", 0) == 0

    def test_a_block_set_on_one_node_rejects_on_the_other(self, nodes):
        a, b = nodes(limit("fanout", contexts=["default"], prefixes=["0088"], window=600,
                           distinct_numbers={"critical": 2}, action="reject", block_for=3600), deny_prefix=[])
        assert a.calls(3, number="0088216{n}", vars=OFFICE) == ["NONE", "NONE", "CALL_REJECTED"]
        # Locked out on b too, even in a context where no limit counts the account.
        assert b.calls(1, number="1002", context="public", vars=OFFICE) == ["CALL_REJECTED"]
        assert b.calls(1, number="1002", vars={**OFFICE, "user_name": "1002"}) == ["NONE"]
        assert b.ask(op="status")["counters"]["limit_blocked_calls"] == 1

    def test_unblock_on_one_node_lifts_the_block_on_every_node(self, nodes):
        a, b = nodes(limit("acct", window=60, calls={"critical": 1}, action="reject", block_for=3600))
        assert a.calls(2, vars=OFFICE) == ["NONE", "CALL_REJECTED"]
        assert b.calls(1, vars=OFFICE) == ["CALL_REJECTED"]  # b holds the block now too
        lifted = a.ask(op="api", args="unblock 1001@pbx.example")["text"]
        assert "unblock 1001@pbx.example: lifted acct on account:1001@pbx.example" in lifted
        assert b.calls(1, vars=OFFICE) == ["NONE"]  # at once: b's own copy does not put it back
        wait_for(lambda: b.ask(op="status")["limits"]["blocked"] == [])  # and b hears of it

    def test_a_concurrent_call_on_one_node_is_released_for_the_other_when_it_ends(self, nodes):
        a, b = nodes(limit("up", concurrent={"critical": 1}, action="reject"))
        first = a.ask(op="calls", count=1, vars=OFFICE)
        assert first["causes"] == ["NONE"]
        assert b.calls(1, vars=OFFICE) == ["CALL_REJECTED"]
        a.ask(op="hangup", uuids=first["uuids"])
        assert b.calls(1, vars=OFFICE) == ["NONE"]

    def test_a_ban_line_reaches_the_other_node_once_tagged_with_its_origin(self, nodes):
        a, b = nodes()
        assert a.calls(1, number="0044123456", ip="203.0.113.7") == ["CALL_REJECTED"]
        (line,) = a.ban_lines()
        wait_for(lambda: b.ban_lines())
        assert b.ban_lines() == [line + " node=a"]  # the original time, as written on a
        # b restarts: nothing is written twice, and what a wrote meanwhile arrives when b is back.
        b.quit()
        assert a.calls(2, number="00{n}", ip="198.51.100.9") == ["CALL_REJECTED"] * 2
        b.start()
        assert b.calls(1, number="0033", ip="192.0.2.50") == ["CALL_REJECTED"]
        wait_for(lambda: len(b.ban_lines()) == 4 and len(a.ban_lines()) == 4)
        time.sleep(0.5)  # anything doubled would be there by now
        a_lines, b_lines = a.ban_lines(), b.ban_lines()
        (own,) = [line for line in b_lines if " node=" not in line]
        assert sorted(b_lines) == sorted([line + " node=a" for line in a_lines[:3]] + [own])
        assert a_lines[3] == own + " node=b"
        assert a.ask(op="status")["counters"]["cluster_bans_received"] == 1
        assert b.ask(op="status")["counters"]["cluster_bans_received"] == 2  # since it restarted

    def test_a_node_shuts_down_within_2_s_with_the_follower_running(self, nodes):
        (a,) = nodes(names=("a",))
        answer = a.quit()
        assert answer["returned"] and answer["seconds"] < 2.0
