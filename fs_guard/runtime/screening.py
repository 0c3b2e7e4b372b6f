"""The call screen's edge: read the channel, decide, hang up, report.

Lives outside ``fs_guard.screen`` because mod_python3 re-executes that module on
every call; this one stays imported.
"""

from __future__ import annotations

from typing import Any

from fs_guard.runtime import errors, limiter, offence, penalty, state, stats
from fs_guard.runtime.config import Config
from fs_guard.runtime.rules import INTERNAL_ERROR, CallFacts, decide

HANGUP_CAUSE = "CALL_REJECTED"


def screen(session: Any, args: str) -> None:
    config = None
    context = ""
    try:
        config = state.CONFIG.current()
        get = session.getVariable
        context = (args.strip() if args else "") or get("context") or ""
        rules = config.rules_for(context)
        facts = CallFacts(get("destination_number"), context, None, get("sip_user_agent"))
        verdict = decide(rules, facts)
        if verdict.accept:
            if config.limits.limits and limiter.screen(session, config, rules, context, facts.number, facts.user_agent):
                return
            state.STATS.add_call(stats.CALLS_ACCEPTED, context)
            return
        reason = str(verdict.reason)
        if rules.monitor:
            state.STATS.add_call(stats.MONITOR_PREFIX + reason, context)
        else:
            session.hangup(HANGUP_CAUSE)
            state.STATS.add_call(stats.REJECTED_PREFIX + reason, context)
        # The address to ban is the socket's, never a SIP header; read only when needed.
        source_ip = get("sip_network_ip") or get("network_addr")
        penalty.impose(config, rules, reason, source_ip, offence.call_fields(context, facts.number, facts.user_agent))
    except Exception as exc:  # the screen must never fail open by accident
        _internal_error(session, config, exc, context)


def _internal_error(session: Any, config: Config | None, exc: Exception, context: str) -> None:
    reject = config.reject_on_error if config is not None else True
    if reject:
        try:
            if session.ready():  # not when the screen had already hung up before failing
                session.hangup(HANGUP_CAUSE)
                state.STATS.add_call(stats.REJECTED_PREFIX + INTERNAL_ERROR, context)
        except Exception:
            pass
    errors.report(f"internal error, call {'rejected' if reject else 'let through (on_error=accept)'}", exc)
