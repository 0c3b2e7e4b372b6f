"""What ``fs_guard.status`` answers: counters since load, the configuration in force, its last error.

One report (a dict) is built per command and printed either as text or as JSON, so the
two never disagree.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict, Optional

from fs_guard import __version__

from fs_guard.runtime import banlog, sofia_events, state, stats
from fs_guard.runtime.config import LoadState, locate_config

USAGE = "usage: python fs_guard.status [reload] [json]"
WORDS = ("reload", "json")
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
)


def answer(args: str) -> str:
    """The command's whole output for ``args`` (words: ``reload``, ``json``)."""
    words = (args or "").split()
    if any(word not in WORDS for word in words):
        return f"-ERR {USAGE}\n"
    reloaded = state.CONFIG.reload() if "reload" in words else None
    data = report(reloaded)
    return json.dumps(data, indent=2) + "\n" if "json" in words else render(data)


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
        "path": load.path or locate_config(),  # the file read on the next change
        "loaded_at": _iso(load.loaded_at),
        "last_error": load.last_error,
        "error_at": _iso(load.error_at),
    }
    data["ban_log"] = config.ban_log_path
    data["register_failure_hook"] = {"running": hook is not None, "since": _iso(hook)}
    data["counters_since"] = _iso(state.STATS.started)
    counters = state.STATS.snapshot()
    counters[stats.CONFIG_WAIT_TIMEOUTS] = state.CONFIG.first_load_timeouts
    data["counters"] = _ordered(counters)
    return data


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
        f"counters since {data['counters_since']}:",
    ]
    width = max(len(name) for name in data["counters"])
    lines += [f"  {name:<{width}}  {value}" for name, value in data["counters"].items()]
    return "\n".join(lines) + "\n"


def _text(value: str) -> str:
    return banlog.escape(value, limit=4096)


def _iso(timestamp: Optional[float]) -> Optional[str]:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")
