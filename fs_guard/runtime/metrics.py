"""fs-guard's numbers in Prometheus' text format, read from its own state when asked.

A custom collector (client_python's ``Collector`` protocol): at each scrape, and for
``python fs_guard.status prometheus``, it reads the counters the screen and the hook already
keep (``state.STATS``), the configuration store, the fraud limits' tally and the cluster's
health. Nothing on the call path touches a metric, so calls cost what they cost without it.

Imported only when a configuration has ``metrics`` or the status command asks for
``prometheus``: it imports prometheus_client (``pip install 'fs-guard[metrics]'``).

Names follow Prometheus' conventions: ``fs_guard_`` first, counters end in ``_total``, times
in seconds; label values come from fixed sets (reasons, levels, the countries libphonenumber
knows) or from the operator's own configuration and dialplan (limit names, contexts), never from a
caller: no address, number or account is ever a label.
"""

from __future__ import annotations

import platform
import re
import time
from types import ModuleType
from typing import Callable, Dict, Iterator, Optional, Tuple

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import CollectorRegistry

from fs_guard import __version__
from fs_guard.runtime import state, stats
from fs_guard.runtime.config import ClusterSettings, Config, ConfigStore
from fs_guard.runtime.limits import CRITICAL, WARNING
from fs_guard.runtime.tally import Tally

PREFIX = "fs_guard_"
#: Counters kept in ``state.STATS`` that get a name (and help) of their own here; any other
#: counter a later version adds is served as ``fs_guard_<name>_total`` all the same.
COUNTERS: Dict[str, Tuple[str, str]] = {
    stats.BAN_LINES: ("ban_lines_written", "Ban-log lines written (fail2ban reads them)."),
    stats.BAN_LOG_ERRORS: ("ban_log_write_errors", "Ban-log lines that could not be written."),
    stats.REGISTER_FAILURES: ("register_failures", "sofia::register_failure events (wrong password, unknown user)."),
    stats.SCANNER_REGISTRATIONS: ("scanner_registrations", "sofia::pre_register events from a denied user agent."),
    stats.EVENTS_MALFORMED: ("events_malformed", "Events without a usable source address or kind."),
    stats.EVENTS_DROPPED: ("events_dropped", "Events the hook could not handle or never read."),
    stats.ERRORS: ("internal_errors", "Internal errors (each one logged, rate-limited, on the console)."),
    stats.LIMIT_BLOCKED_CALLS: ("limit_blocked_calls", "Calls rejected because their key was blocked by a limit."),
    stats.CONFIG_WAIT_TIMEOUTS: ("config_wait_timeouts",
                                 "Calls decided with the built-in defaults: the first configuration load was slow."),
    stats.CONFIG_LOADS: ("config_loads", "Configuration files loaded (a changed file is loaded again)."),
    stats.CONFIG_LOAD_ERRORS: ("config_load_errors",
                               "Configuration files that did not take effect (the last good one stayed)."),
}
#: Offences that wrote no ban line, by why (``fs_guard_offences_not_banned_total``).
NOT_BANNED = {stats.NOT_BANNED_TRUSTED: "trusted_network", stats.NOT_BANNED_BAD_ADDRESS: "bad_address"}
LEVELS = (WARNING, CRITICAL)
LIMIT_COUNTER = re.compile(rf"limit\.(.+)\.({WARNING}|{CRITICAL})")
PLAIN_NAME = re.compile(r"[a-z][a-z0-9_]*")


#: When the event hook started, or None: ``fs_guard.runtime.sofia_events.started_at``, passed in
#: by the hook's endpoint and by the status command (the hook imports this module, not the reverse).
HookStarted = Callable[[], Optional[float]]


class Collector:
    """Reads ``source`` (the ``fs_guard.runtime.state`` module, or a stand-in) at every collect."""

    def __init__(self, hook_started: HookStarted, source: ModuleType = state) -> None:
        self._hook_started = hook_started
        self._source = source

    def collect(self) -> Iterator[Metric]:
        source = self._source
        config = source.CONFIG.current()  # what the next call would use: picks up an edited file
        counters = source.counters()
        yield _build_info()
        yield _gauge("start_time_seconds", "When the counters started (the module's load).", source.STATS.started)
        yield _gauge("event_hook_up", "1 while the fs_guard.events startup-script runs.",
                     int(self._hook_started() is not None))
        yield from _calls(source.STATS.calls())
        yield from _counters(counters, config)
        yield from _config(source.CONFIG)
        yield from _limits(source.TALLY, config)
        if config.cluster is not None:
            yield from _cluster(config.cluster)


def _build_info() -> Metric:
    info = InfoMetricFamily(PREFIX + "build", "fs-guard's version and the Python running it.")
    info.add_metric([], {"version": __version__, "python": platform.python_version()})
    return info


def _gauge(name: str, text: str, value: float) -> Metric:
    return GaugeMetricFamily(PREFIX + name, text, value=value)


def _counter(name: str, text: str, value: float) -> Metric:
    return CounterMetricFamily(PREFIX + name, text, value=value)


def _calls(calls: Dict[stats.CallKey, int]) -> Iterator[Metric]:
    screened = CounterMetricFamily(PREFIX + "calls_screened", "Calls screened, by dialplan context.",
                                   labels=["context"])
    accepted = CounterMetricFamily(PREFIX + "calls_accepted", "Calls let through, by dialplan context.",
                                   labels=["context"])
    rejected = CounterMetricFamily(PREFIX + "calls_rejected", "Calls hung up, by dialplan context and reason.",
                                   labels=["context", "reason"])
    would = CounterMetricFamily(PREFIX + "calls_would_reject",
                                "Calls monitor mode let through that would have been rejected, by context and reason.",
                                labels=["context", "reason"])
    by_context: Dict[str, int] = {}
    for (outcome, context), count in sorted(calls.items()):
        by_context[context] = by_context.get(context, 0) + count
        if outcome.startswith(stats.REJECTED_PREFIX):
            rejected.add_metric([context, outcome[len(stats.REJECTED_PREFIX):]], count)
        elif outcome.startswith(stats.MONITOR_PREFIX):
            would.add_metric([context, outcome[len(stats.MONITOR_PREFIX):]], count)
        else:
            accepted.add_metric([context], count)
    for context, count in by_context.items():
        screened.add_metric([context], count)
    return iter((screened, accepted, rejected, would))


def _counters(counters: Dict[str, int], config: Config) -> Iterator[Metric]:
    not_banned = CounterMetricFamily(PREFIX + "offences_not_banned",
                                     "Offences that wrote no ban line, by why (trusted network, no valid address).",
                                     labels=["why"])
    hits = CounterMetricFamily(PREFIX + "limit_hits", "Fraud-limit hits, by limit and level.", labels=["limit", "level"])
    countries = CounterMetricFamily(PREFIX + "destination_calls_rejected",
                                    "Rejected calls whose number was classified, by destination country "
                                    "(ISO 3166 region; 001: the international networks).", labels=["country"])
    for name, why in NOT_BANNED.items():
        not_banned.add_metric([why], counters.get(name, 0))
    # Every configured limit's series from 0, so that its first hit is an increase an alert sees.
    hit_counts = {(limit.name, level): 0 for limit in config.limits.limits for level in LEVELS}
    for name, (metric, text) in COUNTERS.items():
        yield _counter(metric, text, counters.get(name, 0))
    for name, value in sorted(counters.items()):
        limit = LIMIT_COUNTER.fullmatch(name)
        if limit is not None:
            hit_counts[(limit.group(1), limit.group(2))] = value
        elif name not in COUNTERS and name not in NOT_BANNED and not _is_call_total(name) and PLAIN_NAME.fullmatch(name):
            yield _counter(name, f"fs-guard's {name} counter (fs_guard.status).", value)
    for (limit_name, level), value in sorted(hit_counts.items()):
        hits.add_metric([limit_name, level], value)
    for country, value in sorted(stats.rejected_countries(counters).items()):
        countries.add_metric([country], value)
    yield not_banned
    yield hits
    yield countries


def _is_call_total(name: str) -> bool:
    """The call totals status derives from the per-context counts (served by ``_calls``)."""
    return name.startswith(stats.REJECTED_PREFIX) or name in (
        "calls_screened", stats.CALLS_ACCEPTED, stats.CALLS_REJECTED, stats.MONITOR_WOULD_REJECT)


def _config(store: ConfigStore) -> Iterator[Metric]:
    load = store.state
    yield _gauge("config_valid", "1 when the configuration file took effect; 0 while it has an error.",
                 int(load.last_error is None))
    yield _gauge("config_last_success_timestamp_seconds",
                 "When the configuration in force was loaded; 0: the built-in defaults.", load.loaded_at or 0)


def _limits(tally: Tally, config: Config) -> Iterator[Metric]:
    limitset = config.limits
    yield _gauge("limit_keys_tracked", "Keys (addresses, accounts) the fraud limits count now.", tally.tracked())
    yield _gauge("limit_keys_max", "Most keys the fraud limits keep (limit_settings.max_keys).", limitset.max_keys)
    yield _counter("limit_keys_evicted", "Keys dropped, least recently seen first, to stay within limit_keys_max.",
                   tally.evicted)
    yield _gauge("limit_calls_up", "Calls up now, counted for concurrent-call limits.", tally.concurrent_calls())
    blocked = GaugeMetricFamily(PREFIX + "limit_blocked_keys", "Keys blocked now, by limit and key kind.",
                                labels=["limit", "by"])
    counts: Dict[Tuple[str, str], int] = {(limit.name, limit.by): 0 for limit in limitset.limits}
    for block in tally.blocks(time.time()):
        what = (block.limit.name, block.limit.by)
        counts[what] = counts.get(what, 0) + 1
    for (name, by), count in sorted(counts.items()):
        blocked.add_metric([name, by], count)
    yield blocked


def _cluster(settings: ClusterSettings) -> Iterator[Metric]:
    from fs_guard.runtime import cluster  # imported only when a configuration names a cluster
    from fs_guard.runtime.cluster.health import UP

    live = cluster.current(settings)
    up = live.health.state == UP
    yield _gauge("cluster_up", "1 while the cluster's Redis answers; 0: limits and bans are this node's own.", int(up))
    round_trip = live.link.round_trip() if up else None
    if round_trip is not None:
        yield _gauge("cluster_round_trip_seconds", "One PING to the cluster's Redis, timed at this scrape.", round_trip)


def registry(hook_started: HookStarted) -> CollectorRegistry:
    """What the endpoint serves: fs-guard's collector alone."""
    served = CollectorRegistry(auto_describe=False)
    served.register(Collector(hook_started))
    return served


def exposition(hook_started: HookStarted) -> str:
    """The text Prometheus scrapes (and node_exporter's textfile collector reads): the same
    collector as the endpoint's."""
    return generate_latest(registry(hook_started)).decode("utf-8")

