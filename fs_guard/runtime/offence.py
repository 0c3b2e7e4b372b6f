"""An offence's ban line: whether one is due, for which address, with which fields.

Pure, and shared by everything that decides offences (the call screen, the event hook,
the cluster's follower, ``fs-guard test`` and replay), so all apply the same rules: monitor
mode and ``ban: false`` write no ban line, a trusted network writes none, and an address
that is not a valid IP writes none (the call is still rejected). ``penalty`` carries
them out.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Optional, Tuple, Union

from fs_guard.runtime import banlog
from fs_guard.runtime.config import Config
from fs_guard.runtime.destinations import NUMBER, SHORT, Destination
from fs_guard.runtime.rules import Rules

Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Tuple[Optional[Address], str]:
    """The address and its canonical text, cached: scanners come back again and again."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None, ""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return None, ""  # a link-local zone cannot be banned at the firewall
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    return address, str(address)


def address_and_text(text: Optional[str]) -> Tuple[Optional[Address], str]:
    """``ban_address`` and its canonical text ("" when it is None)."""
    if not text or len(text) > 45:
        return None, ""
    return _parse(text.strip())


def ban_address(text: Optional[str]) -> Optional[Address]:
    """The address as fail2ban should see it, or None if ``text`` is not a plain IP."""
    return address_and_text(text)[0]


_V4_MAPPED = bytes(10) + b"\xff\xff"


def canonical_address(text: Optional[str]) -> Optional[str]:
    """``ban_address`` as text (a limit's key), or None.

    The C parser and printer (inet_pton, inet_ntop) instead of ``ipaddress``, uncached: an
    attacker rotating through IPv6 addresses makes every call a new one, and this costs
    a tenth of parsing one. The text is ``ban_address``'s (RFC 5952; IPv4-mapped as IPv4).
    """
    if not text or len(text) > 45:
        return None
    text = text.strip()
    try:
        if ":" not in text:  # every IPv6 text has one, no IPv4 text has: one parse, no failed one
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text))
        packed = socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None
    if packed[:12] == _V4_MAPPED:
        return socket.inet_ntop(socket.AF_INET, packed[12:])
    canonical = socket.inet_ntop(socket.AF_INET6, packed)
    return canonical if "." not in canonical else address_and_text(text)[1]  # ::/96 is printed differently


#: What became of an offence. ``BANNED`` is also ``ban_outcome``'s answer when a line is due.
BANNED = "banned"
MONITOR = "monitor"
BAN_LINES_OFF = "ban lines off"
NO_ADDRESS = "no valid source address"
TRUSTED = "trusted network"
UNWRITABLE = "ban log unwritable"


def ban_outcome(config: Config, rules: Rules, address: Optional[Address], ban: bool = True) -> str:
    """Whether an offence from ``address`` gets a ban line: ``BANNED``, or why not.

    ``ban`` false: the offence's own setting (a limit's ``ban``) writes none. Pure, so that
    ``fs-guard replay`` decides exactly as the live path does.
    """
    if rules.monitor:
        return MONITOR
    if not (rules.ban and ban):
        return BAN_LINES_OFF
    if address is None:
        return NO_ADDRESS
    if config.trusted_networks and config.is_trusted(address):
        return TRUSTED
    return BANNED


def call_fields(context: str, number: Optional[str], user_agent: Optional[str],
                destination: Optional[Destination] = None) -> str:
    """A call's ban-line fields: the screen writes them, and replay writes the same. A classified
    phone or short number adds its ``country`` and ``type`` (``country=unknown`` when none)."""
    fields = f"context={banlog.token(context)} dest={banlog.quoted(number)} ua={banlog.quoted(user_agent)}"
    if destination is None or destination.kind not in (NUMBER, SHORT):
        return fields
    return f"{fields} country={destination.region or 'unknown'} type={destination.type}"


def limit_fields(limit: str, context: str, number: Optional[str], user_agent: Optional[str],
                 destination: Optional[Destination] = None) -> str:
    """A call a fraud limit rejected: the limit's name, then the call's fields."""
    return f"limit={banlog.token(limit)} {call_fields(context, number, user_agent, destination)}"


def registration_fields(
    profile: Optional[str], user: Optional[str], host: Optional[str], user_agent: Optional[str],
    registration_type: Optional[str] = None,
) -> str:
    """A sofia event's ban-line fields; ``type`` only for a register failure (pre_register has none)."""
    fields = (f"profile={banlog.token(profile)} user={banlog.quoted(user)} host={banlog.quoted(host)} "
              f"ua={banlog.quoted(user_agent)}")
    return fields if registration_type is None else f"{fields} type={banlog.quoted(registration_type)}"
