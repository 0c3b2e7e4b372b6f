"""What an offence costs its source once it is decided: the ban line (shared with the
cluster's other nodes), counters, a console line.

Above ``offence`` (which says whether a line is due) and above the cluster, which both
the screen and the event hook reach through here.
"""

from __future__ import annotations

from typing import Optional

from fs_guard.runtime import banlog, host, offence, state, stats
from fs_guard.runtime.config import Config
from fs_guard.runtime.rules import Rules


def impose(config: Config, rules: Rules, reason: str, source_ip: Optional[str], fields: str, ban: bool = True) -> str:
    """Record one offence; returns what became of it ("banned", "monitor", ...).

    ``fields`` come from ``offence.call_fields`` or ``offence.registration_fields``, formatted once for
    the ban line and the console line alike.
    """
    address, ip = offence.address_and_text(source_ip)
    outcome = offence.ban_outcome(config, rules, address, ban)
    if address is None:
        ip = banlog.quoted(source_ip)
    if outcome == offence.BANNED:
        text = banlog.line(ip, reason, fields)
        if state.BANLOG.write(config.ban_log_path, text):
            state.STATS.add(stats.BAN_LINES)
            if config.cluster is not None:  # every node's ban log gets it (fs_guard.runtime.cluster)
                from fs_guard.runtime import cluster

                cluster.current(config.cluster).publish(text)
        else:
            state.STATS.add(stats.BAN_LOG_ERRORS)
            outcome = offence.UNWRITABLE
    elif outcome == offence.NO_ADDRESS:
        state.STATS.add(stats.NOT_BANNED_BAD_ADDRESS)
    elif outcome == offence.TRUSTED:
        state.STATS.add(stats.NOT_BANNED_TRUSTED)
    if rules.monitor:
        host.console("notice", f"fs-guard: would reject reason={reason} ip={ip} {fields} ({outcome})")
    else:
        host.console("warning", f"fs-guard: rejected reason={reason} ip={ip} {fields} ({outcome})")
    return outcome
