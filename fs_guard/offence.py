"""What happens to an offence once it is decided: ban line, console line, counters.

Shared by the call screen and the event hook so both apply the same rules: monitor
mode and ``ban: false`` write no ban line, a trusted network writes none, and an
address that is not a valid IP writes none (the call is still rejected).
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Optional, Union

from fs_guard import banlog, host, state, stats
from fs_guard.banlog import Fields
from fs_guard.config import Config
from fs_guard.rules import Rules

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Optional[Address]:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return None  # a link-local zone cannot be banned at the firewall
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def ban_address(text: Optional[str]) -> Optional[Address]:
    """The address as fail2ban should see it, or None if ``text`` is not a plain IP."""
    if not text or len(text) > 45:
        return None
    return _parse(text.strip())


def report(config: Config, rules: Rules, reason: str, source_ip: Optional[str], names: Fields, texts: Fields) -> str:
    """Record one offence; returns what became of it ("banned", "monitor", ...).

    ``names`` are our own names (context, profile); ``texts`` came from the network.
    """
    address = ban_address(source_ip)
    if rules.monitor:
        outcome = "monitor"
    elif not rules.ban:
        outcome = "ban lines off"
    elif address is None:
        outcome = "no valid source address"
        state.STATS.add(stats.NOT_BANNED_BAD_ADDRESS)
    elif config.trusted_networks and config.is_trusted(address):
        outcome = "trusted network"
        state.STATS.add(stats.NOT_BANNED_TRUSTED)
    else:
        line = banlog.format_line(str(address), reason, names, texts)
        if state.BANLOG.write(config.ban_log_path, line):
            state.STATS.add(stats.BAN_LINES)
            outcome = "banned"
        else:
            state.STATS.add(stats.BAN_LOG_ERRORS)
            outcome = "ban log unwritable"
    verb = "would reject" if rules.monitor else "rejected"
    host.console(
        "notice" if rules.monitor else "warning",
        f"fs-guard: {verb} reason={reason} ip={banlog.quoted(source_ip)} "
        f"{banlog.format_fields(names, texts)} ({outcome})",
    )
    return outcome
