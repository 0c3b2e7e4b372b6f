"""The call screen's edge: read the channel, decide, hang up, report.

Lives outside ``fs_guard.screen`` because mod_python3 re-executes that module on
every call; this one stays imported.
"""

from __future__ import annotations

from typing import Any

from fs_guard.runtime import banlog, errors, host, limiter, offence, penalty, state, stats
from fs_guard.runtime.config import Config
from fs_guard.runtime.rules import INTERNAL_ERROR, CallFacts, decide, destination_of

HANGUP_CAUSE = "CALL_REJECTED"


def screen(session: Any, args: str) -> None:
    config = None
    context = ""
    try:
        config = state.CONFIG.current()
        get = session.getVariable
        context = (args.strip() if args else "") or get("context") or ""
        rules = config.rules_for(context)
        number = get("destination_number")
        destination = None
        if rules.classifier is not None:  # classified once; the rules, the limits and the ban line read it
            destination = destination_of(rules, number)
        facts = CallFacts(number, context, None, get("sip_user_agent"), destination)
        verdict = decide(rules, facts)
        if verdict.accept:
            if verdict.emergency:
                _emergency(session, context, number)
                return
            if config.limits.limits and limiter.screen(session, config, rules, context, number, facts.user_agent,
                                                       destination):
                return
            state.STATS.add_call(stats.CALLS_ACCEPTED, context)
            return
        reason = str(verdict.reason)
        if rules.monitor:
            state.STATS.add_call(stats.MONITOR_PREFIX + reason, context)
        else:
            session.hangup(HANGUP_CAUSE)
            state.STATS.add_call(stats.REJECTED_PREFIX + reason, context)
            country = stats.rejected_country(destination)
            if country:
                state.STATS.add(country)
        # The address to ban is the socket's, never a SIP header; read only when needed.
        source_ip = get("sip_network_ip") or get("network_addr")
        penalty.impose(config, rules, reason, source_ip,
                       offence.call_fields(context, number, facts.user_agent, destination))
    except Exception as exc:  # the screen must never fail open by accident
        _internal_error(session, config, exc, context)


def _emergency(session: Any, context: str, number: str) -> None:
    """An emergency number of the home region: let through whatever the rules, limits and
    blocks say (it cannot be used for toll fraud), counted and logged."""
    state.STATS.add_call(stats.CALLS_ACCEPTED, context)
    state.STATS.add(stats.EMERGENCY_CALLS)
    source_ip = session.getVariable("sip_network_ip") or session.getVariable("network_addr")
    host.console("notice", f"fs-guard: emergency call let through context={banlog.token(context)} "
                           f"dest={banlog.quoted(number)} ip={banlog.quoted(source_ip)}")


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
