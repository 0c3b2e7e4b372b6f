"""``fs-guard audit``: the toll-fraud holes of a FreeSWITCH configuration, found statically.

Every check reads the configuration as FreeSWITCH would (``fs_guard.fsconf.fsmodel``: includes
resolved, ``$${vars}`` expanded) and reports each hole with the file and line to change
and the fix. The holes are the ones FreeSWITCH's own sample configuration and security
guides warn about: unauthenticated callers reaching a gateway, profiles that do not
authenticate, the sample password 1234, international numbers reachable, and fs-guard
itself not screening every call first.

A dialplan is judged by trying numbers against its ``destination_number`` conditions
(Python's ``re`` standing in for PCRE; a pattern Python cannot compile is assumed to
match): an extension "accepts" a number when every such condition matches it.

One check compares fs-guard's home region (``dialling.region`` in fs_guard.json) with the
country FreeSWITCH was given (vars.xml's ``default_country``). One looks at the host, not
the configuration: with SELinux enforcing, whether fail2ban may read the ban log
(``fs_guard.fsconf.selinux``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Set, Tuple

from fs_guard.fsconf import country, fsmodel, install, selinux
from fs_guard.fsconf.fsmodel import FsConfig, Profile
from fs_guard.fsconf.fsxml import Element, Origin
from fs_guard.runtime.config import CONFIG_BASENAME, DESTINATION_KEYS, ConfigError, parse_config

#: "info" is a note, not a hole: shown, but no reason for exit status 1 and no bar to "clean".
INFO = "info"
SEVERITIES = ("critical", "high", "medium", "low", INFO)
#: Numbers behind each international dialling prefix, of the lengths scanners dial.
INTERNATIONAL = tuple(
    prefix + "442079460123456789"[:length] for prefix in ("00", "011", "+") for length in range(6, 14)
)
_COMMON_PASSWORDS = frozenset(
    "password passw0rd secret admin changeme default freeswitch voip sip letmein qwerty abc123".split()
)
_OUTBOUND = re.compile(r"^(?:sofia/gateway/|sofia/\$\{[^}]*\}/|sofia/(?!internal/)[^/]+/[^@]*@)")
_DESTINATION_FIELDS = ("destination_number", "${destination_number}")


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    file: str  # relative to the configuration directory when inside it
    line: int
    message: str
    fix: str


def _finding(config: FsConfig, check: str, severity: str, where: Origin, message: str, fix: str) -> Finding:
    return Finding(check, severity, fsmodel.shown_path(config.conf_dir, where.path), where.line, message, fix)


def _rel(config: FsConfig, where: Origin) -> str:
    return f"{fsmodel.shown_path(config.conf_dir, where.path)}:{where.line}"


# -- dialplan reading -----------------------------------------------------------------


def _accepts(extension: Element, number: str) -> bool:
    for condition in extension.findall("condition"):
        if condition.get("field") not in _DESTINATION_FIELDS:
            continue
        try:
            if not re.search(condition.get("expression"), number):
                return False
        except re.error:
            continue
    return True


def _international(extension: Element) -> Optional[str]:
    return next((n for n in INTERNATIONAL if _accepts(extension, n)), None)


def _bridges_out(action: Element) -> Optional[str]:
    """The endpoint of a bridge to a gateway or a SIP URI off this switch, if it is one."""
    if action.get("application") != "bridge":
        return None
    data = re.sub(r"^(?:\{[^}]*\}|\[[^\]]*\]|<[^>]*>)+", "", action.get("data").strip())
    for endpoint in re.split(r"[,|]|:_:", data):
        endpoint = re.sub(r"^(?:\{[^}]*\}|\[[^\]]*\])+", "", endpoint.strip())
        if _OUTBOUND.match(endpoint):
            return endpoint
    return None


def _actions(extension: Element) -> Iterator[Element]:
    for condition in extension.findall("condition"):
        yield from condition.findall("action")
        yield from condition.findall("anti-action")


def _outbound(context: Element) -> Iterator[Tuple[Element, Element, str]]:
    """(extension, action, endpoint) of every bridge out of ``context``."""
    for extension in context.findall("extension"):
        for action in _actions(extension):
            endpoint = _bridges_out(action)
            if endpoint:
                yield extension, action, endpoint


def _transfers(context: Element) -> Iterator[Tuple[Element, str]]:
    """(action, target context) of every transfer of a CALLER-CHOSEN number that can be international."""
    here = context.get("name")
    for extension in context.findall("extension"):
        if _international(extension) is None:
            continue
        for action in _actions(extension):
            app, data = action.get("application"), action.get("data").split()
            if app in ("transfer", "execute_extension") and data and "$" in data[0]:
                yield action, data[2] if len(data) > 2 else here
            elif app == "bridge" and data and data[0].startswith("loopback/"):
                parts = data[0].split("/")
                if len(parts) > 2 and "$" in parts[1]:
                    yield action, parts[2]


def _conditions_besides_number(extension: Element) -> str:
    others = [
        f"{c.get('field')} =~ {c.get('expression')}"
        for c in extension.findall("condition")
        if c.get("field") and c.get("field") not in _DESTINATION_FIELDS
    ]
    return f" (when {', '.join(others)})" if others else ""


# -- who gets in without authentication ----------------------------------------------


def _open_profiles(config: FsConfig) -> List[Profile]:
    return [p for p in fsmodel.profiles(config) if not p.authenticates_calls]


def _unauthenticated_contexts(config: FsConfig) -> Dict[str, str]:
    """Contexts a caller reaches without authenticating, each with how."""
    found = {"public": "the context for calls from outside"}
    for profile in _open_profiles(config):
        found.setdefault(profile.context, f"profile {profile.name} does not authenticate calls")
    return found


def _reachable(config: FsConfig) -> Dict[str, str]:
    """Unauthenticated contexts, and the contexts they transfer a caller-chosen number to."""
    reached = dict(_unauthenticated_contexts(config))
    queue = [name for name in reached if config.context(name) is not None]
    while queue:
        context = config.context(queue.pop())
        for action, target in _transfers(context):
            if target not in reached and config.context(target) is not None:
                reached[target] = f"context {context.get('name')} transfers into it at {_rel(config, action.start)}"
                queue.append(target)
    return reached


def _private_address(value: Optional[str]) -> bool:
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return False
    return address.is_private or address.is_loopback


# -- the checks -----------------------------------------------------------------------


def check_screen(config: FsConfig) -> Iterator[Finding]:
    names = ["public", "default"] + sorted(set(_unauthenticated_contexts(config)) - {"public", "default"})
    for name in names:
        context = config.context(name)
        if context is None or fsmodel.screen_runs_first(context):
            continue
        lead = fsmodel.leading_action(context)
        if lead is not None and fsmodel.is_screen(lead[0]):
            message = (
                f"fs_guard.screen runs first in context {name} but its extension has no continue=\"true\": "
                "hunting stops there and the rest of the dialplan never runs"
            )
            yield _finding(config, "screen-not-first", "high", lead[1].start, message, 'add continue="true" to the extension')
            continue
        extensions = context.findall("extension")
        first = (
            f"the first extension, {extensions[0].get('name')!r} ({_rel(config, extensions[0].start)}), runs first"
            if extensions
            else "the context is empty"
        )
        message = f"fs_guard.screen is not the first action of context {name}: {first}, not the screen"
        fix = (
            f"run fs-guard install --conf-dir {config.conf_dir}: it includes dialplan/fs_guard/screen.xml right "
            f'after <context name="{name}">. A file in dialplan/{name}/ is included at the END of the context'
        )
        yield _finding(config, "screen-not-first", "critical", context.start, message, fix)


def check_python(config: FsConfig) -> Iterator[Finding]:
    modules = config.configuration("modules.conf")
    section = modules.find("modules") if modules is not None else None
    where = section.start if section is not None else Origin(os.path.join(config.conf_dir, "freeswitch.xml"), 1)
    if fsmodel.PYTHON_MODULE not in fsmodel.loaded_modules(config):
        yield _finding(
            config,
            "python-not-loaded",
            "critical",
            where,
            "mod_python3 is not loaded: the python application does not exist and no call is screened",
            'add <load module="mod_python3"/> to <modules> in modules.conf.xml, then fs_cli -x "load mod_python3"',
        )
    if not fsmodel.runs_events_hook(config):
        python = config.configuration("python.conf")
        yield _finding(
            config,
            "events-hook-missing",
            "medium",
            python.start if python is not None else where,
            f"{fsmodel.EVENTS_MODULE} is not a startup-script of mod_python3: failed SIP registrations are not banned",
            f'add <param name="startup-script" value="{fsmodel.EVENTS_MODULE}"/> to <settings> in python.conf.xml',
        )


def check_profiles(config: FsConfig) -> Iterator[Finding]:
    for profile in fsmodel.profiles(config):
        why = "accept-blind-auth" if fsmodel.fs_true(profile.value("accept-blind-auth")) else "auth-calls"
        where = profile.where(why)
        if profile.name == "internal" and not profile.authenticates_calls:
            yield _finding(
                config,
                "internal-auth-calls-off",
                "critical",
                where,
                f"the internal profile does not authenticate calls ({why}={profile.value(why)!r}): "
                f"anyone who reaches its port calls into context {profile.context} without a password",
                'set <param name="auth-calls" value="true"/> (the stock value is $${internal_auth_calls}, true) '
                "and remove accept-blind-auth",
            )
        elif (
            not profile.authenticates_calls
            and not (profile.value("apply-inbound-acl") or "").strip()
            and not _private_address(profile.value("sip-ip"))
        ):
            yield _finding(
                config,
                "open-profile",
                "high",
                where,
                f"profile {profile.name} takes calls from any address without authentication "
                f"({why}={profile.value(why)!r}, no apply-inbound-acl) into context {profile.context}",
                'add <param name="apply-inbound-acl" value="trusted_sip_peers"/> with a list of your carriers in '
                "acl.conf.xml (fs-guard's sample: autoload_configs/acl.conf.xml), or set auth-calls to true",
            )
        # mod_sofia reads log-auth-failures per profile only: config_sofia() in
        # src/mod/endpoints/mod_sofia/sofia.c (4830 at FreeSWITCH cc93a68) sets or clears
        # PFLAG_LOG_AUTH_FAIL in the loop over the profile's own <settings>; the loop over
        # <global_settings> (sofia.c 4503) does not know the name and a profile inherits
        # nothing from it. Unset, the flag is off (the profile is allocated zeroed).
        # Only a note: fs_guard.events bans on sofia::register_failure, which sofia_reg.c
        # fires whatever the flag; the flag adds the "SIP auth failure" log lines (replay of
        # freeswitch.log, fail2ban's stock filter) and a "SIP auth challenge" line for every
        # phone's normal first REGISTER.
        if not fsmodel.fs_true(profile.value("log-auth-failures")):
            ignored = _global_settings(config).get("log-auth-failures")
            no_effect = (
                f"; log-auth-failures in <global_settings> ({_rel(config, ignored.start)}) has no effect: "
                "mod_sofia reads it per profile only"
                if ignored is not None
                else ""
            )
            yield _finding(
                config,
                "log-auth-failures-off",
                INFO,
                profile.where("log-auth-failures"),
                f"profile {profile.name} does not log failed authentications. fs-guard does not need it: "
                f"{fsmodel.EVENTS_MODULE} bans password guessing from the sofia::register_failure event, which "
                "FreeSWITCH fires either way. Without it freeswitch.log has no 'SIP auth failure' line for a wrong "
                f"password, so fs-guard replay and fail2ban's stock freeswitch filter cannot see those{no_effect}",
                'only if you want those lines: set <param name="log-auth-failures" value="true"/> in the '
                "profile's <settings> (it also logs a 'SIP auth challenge' line for every phone's normal first "
                "REGISTER)",
            )


def _global_settings(config: FsConfig) -> Dict[str, Element]:
    sofia = config.configuration("sofia.conf")
    return fsmodel.params(sofia.find("global_settings") if sofia is not None else None)


def check_outbound(config: FsConfig) -> Iterator[Finding]:
    reached = _reachable(config)
    for name, how in sorted(reached.items()):
        context = config.context(name)
        for extension, action, endpoint in _outbound(context) if context is not None else ():
            yield _finding(
                config,
                "unauthenticated-outbound",
                "critical",
                action.start,
                f"context {name} is reached without authentication ({how}) and its extension "
                f"{extension.get('name')!r} bridges out to {endpoint}: anyone can call through your carrier",
                f"move outbound extensions out of {name} into a context only authenticated users reach "
                "(user_context in the directory); keep transfers out of it to fixed, local numbers",
            )


def check_international(config: FsConfig) -> Iterator[Finding]:
    for context in config.contexts():
        for extension in context.findall("extension"):
            number = _international(extension)
            if number is None:
                continue
            outbound = [(action, endpoint) for action in _actions(extension) for endpoint in [_bridges_out(action)] if endpoint]
            if not outbound:
                continue
            condition = next(
                (c for c in extension.findall("condition") if c.get("field") in _DESTINATION_FIELDS), extension
            )
            yield _finding(
                config,
                "international-outbound",
                "high",
                condition.start,
                f"extension {extension.get('name')!r} in context {context.get('name')} sends international "
                f"numbers (e.g. {number}) to {outbound[0][1]}{_conditions_besides_number(extension)}",
                "allow only the countries you call (an explicit pattern, not 00/011/+ followed by anything), "
                'and keep deny_prefix ["00", "011", "+"] in fs_guard.json for the contexts that must not call abroad',
            )


def weak_password(password: str) -> bool:
    return (
        len(password) < 8
        or password.lower() in _COMMON_PASSWORDS
        or (password.isdigit() and len(password) < 12)
        or len(set(password)) < 3
    )


def _raw_line(origin: Origin) -> str:
    try:
        with open(origin.path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                if number == origin.line:
                    return line
    except OSError:
        pass
    return ""


def check_passwords(config: FsConfig) -> Iterator[Finding]:
    default = config.variables.get("default_password")
    default_weak = default is not None and weak_password(default)
    from_default: List[str] = []
    for user in fsmodel.users(config):
        param = user.params.get("password")
        if param is not None and "default_password" in _raw_line(param.start) and default_weak:
            from_default.append(user.id)
            continue
        if "a1-hash" in user.params and param is None:
            continue
        value = param.get("value") if param is not None else ""
        where = param.start if param is not None else user.element.start
        if not value:
            allow = user.params.get("allow-empty-password")
            if allow is not None and not fsmodel.fs_true(allow.get("value")):
                continue  # mod_sofia answers 403 to this user (sofia_reg.c 3327): no way in, no finding
            yield _finding(
                config, "weak-password", "critical", where,
                f"user {user.id} has an empty password: mod_sofia authenticates it whatever password it sends "
                "(allow-empty-password is true unless set false)",
                "give the user a long random password",
            )
        elif weak_password(value) or value == user.id:
            yield _finding(
                config, "weak-password", "high", where,
                f"user {user.id} has a weak password (short, common, numeric or the user id)",
                "give the user a long random password (16+ characters)",
            )
    if default_weak:
        users = f"; {len(from_default)} user(s) use it: {', '.join(from_default)}" if from_default else ""
        yield _finding(
            config,
            "default-password",
            "critical",
            config.doc.set_at.get("default_password", Origin(os.path.join(config.conf_dir, "vars.xml"), 1)),
            f"default_password is {'the sample 1234' if default == '1234' else 'weak'}, the first password "
            f"scanners try{users}",
            'set <X-PRE-PROCESS cmd="set" data="default_password=..."/> in vars.xml to a long random value, '
            "better give every user its own password, then fs_cli -x reloadxml",
        )
    for param, users in _allow_empty_password(config):
        yield _finding(
            config, "allow-empty-password", "high", param.start,
            f"allow-empty-password is {param.get('value')!r} for directory user(s) {', '.join(users)} (true is also "
            "mod_sofia's default when it is unset): a user with neither a password nor an a1-hash is "
            "authenticated whatever password it sends",
            "set allow-empty-password to false in the domain's <params> (mod_sofia then answers 403 to a user "
            "without a password) and give every user a password",
        )


def _allow_empty_password(config: FsConfig) -> List[Tuple[Element, List[str]]]:
    """Each allow-empty-password param set true, with the users it applies to.

    mod_sofia reads it from the directory user only: sofia_reg_parse_auth() in
    src/mod/endpoints/mod_sofia/sofia_reg.c (3257 at FreeSWITCH cc93a68) takes it from
    the <params> of the user found by switch_xml_locate_user_merged(), into which
    switch_xml_merge_user() (src/switch_xml.c) merges the group's and then the domain's
    params the user does not set itself (fsmodel.users merges the same way). It is no
    profile param. Unset it is true (sofia_reg.c 2988); true and neither password nor
    a1-hash: AUTH_OK without checking the digest (sofia_reg.c 3333); false: 403 (3327).
    """
    found: Dict[Origin, Tuple[Element, List[str]]] = {}
    for user in fsmodel.users(config):
        param = user.params.get("allow-empty-password")
        if param is not None and fsmodel.fs_true(param.get("value")):
            found.setdefault(param.start, (param, []))[1].append(user.id)
    return list(found.values())


def _fail2ban_object(text: bytes) -> Optional[Mapping[str, Any]]:
    """The ``fail2ban`` object of a configuration file that does not load, as written; None if unreadable."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    section = document.get("fail2ban") if isinstance(document, dict) else None
    return section if isinstance(section, dict) else None


def _needs_region(raw: Mapping[str, Any]) -> List[str]:
    """The settings of a ``fail2ban`` object that read a number's destination (they need a home region)."""
    contexts, limits = raw.get("contexts"), raw.get("limits")  # as written: the file did not load
    sections = [raw] + [c for c in (contexts.values() if isinstance(contexts, dict) else ()) if isinstance(c, dict)]
    used = {key for section in sections for key in DESTINATION_KEYS if section.get(key)}
    for limit in limits if isinstance(limits, list) else ():
        if isinstance(limit, dict):
            used |= {key for key in ("countries", "number_types", "distinct_countries") if limit.get(key)}
    return sorted(used)


def _line_of(text: str, pattern: str) -> int:
    match = re.search(pattern, text)
    return text.count("\n", 0, match.start()) + 1 if match else 1


def check_region(config: FsConfig) -> Iterator[Finding]:
    """fs-guard's home region (``dialling.region``) against the country FreeSWITCH was given
    (vars.xml's ``default_country``): numbers in national format and emergency numbers are
    read by that region's numbering plan."""
    path = config.variables.get("fs_guard_config") or os.path.join(config.conf_dir, CONFIG_BASENAME)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return  # no configuration of fs-guard's: screen-not-first says what is missing
    text = data.decode("utf-8", "replace")
    shown = fsmodel.shown_path(config.conf_dir, path)
    origin = config.doc.set_at.get(country.VARIABLE)
    freeswitch = country.default_country(config.variables, _rel(config, origin) if origin else "")
    try:
        raw = parse_config(data, path).raw
    except ConfigError:
        written = _fail2ban_object(data)
        used = _needs_region(written) if written is not None else []
        if used and not country.configured_regions(written or {}):
            yield Finding(
                "region-missing", "high", shown, _line_of(text, r'"fail2ban"'),
                f"{shown} sets {', '.join(used)} but no dialling.region: FreeSWITCH refuses the file and screens "
                "with the built-in rules (and no number is known to be an emergency number)",
                f'add "dialling": {{"region": "{freeswitch.code}"}} to the fail2ban object (FreeSWITCH\'s '
                f"default_country, {freeswitch.how}), then fs-guard check-config {path}"
                if freeswitch is not None and freeswitch.usable else
                f'add "dialling": {{"region": "XX"}} to the fail2ban object, XX your country\'s ISO 3166 code, '
                f"then fs-guard check-config {path}",
            )
        return
    regions = country.configured_regions(raw)
    if freeswitch is None or not freeswitch.usable:
        return
    if not regions:
        yield Finding("region-not-set", INFO, shown, 1, f"{shown}: {country.not_set(freeswitch)}",
                      f'to classify numbers (destination rules, emergency numbers): add "dialling": '
                      f'{{"region": "{freeswitch.code}"}} to the fail2ban object')
    for where, code in country.differences(regions, freeswitch):
        yield Finding(
            "region-differs", "medium", shown, _line_of(text, r'"region"\s*:\s*"' + re.escape(code) + '"'),
            f"{shown}: {country.difference(where, code, freeswitch)}; FreeSWITCH was told the switch is in "
            f"{freeswitch.code} ({freeswitch.how})",
            f'if the switch is in {freeswitch.code}, set "region": "{freeswitch.code}" in {shown}; if it is in '
            f"{code}, set default_country={code} in vars.xml too, so that FreeSWITCH and fs-guard agree",
        )


CHECKS: Tuple[Callable[[FsConfig], Iterable[Finding]], ...] = (
    check_screen,
    check_python,
    check_outbound,
    check_profiles,
    check_passwords,
    check_international,
    check_region,
)


def check_selinux(config: FsConfig, host: selinux.Host) -> Iterator[Finding]:
    """On a host where SELinux enforces: can fail2ban read the ban log fs-guard writes?"""
    if not host.enforcing():
        return
    ban_log = install.ban_log_of(config.conf_dir)[0]
    verdict = selinux.ban_log_verdict(ban_log, host)
    if verdict is not None and not verdict.readable:
        fix = "as root: " + " && ".join(verdict.commands)
        yield Finding("selinux-ban-log", "high", fsmodel.shown_path(config.conf_dir, ban_log), 0, verdict.message, fix)


def audit(config: FsConfig, host: Optional[selinux.Host] = None) -> List[Finding]:
    """Every finding, the most severe first; the host's too when ``host`` is given."""
    found: Set[Finding] = set()
    ordered: List[Finding] = []
    checks = list(CHECKS) + ([lambda c: check_selinux(c, host)] if host is not None else [])
    for check in checks:
        for finding in check(config):
            if finding not in found:
                found.add(finding)
                ordered.append(finding)
    return sorted(ordered, key=lambda f: (SEVERITIES.index(f.severity), f.file, f.line, f.check))


def holes(findings: List[Finding]) -> List[Finding]:
    """The findings that are holes: all but the notes."""
    return [f for f in findings if f.severity != INFO]


def as_json(config: FsConfig, findings: List[Finding]) -> Dict[str, object]:
    return {
        "conf_dir": config.conf_dir,
        "clean": not holes(findings),
        "counts": {severity: sum(f.severity == severity for f in findings) for severity in SEVERITIES},
        "findings": [asdict(f) for f in findings],
    }
