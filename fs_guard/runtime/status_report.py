"""What ``fs_guard.status`` answers: counters since load, the configuration in force, its last
error, and the fraud limits' hottest keys and blocks; ``unblock KEY`` lifts a block;
``prometheus`` prints the metrics endpoint's text instead (``fs_guard.runtime.metrics``).

One report (a dict) is built per command and printed either as text or as JSON, so the
two never disagree.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from fs_guard import __version__

from fs_guard.runtime import banlog, destinations, sofia_events, state, stats
from fs_guard.runtime.config import METRICS_EXTRA, LoadState, locate_config

USAGE = "usage: python fs_guard.status [reload] [json | prometheus] | unblock KEY [json]"
WORDS = ("reload", "json", "prometheus")
#: Keys listed per limit, hottest first (like Kamailio's pike.top).
HOTTEST = 5
#: Shown even at zero, in this order; ``rejected.<reason>`` counters follow ``calls_rejected``.
COUNTERS = (
    "calls_screened",
    stats.CALLS_ACCEPTED,
    stats.CALLS_REJECTED,
    stats.MONITOR_WOULD_REJECT,
    stats.BAN_LINES,
    stats.BAN_LOG_ERRORS,
    stats.NOT_BANNED_TRUSTED,
    stats.NOT_BANNED_BAD_ADDRESS,
    stats.REGISTER_FAILURES,
    stats.SCANNER_REGISTRATIONS,
    stats.EVENTS_MALFORMED,
    stats.EVENTS_DROPPED,
    stats.ERRORS,
    stats.CONFIG_WAIT_TIMEOUTS,
    stats.CONFIG_LOADS,
    stats.CONFIG_LOAD_ERRORS,
)


def answer(args: str) -> str:
    """The command's whole output for ``args`` (words: ``reload``, ``json``; or ``unblock KEY``)."""
    words = (args or "").split()
    unblocked = None
    if words[:1] == ["unblock"]:
        if len(words) not in (2, 3) or words[2:] not in ([], ["json"]):
            return f"-ERR {USAGE}\n"
        unblocked = unblock(words[1])
        words = words[2:]
    if any(word not in WORDS for word in words) or {"json", "prometheus"} <= set(words):
        return f"-ERR {USAGE}\n"
    reloaded = state.CONFIG.reload() if "reload" in words else None
    if "prometheus" in words:
        return _prometheus()
    data = report(reloaded)
    if unblocked is not None:
        data["unblock"] = unblocked
    return json.dumps(data, indent=2) + "\n" if "json" in words else render(data)


def _prometheus() -> str:
    try:
        from fs_guard.runtime import metrics  # imports prometheus_client: only when asked for
    except ImportError:
        return f"-ERR prometheus_client is not installed: {METRICS_EXTRA}\n"
    return metrics.exposition(sofia_events.started_at)


def unblock(key: str) -> Dict[str, Any]:
    """Lift every block on ``key`` (an address or an account) and forget its counts (on every
    node, with a cluster)."""
    found = {(block.identity, block.limit.name) for block in state.TALLY.unblock(key)}
    settings = state.CONFIG.current().cluster
    if settings is not None:
        from fs_guard.runtime import cluster

        found |= cluster.unblock(settings, key)
    return {"key": key, "lifted": [{"limit": limit, "identity": identity} for identity, limit in sorted(found)]}


def report(reloaded: Optional[LoadState] = None) -> Dict[str, Any]:
    state.CONFIG.current()  # what the next call would use: picks up an edited file
    load = state.CONFIG.state
    config = load.config
    hook = sofia_events.started_at()
    data: Dict[str, Any] = {"version": __version__}
    if reloaded is not None:
        data["reload"] = {"ok": reloaded.last_error is None, "error": reloaded.last_error}
    data["config"] = {
        "file": config.source,  # None: the built-in defaults are in force
        "path": load.path or locate_config().path,  # the file read on the next change
        "loaded_at": _iso(load.loaded_at),
        "last_error": load.last_error,
        "error_at": _iso(load.error_at),
    }
    data["ban_log"] = config.ban_log_path
    data["register_failure_hook"] = {"running": hook is not None, "since": _iso(hook)}
    data["counters_since"] = _iso(state.STATS.started)
    counters = state.counters()
    by_country = stats.rejected_countries(counters)
    for country in by_country:
        del counters[stats.REJECTED_COUNTRY_PREFIX + country]
    data["counters"] = _ordered(counters)
    data["destinations"] = {
        "metadata_version": _metadata_version(),
        "rejected_by_country": dict(sorted(by_country.items(), key=lambda item: (-item[1], item[0]))),
    }
    data["limits"] = _limits(config, hook is not None)
    data["cluster"] = None
    if config.cluster is not None:
        from fs_guard.runtime import cluster

        data["cluster"] = cluster.status(config.cluster, _iso)
    return data


def _limits(config: Any, hook_running: bool) -> Dict[str, Any]:
    now = time.time()
    tally = state.TALLY
    limitset = config.limits
    return {
        "max_keys": limitset.max_keys,
        "tracked_keys": tally.tracked(),
        "evicted_keys": tally.evicted,
        "calls_up": tally.concurrent_calls(),
        "concurrent_calls_counted": hook_running or not limitset.has_concurrency,
        "limits": [
            {"name": limit.name, "by": limit.by, "rule": limit.describe(),
             "hottest": [{"key": view.key, **dict(view.counts)} for view in tally.hottest(limit, now, HOTTEST)]}
            for limit in limitset.limits
        ],
        "blocked": [
            {"key": block.key, "identity": block.identity, "limit": block.limit.name, "until": _iso(block.until),
             "seconds_left": round(block.until - now)}
            for block in tally.blocks(now)
        ],
    }


def _metadata_version() -> Optional[str]:
    """libphonenumber's metadata version (how current the numbering plans are), None if missing."""
    try:
        return destinations.metadata_version()
    except ImportError:
        return None


def _ordered(snapshot: Dict[str, int]) -> Dict[str, int]:
    ordered: Dict[str, int] = {}
    for name in COUNTERS:
        ordered[name] = snapshot.get(name, 0)
        if name == stats.CALLS_REJECTED:
            ordered.update(sorted((k, v) for k, v in snapshot.items() if k.startswith(stats.REJECTED_PREFIX)))
    ordered.update(sorted((k, v) for k, v in snapshot.items() if k not in ordered))
    return ordered


def render(data: Dict[str, Any]) -> str:
    config, hook = data["config"], data["register_failure_hook"]
    lines = [f"fs-guard {data['version']}"]
    if "reload" in data:
        lines.append("reload: ok" if data["reload"]["ok"] else f"reload: FAILED: {_text(data['reload']['error'])}")
    if config["file"]:
        in_force = f"{_text(config['file'])}, loaded at {config['loaded_at']}"
    else:
        in_force = f"built-in defaults (no good file at {_text(config['path'])})"
    error = config["last_error"]
    lines += [
        f"config:         {in_force}",
        f"last error:     {_text(error) + ' at ' + config['error_at'] if error else 'none'}",
        f"ban log:        {_text(data['ban_log'])}",
        "register hook:  "
        + ("running since " + hook["since"] if hook["running"] else "not running (startup-script in python.conf.xml)"),
    ]
    if data["cluster"] is not None:
        lines += _render_cluster(data["cluster"])
    lines += _render_limits(data["limits"])
    lines += _render_destinations(data["destinations"])
    lines.append(f"counters since {data['counters_since']}:")
    width = max(len(name) for name in data["counters"])
    lines += [f"  {name:<{width}}  {value}" for name, value in data["counters"].items()]
    if "unblock" in data:
        lifted = data["unblock"]["lifted"]
        lines.insert(1, f"unblock {_text(data['unblock']['key'])}: "
                        + (", ".join(f"lifted {b['limit']} on {_text(b['identity'])}" for b in lifted)
                           if lifted else "no block on that key"))
    return "\n".join(lines) + "\n"


def _render_cluster(cluster: Dict[str, Any]) -> List[str]:
    if cluster["state"] == "up":
        now = f"up since {cluster['since']}: limits and bans shared"
    elif cluster["state"] == "down":
        now = (f"DOWN since {cluster['since']}: limits decided with this node's own counts, "
               f"next try in {cluster['retry_in']:g} s")
    elif cluster["state"] == "misconfigured":  # the last error says what to change
        now = (f"CONFIGURATION ERROR since {cluster['since']}: limits decided with this node's own counts, "
               f"next try in {cluster['retry_in']:g} s")
    else:
        now = "connecting"
    error = cluster["last_error"]
    follower = cluster["ban_follower"]
    if follower["reading_since"]:
        bans = f"reading other nodes' ban lines since {follower['reading_since']}"
    elif follower["running"]:
        bans = "waiting for Redis"
    else:
        bans = "not running (startup-script in python.conf.xml): other nodes' ban lines are not written here"
    return [
        f"cluster:        node {cluster['node']} via {_text(cluster['url'])}, {now}",
        f"  last error:   {_text(error) + ' at ' + cluster['error_at'] if error else 'none'}",
        f"  ban follower: {bans}",
    ]


def _render_destinations(found: Dict[str, Any]) -> List[str]:
    version = found["metadata_version"]
    plans = (f"libphonenumber metadata {version} (newer: pip install -U phonenumberslite, then fs-guard install)" if version
             else "libphonenumber NOT INSTALLED (pip install phonenumberslite)")
    rejected = ", ".join(f"{country} {count:,}" for country, count in found["rejected_by_country"].items())
    return [f"numbering plans: {plans}", f"rejected by destination country: {rejected or 'none'}"]


def _render_limits(limits: Dict[str, Any]) -> List[str]:
    if not limits["limits"]:
        return ["limits:         none"]
    lines = [f"limits:         {len(limits['limits'])} ({limits['tracked_keys']:,} keys tracked of "
             f"{limits['max_keys']:,}, {limits['evicted_keys']:,} evicted; {limits['calls_up']:,} calls up)"]
    if not limits["concurrent_calls_counted"]:
        lines.append("  concurrent calls are NOT counted: the fs_guard.events startup-script is not running")
    for limit in limits["limits"]:
        lines.append(f"  {limit['name']}: {limit['rule']}")
        hottest = [f"{_text(view['key'])} " + " ".join(f"{metric} {count}" for metric, count in view.items()
                                                       if metric != "key")
                   for view in limit["hottest"]]
        lines.append(f"    hottest: {' | '.join(hottest) if hottest else 'none'}")
    blocked = limits["blocked"]
    lines.append(f"blocked:        {len(blocked) if blocked else 'none'}")
    lines += [f"  {_text(b['identity'])} by {b['limit']}, {b['seconds_left']:,} s left (until {b['until']})"
              for b in blocked]
    return lines


def _text(value: str) -> str:
    return banlog.escape(value, limit=4096)


def _iso(timestamp: Optional[float]) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")
