"""The fraud limits' edge in the screen: read the call's keys off the channel, count, alert,
reject; and free a call's concurrency slots when FreeSWITCH says it has ended.

Keys come only from what FreeSWITCH established, never from SIP headers:

- the source address is the socket's (``sip_network_ip``, else ``network_addr``);
- the account is ``user_name@domain_name`` of a call mod_sofia authorized
  (``sip_authorized`` is ``true``: digest authentication, or an inbound ACL whose node
  names a directory user). mod_sofia sets both from the directory user it matched
  (sofia.c ``sofia_handle_sip_i_invite``, switch_ivr.c ``switch_ivr_set_user_xml``).
  An unauthenticated call has no ``sip_authorized`` and no ``user_name`` (and
  ``domain_name`` there falls back to the global variable), so it has no account: account
  limits do not count it.

A call is counted once per limit: the limits that counted it are kept in the channel
variable ``fs_guard_limits``, so a ``transfer`` that screens it again in another context
counts it only toward the limits it had not met yet.

Concurrent calls are released on ``CHANNEL_HANGUP_COMPLETE``, which FreeSWITCH fires once
for every channel however it ends (switch_core_state_machine.c, reporting state); the
register-failure hook (``fs_guard.events``) consumes it and releases the call's slots. Without
the hook nobody would release a slot, so concurrent calls are then not counted.
"""

from __future__ import annotations

import time
from typing import Any, Optional, Tuple

from fs_guard.runtime import alerts, host, offence, penalty, sofia_events, state, stats
from fs_guard.runtime.config import Config
from fs_guard.runtime.destinations import Destination
from fs_guard.runtime.limits import for_call
from fs_guard.runtime.rules import LIMIT, Rules

COUNTED_VARIABLE = "fs_guard_limits"
HANGUP_CAUSE = "CALL_REJECTED"
#: Longest account (user@domain) used as a key; a longer one is cut.
MAX_ACCOUNT = 256

_warned_no_hook = False


def address_of(get: Any) -> Optional[str]:
    """The call's source address: the socket's, canonical (a limit's key), or None."""
    return offence.canonical_address(get("sip_network_ip") or get("network_addr"))


def account_of(get: Any) -> Optional[str]:
    """``user@domain`` of a call mod_sofia authorized, or None."""
    if get("sip_authorized") != "true":
        return None
    user = get("user_name")
    if not user:
        return None
    return f"{user}@{get('domain_name') or ''}"[:MAX_ACCOUNT]


def screen(session: Any, config: Config, rules: Rules, context: str, number: str, user_agent: Optional[str],
           destination: Optional[Destination] = None) -> bool:
    """Count an accepted call toward the limits; True when a limit rejected it (and hung it up).

    ``destination`` is the number's classification if the rules made one; limits by destination
    classify the number here when they did not (without a dialling region they skip the call).
    """
    limitset = config.limits
    steps, _, _, reads_account = limitset.plans.get(context, limitset.plan_everywhere)
    tally = state.TALLY
    # A block locks an address or an account out of every context; otherwise each is read only
    # where a limit applies to the call (the address) or may (the account), or for an alert.
    # With a cluster, a block may be another node's: only Redis knows.
    anywhere = tally.has_blocks or config.cluster is not None
    if not steps and not anywhere:
        return False
    if destination is None and limitset.needs_destination and rules.classifier is not None:
        destination = rules.classifier.classify(number)  # only now: a call the rules rejected never needs it
    get = session.getVariable
    source_ip = address_of(get) if anywhere else None
    account = account_of(get) if limitset.needs_account and (anywhere or reads_account) else None
    done = get(COUNTED_VARIABLE)
    skip: Tuple[str, ...] = tuple(done.split(",")) if done else ()
    found, identities = for_call(limitset, context, number, source_ip, account, skip, destination,
                                 None if anywhere else address_of, get)
    concurrency = sofia_events.started_at() is not None
    if not concurrency and limitset.has_concurrency:
        _warn_no_hook()
    uuid = session.uuid or ""
    country = destination.region if destination is not None else ""
    if config.cluster is None:
        outcome = tally.count(limitset, found, identities, uuid, number, time.time(),
                              enforce=not rules.monitor, concurrency=concurrency, country=country)
    else:  # counted across the cluster's nodes, in Redis (a block may come from another node)
        from fs_guard.runtime import cluster

        outcome = cluster.current(config.cluster).count(tally, limitset, found, identities, uuid, number,
                                                        time.time(), enforce=not rules.monitor,
                                                        concurrency=concurrency, country=country)
    hits, limit, _, blocked_until, counted = outcome
    if counted:
        session.setVariable(COUNTED_VARIABLE, ",".join(skip + counted))
    if hits:
        alerts.raise_hits(hits, limit, blocked_until, number, context, source_ip or address_of(get) or "", uuid,
                          destination)
    if limit is None:
        return False
    session.hangup(HANGUP_CAUSE)
    if not hits:  # a call of a blocked key: no new hit, the block rejects it
        state.STATS.add(stats.LIMIT_BLOCKED_CALLS)
    state.STATS.add_call(stats.REJECTED_PREFIX + LIMIT, context)
    country = stats.rejected_country(destination)
    if country:
        state.STATS.add(country)
    raw_ip = get("sip_network_ip") or get("network_addr")
    penalty.impose(config, rules, LIMIT, raw_ip,
                   offence.limit_fields(limit.name, context, number, user_agent, destination), ban=limit.ban)
    return True


def _warn_no_hook() -> None:
    global _warned_no_hook
    if not _warned_no_hook:
        _warned_no_hook = True
        host.console("warning", "fs-guard: concurrent-call limits need the fs_guard.events startup-script "
                                "(it sees calls end); until it runs, concurrent calls are not counted")
